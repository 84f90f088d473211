import DroverAgentStore
import DroverCore
import DroverProtocol

/// `agent.db` could not be read: the agent stops loudly instead of running nothing.
public struct RecoveryError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

extension ReplicaSupervisor {
    /// Loads what the agent knew before it stopped, and for every replica it held either
    /// adopts the same process (pid, start time and boot id all match) or treats it as ended
    /// with an unknown exit code and applies the restart policy. This is what makes a device
    /// run its workloads after a reboot or a power cut before it ever reaches a broker.
    ///
    /// An unreadable `agent.db` is an error, never "nothing to run": silently starting empty
    /// would stop a device's workloads without anyone noticing.
    public func recover() async throws(RecoveryError) {
        let saved: (generation: Generation, payload: String)?
        let stored: [ReplicaRecord]
        do {
            saved = try store.loadDesired()
            stored = try store.loadReplicas()
        } catch {
            throw RecoveryError(description: "agent.db is unreadable: \(error)")
        }
        if let saved {
            let message: Desired
            do {
                message = try WireCodec.decode(Desired.self, from: Array(saved.payload.utf8), topicDevice: deviceID)
            } catch {
                throw RecoveryError(description: "agent.db: the stored desired state (generation \(saved.generation)) is unreadable: \(error)")
            }
            generation = saved.generation
            desired = Dictionary(message.replicas.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        }
        var changed: [ReplicaStatus] = []
        // A stop the agent did not live to finish is finished first: never two processes for one id.
        for record in stored where record.stopping == true {
            if let process = adoptable(record), let driver = drivers[record.spec.runtime] {
                logger.warning("finishing the stop of a replica the agent was stopping when it went down", metadata: ["replica": "\(record.spec.id)", "pid": "\(process.pid)"])
                await driver.stop(process, grace: stopGrace)
            } else if record.spec.runtime != .exec, let driver = drivers[record.spec.runtime] {
                // A container that ended meanwhile still has runc state and a cgroup to remove.
                await driver.stop(process(of: record, pid: record.pid ?? 0), grace: .zero)
            }
            forget(record.storeKey)
            // (The old instance of a surge is not the replica: its stop changes nothing to report.)
            if record.retiring != true { changed.append(status(of: record, phase: .stopped)) }
        }
        for record in stored where record.retiring == true && record.stopping != true { await recoverRetiring(record) }
        for var record in stored where record.stopping != true && record.retiring != true {
            let id = record.spec.id
            var state = Live()
            if let process = adoptable(record) {
                state.process = process
                state.startedAt = .now
                // It ran before: its startup is over; readiness stays as it was until checked.
                state.probes.startupPassed = true
                logger.info("adopted running replica", metadata: ["replica": "\(id)", "pid": "\(process.pid)"])
            } else if let reason = resume(&record, into: &state) {
                save(record)
                changed.append(status(of: record, phase: record.phase))
                logger.warning("replica was not running after the agent started", metadata: ["replica": "\(id)", "action": "\(reason)"])
            }
            records[id] = record
            live[id] = state
            // A container that ended while the agent was away still has runc's state, a cgroup
            // or a podman container: removed now (its exit was read above), whatever comes next.
            if state.process == nil, record.spec.runtime.isContainer, let driver = drivers[record.spec.runtime] {
                await driver.stop(process(of: record, pid: 0), grace: .zero)
            }
        }
        queue(changed)
        await reconcile()
        removeUnknownFiles()
    }

    /// Removes the directories of replicas this agent knows nothing of (their logs, a
    /// container's bundle): left by an agent that died between forgetting a replica and
    /// removing its files, or by an `agent.db` made afresh. Every replica it knows (desired,
    /// recorded, retiring) keeps both its instances, and an instance being stopped its own.
    func removeUnknownFiles() {
        var known = Set(stopping.values.map(\.replica))
        for id in Set(desired.keys).union(records.keys).union(retiring.keys) {
            for slot in 0...1 { known.insert(ReplicaRecord.instance(id, slot: slot)) }
        }
        for name in POSIX.listDirectory(replicasDir) where !known.contains(name) {
            logger.info("removing the files of a replica this agent does not know", metadata: ["directory": "\(replicasDir)/\(name)"])
            POSIX.removeTree(replicasDir + "/" + name)
        }
    }

    /// The recorded process, if it is still the same one: the pid alone may have been reused
    /// after a reboot or by the kernel's pid wrap.
    func adoptable(_ record: ReplicaRecord) -> RuntimeProcess? {
        guard record.phase == .running, let pid = record.pid, record.bootID == nil || record.bootID == bootID,
            POSIX.isAlive(pid: pid, startTicks: record.startTicks)
        else { return nil }
        return process(of: record, pid: pid)
    }

    func process(of record: ReplicaRecord, pid: Int32) -> RuntimeProcess {
        RuntimeProcess(pid: pid, startTicks: record.startTicks, replica: record.instance, directory: replicasDir + "/" + record.instance)
    }

    /// A replica that is not running after a start: it ended while the agent was away (a
    /// crash, `kill -9`, a reboot) or had not started yet. Returns what was done, or nil when
    /// nothing is to be done (it had exited for good, or it is no longer desired and
    /// `reconcile` removes it).
    func resume(_ record: inout ReplicaRecord, into state: inout Live) -> String? {
        guard desired[record.spec.id]?.revisionKey == record.spec.revisionKey else { return nil }
        switch record.phase {
        case .running:
            // A container's monitor kept how it ended, unless the machine rebooted.
            var exit: ExitStatus?
            var reason: String?
            if record.bootID == bootID, let pid = record.pid, let driver = drivers[record.spec.runtime],
                case .ended(let status, let why) = driver.state(of: process(of: record, pid: pid)) {
                (exit, reason) = (status, why)
            }
            let how = exit.map { "exited with code \($0.code)\(reason.map { " (\($0))" } ?? "") while the agent was away" }
            record.pid = nil
            record.startTicks = nil
            record.exitCode = exit.map(\.code).flatMap { WireLimits.exitCodeRange.contains($0) ? $0 : nil }
            // An unknown exit code counts as a failure for `on-failure`.
            if record.spec.restartPolicy.restarts(failed: exit.map { $0.code != 0 } ?? true) {
                record.phase = .restarting
                record.message = (how ?? "not running after the agent started (reboot or crash)") + "; starting again"
                state.nextStart = .now
                return "restart"
            }
            record.phase = .exited
            record.message = how ?? "not running after the agent started (reboot or crash); exit code unknown"
            return "left exited (restartPolicy \(record.spec.restartPolicy.rawValue))"
        case .pending, .restarting, .failed:
            state.nextStart = .now
            return nil
        case .exited, .stopped:
            return nil
        }
    }
}
