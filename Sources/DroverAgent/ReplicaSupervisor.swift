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
public actor ReplicaSupervisor {
    struct Live {
        var process: RuntimeProcess?
        var startedAt: ContinuousClock.Instant?
        var nextStart: ContinuousClock.Instant?
        var failures = 0
    }

    let deviceID: String
    let store: AgentStore
    let drivers: [RuntimeKind: any RuntimeDriver]
    let replicasDir: String
    let logger: Logger
    let maxLogBytes: Int64
    let stopGrace: Duration
    private(set) var generation: Generation = 0
    private var desired: [String: ReplicaSpec] = [:]
    private var records: [String: ReplicaRecord] = [:]
    private var live: [String: Live] = [:]

    public init(deviceID: String, store: AgentStore, drivers: [any RuntimeDriver], dataDir: String, logger: Logger, maxLogBytes: Int64 = 1 << 20, stopGrace: Duration = .seconds(5)) {
        self.deviceID = deviceID
        self.store = store
        self.drivers = Dictionary(drivers.map { ($0.kind, $0) }, uniquingKeysWith: { a, _ in a })
        self.replicasDir = dataDir + "/replicas"
        self.logger = logger
        self.maxLogBytes = maxLogBytes
        self.stopGrace = stopGrace
    }

    public var appliedGeneration: Generation { generation }

    /// Loads what the agent knew before it stopped and adopts replicas that are still running
    /// instead of starting them again.
    public func recover() async {
        if let saved = try? store.loadDesired(), let message = decodeDesired(saved.payload) {
            generation = saved.generation
            desired = Dictionary(message.replicas.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        }
        for record in (try? store.loadReplicas()) ?? [] {
            records[record.spec.id] = record
            var state = Live()
            if let pid = record.pid, record.phase == .running, POSIX.isAlive(pid: pid, startTicks: record.startTicks) {
                state.process = RuntimeProcess(pid: pid, startTicks: record.startTicks)
                state.startedAt = .now
                logger.info("adopted running replica", metadata: ["replica": "\(record.spec.id)", "pid": "\(pid)"])
            }
            live[record.spec.id] = state
        }
        await reconcile()
    }

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
        var changed: [ReplicaStatus] = []
        let obsolete = records.filter { id, record in desired[id]?.revisionKey != record.spec.revisionKey }
        // Stopped side by side: each may take its whole grace period.
        await withTaskGroup(of: Void.self) { group in
            for id in obsolete.keys { group.addTask { await self.stopReplica(id) } }
        }
        for (id, record) in obsolete.sorted(by: { $0.key < $1.key }) {
            changed.append(status(of: record, phase: .stopped))
            records[id] = nil
            live[id] = nil
            try? store.deleteReplica(id: id)
        }
        for (id, spec) in desired.sorted(by: { $0.key < $1.key }) where records[id] == nil {
            records[id] = ReplicaRecord(spec: spec, phase: .pending)
            live[id] = Live(nextStart: .now)
        }
        changed += startDue()
        queue(changed)
    }

    /// One supervision pass: notice exits, apply restart policies, start what is due, cap logs.
    public func tick() {
        var changed: [ReplicaStatus] = []
        for (id, var record) in records.sorted(by: { $0.key < $1.key }) {
            guard var state = live[id], let process = state.process, let driver = drivers[record.spec.runtime] else { continue }
            capLog(id)
            guard case .ended(let exit) = driver.state(of: process) else { continue }
            state.process = nil
            record.pid = nil
            record.startTicks = nil
            record.exitCode = exit?.code
            let ranLong = state.startedAt.map { ContinuousClock.now - $0 > .seconds(10) } ?? false
            state.failures = ranLong ? 0 : state.failures + 1
            let failed = exit.map { $0.code != 0 } ?? true
            let restart = record.spec.restartPolicy == .always || (record.spec.restartPolicy == .onFailure && failed)
            if restart {
                let delay = Self.restartDelay(failures: state.failures)
                state.nextStart = .now + delay
                record.phase = .restarting
                record.message = "exited with \(exit.map { "code \($0.code)" } ?? "unknown code"); restart in \(delay)"
            } else {
                record.phase = .exited
                record.message = exit == nil ? "exited; code unknown (process was adopted)" : nil
            }
            records[id] = record
            live[id] = state
            try? store.saveReplica(record)
            changed.append(status(of: record, phase: record.phase))
        }
        changed += startDue()
        queue(changed)
    }

    /// 1 s, 2 s, 4 s … capped at 30 s; reset once a replica ran for 10 s.
    static func restartDelay(failures: Int) -> Duration {
        .seconds(min(30, 1 << min(max(failures - 1, 0), 5)))
    }

    private func startDue() -> [ReplicaStatus] {
        var changed: [ReplicaStatus] = []
        let now = ContinuousClock.now
        for (id, var record) in records.sorted(by: { $0.key < $1.key }) {
            guard var state = live[id], state.process == nil, let due = state.nextStart, due <= now else { continue }
            let wasRestart = record.phase == .restarting
            state.nextStart = nil
            let directory = replicasDir + "/" + id
            POSIX.makeDirectories(directory)
            do throws(RuntimeError) {
                guard let driver = drivers[record.spec.runtime] else {
                    throw RuntimeError("runtime \(record.spec.runtime.rawValue) is not available on this device")
                }
                let process = try driver.start(record.spec, directory: directory, logPath: directory + "/output.log")
                state.process = process
                state.startedAt = now
                record.phase = .running
                record.pid = process.pid
                record.startTicks = process.startTicks
                record.message = nil
                if wasRestart { record.restarts += 1 }
                logger.info("started replica", metadata: ["replica": "\(id)", "pid": "\(process.pid)"])
            } catch {
                record.phase = .failed
                record.message = error.message
                logger.warning("cannot start replica", metadata: ["replica": "\(id)", "error": "\(error)"])
            }
            records[id] = record
            live[id] = state
            try? store.saveReplica(record)
            changed.append(status(of: record, phase: record.phase))
        }
        return changed
    }

    private func stopReplica(_ id: String) async {
        guard let record = records[id], let process = live[id]?.process, let driver = drivers[record.spec.runtime] else { return }
        await driver.stop(process, grace: stopGrace)
        logger.info("stopped replica", metadata: ["replica": "\(id)", "pid": "\(process.pid)"])
    }

    /// Keeps a replica's log under `maxLogBytes`: the older half moves to `output.log.1`, then
    /// the file is truncated (the replica appends, so it goes on writing at the new end).
    private func capLog(_ id: String) {
        let path = replicasDir + "/" + id + "/output.log"
        guard let size = POSIX.fileSize(path), size > maxLogBytes else { return }
        if let text = POSIX.readFile(path, limit: Int(size)) {
            let fd = open(path + ".1", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
            if fd >= 0 {
                _ = text.utf8.withContiguousStorageIfAvailable { write(fd, $0.baseAddress, $0.count) }
                close(fd)
            }
        }
        truncate(path, 0)
    }

    private func status(of record: ReplicaRecord, phase: ReplicaPhase) -> ReplicaStatus {
        ReplicaStatus(
            id: record.spec.id, workload: record.spec.workload, phase: phase, generation: generation, pid: record.pid,
            exitCode: record.exitCode, restarts: record.restarts, message: record.message, time: epochMillis())
    }

    private func queue(_ statuses: [ReplicaStatus]) {
        guard !statuses.isEmpty else { return }
        do {
            _ = try store.enqueue(WireCodec.encodeText(statuses))
        } catch {
            logger.error("cannot queue report", metadata: ["error": "\(error)"])
        }
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


    private func decodeDesired(_ payload: String) -> Desired? {
        try? WireCodec.decode(Desired.self, from: Array(payload.utf8), topicDevice: deviceID)
    }
}
