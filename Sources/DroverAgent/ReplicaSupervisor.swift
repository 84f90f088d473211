#if canImport(Glibc)
import Glibc
#endif
import DroverAgentStore
import DroverCore
import DroverProtocol
import Logging

/// Applies desired state and keeps replicas running by their restart policy.
///
/// Everything it decides is written to `agent.db` before it acts, and every phase change is
/// queued in the outbox, so an agent restart or a broker outage loses nothing.
///
/// Actor reentrancy: the only suspension points are the stops in `reconcile`. Before it
/// suspends, a replica that is being stopped is taken out of `records` and `live` and put in
/// `stopping`, so no `tick` can see it exit and start it again, and a replica with the same id
/// is started only once the old process is gone: nothing ever runs untracked.
public actor ReplicaSupervisor {
    struct Live {
        var process: RuntimeProcess?
        var startedAt: ContinuousClock.Instant?
        var nextStart: ContinuousClock.Instant?
        var failures = 0
        /// A container start is under way in the background (`+Start`).
        var starting = false
        /// Health probes of the current process (`+Probes`).
        var probes = ProbeState()
    }

    let deviceID: String
    let store: AgentStore
    let drivers: [RuntimeKind: any RuntimeDriver]
    let replicasDir: String
    let logger: Logger
    let maxLogBytes: Int64
    let stopGrace: Duration
    /// This boot of the machine: a pid recorded under another boot id is never adopted.
    let bootID: String
    var generation: Generation = 0
    var desired: [String: ReplicaSpec] = [:]
    var records: [String: ReplicaRecord] = [:]
    var live: [String: Live] = [:]
    /// Instances whose process is being stopped, by store key (the replica id, or
    /// `ID+retiring`): tracked until it is gone.
    var stopping: [String: RuntimeProcess] = [:]
    /// Old instances of a surge, by replica id, running until the new one is ready (`+Surge`).
    var retiring: [String: Retiring] = [:]
    /// Images being pulled, and when to try again those that failed (`+Prepare`).
    var preparing: Set<String> = []
    var prepareRetries: [String: PrepareRetry] = [:]
    /// Told whenever a report is queued, so the link sends it at once rather than at its next pass.
    var queued: AsyncStream<Void>.Continuation?

    public func notifyQueued(_ continuation: AsyncStream<Void>.Continuation) { queued = continuation }

    public init(
        deviceID: String, store: AgentStore, drivers: [any RuntimeDriver], dataDir: String, logger: Logger, bootID: String,
        maxLogBytes: Int64 = 1 << 20, stopGrace: Duration = .seconds(5)
    ) {
        self.deviceID = deviceID
        self.store = store
        self.drivers = Dictionary(drivers.map { ($0.kind, $0) }, uniquingKeysWith: { a, _ in a })
        self.replicasDir = dataDir + "/replicas"
        self.logger = logger
        self.bootID = bootID
        self.maxLogBytes = maxLogBytes
        self.stopGrace = stopGrace
    }

    public var appliedGeneration: Generation { generation }

    /// Takes a new desired state. An older or equal generation is ignored: a stale message
    /// must not resurrect anything. Returns whether it was applied.
    @discardableResult
    public func apply(_ message: Desired) async -> Bool {
        guard message.generation > generation else { return false }
        do {
            guard try store.saveDesired(generation: message.generation, payload: WireCodec.encodeText(message)) else { return false }
        } catch {
            logger.error("cannot persist desired state", metadata: ["error": "\(error)"])
            return false
        }
        generation = message.generation
        desired = Dictionary(message.replicas.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        logger.info("applying desired state", metadata: ["generation": "\(generation)", "replicas": "\(desired.count)"])
        await reconcile()
        return true
    }

    /// Brings the running set in line with the desired set: stop what is gone or changed,
    /// start what is missing.
    func reconcile() async {
        prepareMissing()
        // Taken out of the books before the first suspension point (see the type's comment).
        var stops: [InstanceStop] = []
        var stopped: [ReplicaStatus] = reconcileRetiring(&stops)
        // A replica being replaced runs on until its replacement's image is here (or, told to
        // surge, beside it until it is ready). One being started is stopped once its start is
        // done (`finishStart` reconciles again).
        let obsolete = records.filter { id, record in
            desired[id]?.revisionKey != record.spec.revisionKey && !waitsForReplacement(id) && live[id]?.starting != true
        }
        var slots: [String: Int] = [:]
        for (id, record) in obsolete.sorted(by: { $0.key < $1.key }) {
            slots[id] = record.slot ?? 0
            // (Its replacement goes in the other slot: see the records made below.)
            if retire(id) { continue }
            if let process = live[id]?.process, let driver = drivers[record.spec.runtime] {
                stopping[id] = process
                stops.append(InstanceStop(key: id, process: process, driver: driver))
                var marked = record
                marked.stopping = true
                save(marked)
            } else if stopping[id] == nil {
                // (With a stop of the same id in flight, its row marks that stop: it stays.)
                forget(id)
            }
            stopped.append(status(of: record, phase: .stopped))
            records[id] = nil
            live[id] = nil
        }
        // The same template under a new revision number: nothing restarts; the record learns
        // the number, and the controller hears it.
        var renumbered: [ReplicaStatus] = []
        for (id, spec) in desired.sorted(by: { $0.key < $1.key }) {
            guard var record = records[id], record.spec.revisionKey == spec.revisionKey, record.spec != spec else { continue }
            record.spec = spec
            records[id] = record
            save(record)
            renumbered.append(status(of: record, phase: record.phase))
        }
        queue(renumbered)
        for (id, spec) in desired.sorted(by: { $0.key < $1.key }) where records[id] == nil {
            var record = ReplicaRecord(spec: spec, phase: .pending, bootID: bootID)
            // Beside a retiring instance, in the other slot; otherwise where it ran before.
            record.slot = retiring[id].map { 1 - ($0.record.slot ?? 0) } ?? slots[id] ?? 0
            if record.slot == 0 { record.slot = nil }
            records[id] = record
            live[id] = Live(nextStart: .now)
            if retiring[id] != nil {
                // What the slot holds is from the instance before last: the new one starts clean.
                POSIX.removeTree(replicasDir + "/" + record.instance)
            }
            // In slot 1 it is on disk before it starts: after a crash mid-start, the agent
            // looks for its container under the right name.
            if record.slot != nil { save(record) }
        }
        queue(startDue())
        guard !stops.isEmpty else {
            for id in obsolete.keys where desired[id] == nil && stopping[ReplicaRecord.retiringKey(id)] == nil { removeFiles(id) }
            return
        }
        // Stopped side by side: each may take its whole grace period.
        let grace = stopGrace
        await withTaskGroup(of: Void.self) { group in
            for stop in stops { group.addTask { await stop.driver.stop(stop.process, grace: grace) } }
        }
        for stop in stops {
            stopping[stop.key] = nil
            forget(stop.key)
            logger.info("stopped replica", metadata: ["replica": "\(stop.key)", "pid": "\(stop.process.pid)"])
        }
        // A replica gone for good leaves nothing behind; one being replaced keeps its logs.
        for id in Set(obsolete.keys).union(stops.map(\.replica)) where desired[id] == nil && records[id] == nil && stopping[ReplicaRecord.retiringKey(id)] == nil {
            removeFiles(id)
        }
        queue(stopped + startDue())
    }

    /// Both instance directories of a replica gone for good.
    func removeFiles(_ id: String) {
        for slot in 0...1 { POSIX.removeTree(replicasDir + "/" + ReplicaRecord.instance(id, slot: slot)) }
    }

    /// One supervision pass: notice exits, apply restart policies, start what is due, cap logs.
    public func tick() {
        prepareMissing()
        var changed: [ReplicaStatus] = []
        for (id, var record) in records.sorted(by: { $0.key < $1.key }) {
            guard var state = live[id], let process = state.process, let driver = drivers[record.spec.runtime] else { continue }
            capLog(id)
            guard case .ended(let exit, let reason) = driver.state(of: process) else { continue }
            state.process = nil
            record.pid = nil
            record.startTicks = nil
            record.exitCode = exit.map(\.code).flatMap { WireLimits.exitCodeRange.contains($0) ? $0 : nil }
            let ranLong = state.startedAt.map { ContinuousClock.now - $0 > .seconds(10) } ?? false
            state.failures = ranLong ? 0 : state.failures + 1
            let failed = exit.map { $0.code != 0 } ?? true
            if record.spec.restartPolicy.restarts(failed: failed) {
                let delay = Self.restartDelay(failures: state.failures)
                state.nextStart = .now + delay
                record.phase = .restarting
                record.message = (reason.map { $0 + ": " } ?? "") + "exited with \(exit.map { "code \($0.code)" } ?? "unknown code"); restart in \(delay)"
            } else {
                record.phase = .exited
                record.message = reason ?? (exit == nil ? "exited; code unknown (process was adopted)" : nil)
            }
            records[id] = record
            live[id] = state
            save(record)
            changed.append(status(of: record, phase: record.phase))
        }
        changed += startDue()
        queue(changed)
        runProbes()
        finishSurges()
    }

    /// 1 s, 2 s, 4 s … capped at 30 s; reset once a replica ran for 10 s.
    static func restartDelay(failures: Int) -> Duration {
        .seconds(min(30, 1 << min(max(failures - 1, 0), 5)))
    }

    func forget(_ id: String) {
        do {
            try store.deleteReplica(id: id)
        } catch {
            logger.error("cannot delete replica record", metadata: ["replica": "\(id)", "error": "\(error)"])
        }
    }

    func save(_ record: ReplicaRecord) {
        do {
            try store.saveReplica(record)
        } catch {
            logger.error("cannot save replica record", metadata: ["replica": "\(record.spec.id)", "error": "\(error)"])
        }
    }

    /// Keeps a replica's log under `maxLogBytes`: the file is copied to `output.log.1` in
    /// small chunks (never whole into memory), then truncated; the replica appends, so it
    /// goes on writing at the new end.
    private func capLog(_ id: String) {
        let path = replicasDir + "/" + (records[id]?.instance ?? id) + "/output.log"
        guard let size = POSIX.fileSize(path), size > maxLogBytes else { return }
        POSIX.copyFile(path, to: path + ".1")
        POSIX.truncateFile(path)
    }

    func status(of record: ReplicaRecord, phase: ReplicaPhase) -> ReplicaStatus {
        ReplicaStatus(
            id: record.spec.id, workload: record.spec.workload, phase: phase, generation: generation, pid: record.pid,
            exitCode: record.exitCode, restarts: record.restarts, message: record.message?.truncatedUTF8(maxBytes: WireLimits.maxMessageText),
            time: epochMillis(), ready: phase == .running ? record.ready : nil, revision: record.spec.revision)
    }

    func queue(_ statuses: [ReplicaStatus]) {
        guard !statuses.isEmpty else { return }
        do {
            _ = try store.enqueue(WireCodec.encodeText(statuses))
            queued?.yield()
        } catch {
            logger.error("cannot queue report", metadata: ["error": "\(error)"])
        }
    }

    /// Queues a full report of every replica, for the controller to set its view right.
    public func queueSnapshot() {
        do {
            _ = try store.enqueue(WireCodec.encodeText(QueuedReport(full: true, replicas: replicaStatuses())))
        } catch {
            logger.error("cannot queue snapshot", metadata: ["error": "\(error)"])
        }
    }

    /// Every replica's status now, by id.
    public func replicaStatuses() -> [ReplicaStatus] {
        records.values.sorted { $0.spec.id < $1.spec.id }.map { status(of: $0, phase: $0.phase) }
    }

    /// What a beat says of the replicas: the applied generation, the last queued report and
    /// the digest of every replica's state, all read at one moment.
    /// No digest while a stop is under way: the replica has left the books but its `stopped`
    /// report is not queued yet, and the controller would see a drift that is not one.
    public func beatSummary() -> (generation: Generation, reportSeq: Int64, digest: String?) {
        let digest = stopping.isEmpty ? ReplicaDigest.compute(records.values.map { status(of: $0, phase: $0.phase).digestEntry }) : nil
        return (generation, (try? store.lastQueuedSeq()) ?? 0, digest)
    }

    /// Current phase counts, for beats.
    public func phaseCounts() -> [String: Int] {
        records.values.reduce(into: [:]) { $0[$1.phase.rawValue, default: 0] += 1 }
    }

    /// Process groups of running replicas, by replica id.
    public func runningGroups() -> [String: Int32] {
        var groups: [String: Int32] = [:]
        for (id, state) in live { if let p = state.process { groups[id] = p.pid } }
        return groups
    }

    /// Every replica process the supervisor tracks, running or being stopped (for tests and
    /// for the agent's own accounting).
    public func trackedPIDs() -> Set<Int32> {
        Set(live.values.compactMap { $0.process?.pid }).union(stopping.values.map(\.pid)).union(retiring.values.map(\.process.pid))
    }
}

extension RestartPolicy {
    /// Whether a replica that ended (`failed`: non-zero or unknown exit) is started again.
    func restarts(failed: Bool) -> Bool {
        self == .always || (self == .onFailure && failed)
    }
}
