import DroverAPI
import DroverCore
import DroverProtocol
import DroverScheduler
import DroverStore
import Foundation
import Logging

/// Takes desired state to send, once its store write has committed. The controller's
/// `DesiredOutbox` publishes it (one publish per device at a time, the newest generation
/// wins); tests record it. Called inside the fleet's state change: it must not block.
public protocol DesiredPublisher: Sendable {
    func enqueue(_ desired: [Desired])
}

/// The controller's fleet: a `FleetState` whose transitions it performs, writing each one's
/// batch to the store in one transaction and publishing its desired state only once that
/// committed. It never awaits in the middle of a change.
public actor Fleet {
    let store: any FleetStore
    let logger: Logger
    var publisher: (any DesiredPublisher)?
    var state: FleetState
    public let metrics = ControllerMetrics()
    /// The periodic full plan under way (see `Fleet+Reconcile`).
    var reconciliation: Task<Void, Never>?
    /// The autoscaler's "what fits" check of each workload, the last one started (see `Fleet+Autoscale`).
    var shortfalls: [String: Task<Void, Never>] = [:]
    /// A failed write was not undone: the store could not be read back. Desired state is
    /// written as changes against what the store holds, so nothing lands until it is.
    var unsynced = false

    public init(store: any FleetStore, logger: Logger, unreachableAfter: Duration) throws {
        self.store = store
        self.logger = logger
        state = FleetState(snapshot: try store.load(), unreachableAfter: unreachableAfter, now: Self.nowMillis())
        // Desired states the load gave new generations: stored before any is sent.
        try store.write(state.loadedChanges)
        state.loadedChanges = StoreBatch()
    }

    public var unreachableAfter: Duration { state.unreachableAfter }

    public func setPublisher(_ publisher: any DesiredPublisher) {
        self.publisher = publisher
    }

    public static func nowMillis() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// Writes a transition's batch, then hands its desired state to the publisher: nothing is
    /// published that the store does not hold. A failed write is logged and thrown, and the
    /// state is reloaded from the store so that the two never disagree.
    func perform(_ effects: Effects) throws(FleetError) {
        // (A change made on a state the store does not hold is dropped, as a failed write is.)
        if try resync() { throw .storage("the controller's state was read back from its store; this change was not kept") }
        // Whether the scheduler ran: placement changed only then (or with the workloads).
        let planned = !state.placementRuns.isEmpty
        for run in state.placementRuns { metrics.placement(full: run.full, millis: run.millis) }
        state.placementRuns.removeAll()
        let start = ContinuousClock.now
        do {
            try store.write(effects.batch)
            // (An empty batch is no transaction.)
            if !effects.batch.isEmpty { metrics.storeWrite(ContinuousClock.now - start, ok: true) }
        } catch {
            metrics.storeWrite(ContinuousClock.now - start, ok: false)
            logger.error("store write failed", metadata: ["error": "\(error)"])
            reload()
            throw .storage("\(error)")
        }
        let b = effects.batch
        // (Not for replica phases or a device's last report: every report burst wrote those,
        // and each made the autoscaler plan the whole fleet again on the actor.)
        if planned || !b.workloads.isEmpty || !b.deletedWorkloads.isEmpty { state.placementVersion &+= 1 }
        for e in b.events { logger.info("\(e.message)", metadata: ["event": "\(e.kind)", "subject": "\(e.subject)"]) }
        if !effects.publish.isEmpty { publisher?.enqueue(state.forWire(effects.publish)) }
    }

    /// After a failed write that could not be undone: reads the state back from the store,
    /// or throws while it cannot. True when it did.
    func resync() throws(FleetError) -> Bool {
        guard unsynced else { return false }
        reload()
        if unsynced { throw .storage("the store cannot be read back after a failed write; nothing changes until it can") }
        return true
    }

    /// Puts the state back to what the store holds, after a change that must not land.
    func reload() {
        let snapshot: FleetSnapshot
        do {
            snapshot = try store.load()
        } catch {
            unsynced = true
            logger.error("the store cannot be read back; nothing changes until it can", metadata: ["error": "\(error)"])
            return
        }
        unsynced = false
        let before = state.devices
        state.load(snapshot)
        // What beats told lives in memory only, and beats carry only changes: a device would
        // not tell it again until it changed (and an old `lastSeen` would judge it silent).
        // (Put back before anything below can fail: the next read-back starts from here.)
        for (id, old) in before {
            guard var d = state.devices[id] else { continue }
            d.lastSeen = max(d.lastSeen, old.lastSeen)
            d.usage = old.usage ?? d.usage
            d.phases = old.phases
            d.rttMillis = old.rttMillis ?? d.rttMillis
            d.lastAppliedGeneration = max(d.lastAppliedGeneration, old.lastAppliedGeneration)
            state.devices[id] = d
        }
        guard !state.loadedChanges.isEmpty else { return }
        do {
            try store.write(state.loadedChanges)
        } catch {
            unsynced = true
            logger.error("the store cannot take the desired state it was read back with; nothing changes until it can", metadata: ["error": "\(error)"])
            return
        }
        publisher?.enqueue(state.forWire(state.loadedChanges.desired.map { Desired(device: $0.record.device, generation: $0.record.generation, replicas: $0.record.replicas) }))
        state.loadedChanges = StoreBatch()
    }

    /// Runs a transition that may refuse (bad input): a refusal leaves the state as the store holds it.
    func transition<T>(_ body: (inout FleetState) throws(FleetError) -> (T, Effects)) throws(FleetError) -> T {
        _ = try resync()
        let value: T
        let effects: Effects
        do {
            (value, effects) = try body(&state)
        } catch {
            reload()
            throw error
        }
        try perform(effects)
        return value
    }

    // MARK: device events

    public func hello(_ m: Hello) { deviceChange { $0.hello(m, now: Self.nowMillis()) } }
    public func state(_ m: DeviceState) { deviceChange { $0.state(m, now: Self.nowMillis()) } }
    public func report(_ m: Report) { deviceChange { $0.report(m, now: Self.nowMillis()) } }

    /// A change that follows from what devices said (see `fromDevices`). After a failed write
    /// the store could not read back, the state is read back first; while it cannot be, the
    /// change is dropped, as its write would fail.
    func deviceChange(_ change: (inout FleetState) -> Effects) {
        guard (try? resync()) != nil else { return }
        try? perform(fromDevices(change(&state)))
    }

    /// Marks what devices said, and what follows from it alone (see `StoreBatch.fromDevices`).
    func fromDevices(_ effects: Effects) -> Effects {
        var marked = effects
        marked.batch.fromDevices = true
        return marked
    }

    /// Reports that arrived together, applied in order and written in one transaction (a
    /// burst of a thousand is one commit, not a thousand).
    public func reports(_ ms: [Report]) {
        _ = take(ms.map(Incoming.report))
    }

    /// Beats and reports that arrived together, in order, in one transaction; returns the
    /// devices to ask for a full snapshot (see `beat`).
    func take(_ items: [Incoming]) -> [String] {
        guard (try? resync()) != nil else { return [] }
        let now = Self.nowMillis()
        var effects = Effects()
        var snapshots: [String] = []
        var reported = Set<String>()
        for item in items {
            switch item {
            case .report(let m):
                let (more, workloads, troubled) = state.statuses(m, now: now)
                effects.merge(more)
                reported.formUnion(workloads)
                if !troubled.isEmpty {
                    // Seen at once: a later report in the burst may clear it.
                    var batch = StoreBatch()
                    let messages = state.advanceRollouts(into: &batch, only: troubled)
                    effects.merge(Effects(batch, publish: messages))
                }
            case .beat(let m):
                let (snapshot, more) = state.beat(m, now: now)
                effects.merge(more)
                if snapshot {
                    snapshots.append(m.device)
                    logger.notice("replica states differ from the device's; asking it for a snapshot", metadata: ["device": "\(m.device)"])
                }
            default: continue
            }
        }
        // Once for the burst: the rollouts of the workloads reported on.
        if !reported.isEmpty {
            var batch = StoreBatch()
            let messages = state.advanceRollouts(into: &batch, only: reported)
            effects.merge(Effects(batch, publish: messages))
        }
        try? perform(fromDevices(effects))
        return snapshots
    }

    public func checkPresence(now: Int64) {
        deviceChange { $0.checkPresence(now: now) }
        if !unsynced { reconcileIfDue(now: now) }
    }
    public func sightLost(now: Int64) { state.sightLost(now: now) }
    public func sightRestored(now: Int64) { state.sightRestored(now: now) }

    /// Takes a beat; returns true when the device should be asked for a full snapshot
    /// (its replica digest says the controller's view has drifted).
    @discardableResult
    public func beat(_ m: Beat) -> Bool {
        guard (try? resync()) != nil else { return false }
        let (snapshot, effects) = state.beat(m, now: Self.nowMillis())
        try? perform(fromDevices(effects))
        if snapshot { logger.notice("replica states differ from the device's; asking it for a snapshot", metadata: ["device": "\(m.device)"]) }
        return snapshot
    }

    /// `/metrics`: the text exposition of every metric, the fleet's shape as of now.
    public func metricsText() -> String { metrics.render(state.metricsShape()) }

    /// Counts a dropped message; returns whether to log it (see `DropLedger`).
    public func recordDrop(_ reason: DropReason, device: String) -> Bool {
        metrics.dropped(reason)
        return state.drops.record(reason, device: device, now: Double(Self.nowMillis()) / 1000)
    }

    public func startPings() -> [(device: String, correlation: [UInt8])] { state.startPings() }
    public func pingAnswered(device: String, correlation: [UInt8]?) { state.pingAnswered(device: device, correlation: correlation) }

    // MARK: operator actions

    public func setSchedulability(_ id: String, _ value: Schedulability) throws(FleetError) -> DeviceView {
        try transition { (s: inout FleetState) throws(FleetError) in ((), try s.setSchedulability(id, value, now: Self.nowMillis())) }
        return try state.device(id)
    }

    /// A revoked device: its replicas move away, and it is unreachable from now on (the broker
    /// dropped it, and its will is refused with its credentials).
    public func revoked(_ id: String) throws(FleetError) {
        try transition { (s: inout FleetState) throws(FleetError) in ((), try s.revoked(id, now: Self.nowMillis())) }
    }

    public func apply(_ spec: WorkloadSpec) throws(FleetError) -> ApplyOutcome {
        try transition { (s: inout FleetState) throws(FleetError) in try s.apply(spec, now: Self.nowMillis()) }
    }

    public func delete(workload name: String) throws(FleetError) {
        try transition { (s: inout FleetState) throws(FleetError) in ((), try s.delete(workload: name, now: Self.nowMillis())) }
    }

    @discardableResult
    public func scale(workload name: String, replicas count: Int, reason: String? = nil) throws(FleetError) -> WorkloadRecord {
        try transition { (s: inout FleetState) throws(FleetError) in try s.scale(workload: name, replicas: count, reason: reason, now: Self.nowMillis()) }
    }

    /// Rolls a workload's template back to an earlier revision (default: the one before).
    public func undo(workload name: String, to revision: Int?) throws(FleetError) -> WorkloadRecord {
        try transition { (s: inout FleetState) throws(FleetError) in try s.undo(workload: name, to: revision, now: Self.nowMillis()) }
    }

    /// Pauses, resumes or aborts (rolls back) a workload's rollout.
    public func control(rollout name: String, _ action: RolloutAction) throws(FleetError) -> WorkloadRecord {
        try transition { (s: inout FleetState) throws(FleetError) in try s.control(rollout: name, action, now: Self.nowMillis()) }
    }

    /// A workload's last rollout and how it is asked for.
    public func rollout(_ name: String) throws(FleetError) -> RolloutView {
        guard let record = state.workloads[name] else { throw .notFound(kind: "workload", name: name) }
        let rows = state.rows(of: name)
        var counts: [String: Int] = [:]
        for row in rows {
            let key = row.revision.map { "revision \($0)" } ?? "unknown"
            counts[key, default: 0] += 1
        }
        let bakeLeft: Int64? = record.rollout.flatMap { r in
            r.phase == .baking ? max(0, Int64(record.spec.rollout?.bakeSeconds ?? 0) * 1000 - (Self.nowMillis() - r.since)) / 1000 : nil
        }
        return RolloutView(workload: name, revision: record.revision, spec: record.spec.rollout, state: record.rollout, replicasByRevision: counts, bakeSecondsLeft: bakeLeft)
    }

    /// A workload's kept revisions, oldest first.
    public func revisions(_ name: String) throws(FleetError) -> [RevisionRecord] {
        guard let record = state.workloads[name] else { throw .notFound(kind: "workload", name: name) }
        return record.history
    }

    // MARK: reads

    public func preview(_ spec: WorkloadSpec) throws(FleetError) -> PlanPreview { try state.preview(spec, now: Self.nowMillis()) }
    public func deviceList() -> [DeviceView] { state.deviceList() }
    public func device(_ id: String) throws(FleetError) -> DeviceView { try state.device(id) }
    public func workloadList() -> [WorkloadView] { state.workloadList() }
    public func workload(_ name: String) throws(FleetError) -> WorkloadView { try state.workload(name) }
    public func summary() -> FleetSummary { state.summary() }
    /// Every device's desired state, to publish again; none while the state is not what the
    /// store holds (it may hold a change the store refused).
    public func allDesired() -> [Desired] { (try? resync()) != nil ? state.allDesired() : [] }
    public var autoscalePlans: Int { state.autoscalePlans }

    public func events(limit: Int, subject: String?) throws -> [EventRecord] {
        try store.events(limit: limit, subject: subject)
    }
}
