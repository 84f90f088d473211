import DroverAgentStore
import DroverCore
import DroverProtocol

/// Starting replicas. An exec replica starts at once (a fork). A container start takes runc
/// or podman tens to hundreds of milliseconds, so it runs on a thread of its own while the
/// supervisor goes on: the replica is marked `starting` (no second start, no stop, no exit
/// check until it is done), and `finishStart` books the result in one step; a replica that
/// was changed or removed meanwhile is then stopped by the `reconcile` that follows.
extension ReplicaSupervisor {
    func startDue() -> [ReplicaStatus] {
        var changed: [ReplicaStatus] = []
        let now = ContinuousClock.now
        // Not while an instance of it is being stopped: the new one may take its slot.
        for (id, var record) in records.sorted(by: { $0.key < $1.key }) where stopping[id] == nil && stopping[ReplicaRecord.retiringKey(id)] == nil {
            guard var state = live[id], state.process == nil, !state.starting, let due = state.nextStart, due <= now else { continue }
            // Not before its image is here; `prepareMissing` is getting it.
            if !ready(record.spec) {
                let waiting = prepareRetries[Self.prepareKey(record.spec)]?.message ?? "pulling image \(record.spec.image ?? "")"
                if record.phase != .pending || record.message != waiting {
                    record.phase = .pending
                    record.message = waiting
                    records[id] = record
                    save(record)
                    changed.append(status(of: record, phase: .pending))
                }
                continue
            }
            let wasRestart = record.phase == .restarting
            state.nextStart = nil
            let directory = replicasDir + "/" + record.instance
            let name = record.instance
            POSIX.makeDirectories(directory)
            guard let driver = drivers[record.spec.runtime] else {
                live[id] = state
                changed.append(book(id, record, .failure(RuntimeError("runtime \(record.spec.runtime.rawValue) is not available on this device")), wasRestart: wasRestart))
                continue
            }
            guard driver.startsInBackground else {
                live[id] = state
                changed.append(book(id, record, Self.start(driver, record.spec, name, directory), wasRestart: wasRestart))
                continue
            }
            state.starting = true
            live[id] = state
            let spec = record.spec
            Task {
                let result = await OffPool.run { Self.start(driver, spec, name, directory) }
                await self.finishStart(id, spec: spec, result: result, wasRestart: wasRestart)
            }
        }
        return changed
    }

    static func start(_ driver: any RuntimeDriver, _ spec: ReplicaSpec, _ name: String, _ directory: String) -> Result<RuntimeProcess, RuntimeError> {
        do throws(RuntimeError) {
            var process = try driver.start(spec, name: name, directory: directory, logPath: directory + "/output.log")
            process.replica = name
            process.directory = directory
            return .success(process)
        } catch {
            return .failure(error)
        }
    }

    func finishStart(_ id: String, spec: ReplicaSpec, result: Result<RuntimeProcess, RuntimeError>, wasRestart: Bool) async {
        guard var state = live[id], state.starting, let record = records[id], record.spec.revisionKey == spec.revisionKey else {
            // (Cannot happen: a replica being started stays in the books.) Never run untracked.
            if case .success(let process) = result, let driver = drivers[spec.runtime] { await driver.stop(process, grace: stopGrace) }
            return
        }
        state.starting = false
        live[id] = state
        queue([book(id, record, result, wasRestart: wasRestart)])
        // A change that came while it started is applied now.
        if desired[id]?.revisionKey != spec.revisionKey { await reconcile() }
    }

    /// Books a start's outcome: the process and `running`, or `failed` with why (and, unless
    /// the policy is `never`, when it is tried again).
    func book(_ id: String, _ started: ReplicaRecord, _ result: Result<RuntimeProcess, RuntimeError>, wasRestart: Bool) -> ReplicaStatus {
        var record = started
        var state = live[id] ?? Live()
        switch result {
        case .success(let process):
            state.process = process
            state.startedAt = .now
            state.probes = ProbeState()
            // With a readiness probe, not ready until it passes.
            record.ready = record.spec.probes.readiness == nil ? nil : false
            record.phase = .running
            record.pid = process.pid
            record.startTicks = process.startTicks
            record.bootID = bootID
            record.message = nil
            if wasRestart { record.restarts = min(record.restarts, Int.max - 1) + 1 }
            logger.info("started replica", metadata: ["replica": "\(id)", "pid": "\(process.pid)"])
        case .failure(let error):
            record.phase = .failed
            record.message = error.message
            // Tried again with the restart policy's backoff: a start can fail for a while
            // (a full disk, a runtime being upgraded) and then succeed.
            if record.spec.restartPolicy != .never {
                state.failures = min(state.failures, 1000) + 1
                let delay = Self.restartDelay(failures: state.failures)
                state.nextStart = .now + delay
                record.message = "\(error.message); retry in \(delay)"
            }
            logger.warning("cannot start replica", metadata: ["replica": "\(id)", "error": "\(error)"])
        }
        records[id] = record
        live[id] = state
        save(record)
        return status(of: record, phase: record.phase)
    }
}
