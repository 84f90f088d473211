import DroverAPI
import DroverCore
import DroverProtocol
import DroverScheduler
import DroverStore

/// What one state change asks for: a store batch (written in one transaction) and the desired
/// state to publish once that write has committed.
struct Effects {
    var batch: StoreBatch
    var publish: [Desired]

    init(_ batch: StoreBatch = StoreBatch(), publish: [Desired] = []) {
        self.batch = batch
        self.publish = publish
    }

    mutating func merge(_ other: Effects) {
        batch.merge(other.batch)
        publish += other.publish
    }
}

/// The controller's view of the fleet, and every change to it as a transition: given an
/// event and the time, a `mutating` method updates the state and returns `Effects`. No I/O,
/// no clock of its own, no awaiting: the `Fleet` actor performs the effects, so no change is
/// ever interleaved with another, and each can be tested without a store or a broker.
struct FleetState {
    /// A device whose beats stop for this long is unreachable.
    let unreachableAfter: Duration
    var devices: [String: DeviceRecord] = [:]
    var workloads: [String: WorkloadRecord] = [:]
    var replicas: [String: ReplicaRow] = [:]
    var desired: [String: DesiredRecord] = [:]
    /// For each device's desired state, the stamp of each replica's workload when its spec was
    /// made (in the record's order): a spec whose workload has the same stamp now is reused,
    /// not made and compared again (see `updateDesired`). Missing: nothing is reused.
    var desiredStamps: [String: [SpecMade]] = [:]
    var workloadStamps = WorkloadStamps()
    /// What the last load changed and the store must get before anything is sent: desired
    /// states under new generations (see `makeDesired`).
    var loadedChanges = StoreBatch()
    /// Replica ids by the device they are placed on.
    var replicasOn: [String: SortedIDs] = [:]
    /// Replica ids by their workload: rollouts, autoscaling and views look at one workload's
    /// replicas on every report or request, which a scan of the whole fleet made O(fleet).
    var replicasOf: [String: Set<String>] = [:]
    /// Placement state kept between plans, so that a device change re-plans only what it
    /// touched. nil when it must be built afresh: workloads changed, or the store was reloaded.
    var scheduler: IncrementalScheduler?
    /// When placement last ran over the whole fleet (see `reconcileInterval`).
    var lastFullPlan: Int64 = 0
    /// The periodic full plan being computed off the actor, and what changed since it began
    /// (see `Fleet+Reconcile`); nil when none is.
    var reconciling: Reconciliation?
    var reconcileToken = 0
    var placementStats = PlacementStats()
    /// Placement runs since the fleet last took them for its metrics.
    var placementRuns: [(full: Bool, millis: Double)] = []
    /// Counts changes to where replicas are (see `record`): a reconciliation that saw none
    /// while it was computed takes what its plan moves from the work done off the actor.
    var placementEdits = 0
    var drops = DropLedger()
    /// When the controller could not hear the fleet (see `Sight`).
    var sight: Sight
    /// Devices whose `offline` arrived within the grace: judged when it ends (see `state`).
    var heldWills: Set<String> = []
    /// When each device was last asked for a snapshot (see `wantsSnapshot`).
    var snapshotAsked: [String: Int64] = [:]
    var lastAliveWritten: Int64 = 0
    var dropsWritten = ""
    var lastOfflineReplan: Int64 = 0
    /// Latest CPU use per replica (millicores) and the device that reported it. Beats carry
    /// only figures that moved, so a figure stands while its device is online.
    var replicaCPU: [String: (millis: Int, device: String)] = [:]
    /// What each device promised in its hello and told in its beats since (see `DeviceLink`).
    var links: [String: DeviceLink] = [:]
    var autoscalers: [String: Autoscaler] = [:]
    /// Grows with every committed change that placement depends on, so that the autoscaler
    /// asks the scheduler again only when something changed.
    var placementVersion: UInt64 = 0
    /// The autoscaler's last "how many of N would not fit", with the version it was computed
    /// at, and when.
    var unplaceableCache: [String: (wanted: Int, version: UInt64, count: Int, at: Int64)] = [:]
    /// Full plans the autoscaler ran to see what fits.
    var autoscalePlans = 0
    /// "What fits" checks to run off the actor (see `Fleet+Autoscale`), and those under way.
    var shortfallAsked: [ShortfallWork] = []
    var shortfallRunning: Set<String> = []
    /// Fleets up to this many devices have "what fits" answered at once, on the actor (a full
    /// plan of 1,000 devices takes about 25 ms; of 10,000, about 400).
    var shortfallInlineDevices = 2_000
    /// Pings in flight: correlation number → (device, sent at).
    var pings: [UInt64: (device: String, sent: ContinuousClock.Instant)] = [:]
    var nextPing: UInt64 = 1
    /// The time of the transition in progress (milliseconds since the epoch), set by each
    /// transition from its `now`.
    var clock: Int64

    init(snapshot: FleetSnapshot, unreachableAfter: Duration, now: Int64) {
        self.unreachableAfter = unreachableAfter
        clock = now
        sight = Sight(lastAlive: snapshot.meta[Self.lastAliveKey].flatMap { Int64($0) }, now: now)
        dropsWritten = snapshot.meta[Self.dropsKey] ?? ""
        drops = DropLedger(counts: DropLedger.counts(fromText: dropsWritten))
        load(snapshot)
    }

    /// Takes what the store holds (at start, and after a change that must not land).
    mutating func load(_ s: FleetSnapshot) {
        devices = Dictionary(s.devices.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        workloads = Dictionary(s.workloads.map { ($0.spec.name, $0) }, uniquingKeysWith: { a, _ in a })
        replicas = Dictionary(s.replicas.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        replicasOn = replicas.values.reduce(into: [String: [String]]()) { $0[$1.device, default: []].append($1.id) }.mapValues(SortedIDs.init)
        replicasOf = replicas.values.reduce(into: [:]) { $0[$1.workload, default: []].insert($1.id) }
        loadedChanges = makeDesired(stored: s.desired)
        scheduler = nil
        // A plan computed from the state before this load must not land; the next sweep
        // plans afresh.
        reconciling = nil
        placementVersion &+= 1
    }

    /// A workload's replicas, by ordinal then id.
    func rows(of workload: String) -> [ReplicaRow] {
        (replicasOf[workload] ?? []).compactMap { replicas[$0] }.sorted { ($0.ordinal, $0.id) < ($1.ordinal, $1.id) }
    }

    func event(_ kind: String, _ subject: String, _ message: String, into batch: inout StoreBatch) {
        batch.events.append(EventRecord(time: clock, kind: kind, subject: subject, message: message))
    }

    /// Every device's current desired state, for republishing after a broker restart.
    func allDesired() -> [Desired] {
        forWire(desired.values.sorted { $0.device < $1.device }.map { Desired(device: $0.device, generation: $0.generation, replicas: $0.replicas) })
    }

    /// `messages` as each device reads them: deflated for a device that says it can.
    func forWire(_ messages: [Desired]) -> [Desired] {
        messages.map { m in
            var m = m
            m.deflate = devices[m.device]?.facts.readsDeflate ?? false
            return m
        }
    }
}
