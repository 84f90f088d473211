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

/// The controller's in-memory fleet: devices, workloads, replicas and each device's desired
/// state, written through to the store in one transaction per change.
public actor Fleet {
    let store: any FleetStore
    let logger: Logger
    var publisher: (any DesiredPublisher)?
    /// A device whose beats stop for this long is unreachable.
    public let unreachableAfter: Duration
    var devices: [String: DeviceRecord] = [:]
    var workloads: [String: WorkloadRecord] = [:]
    var replicas: [String: ReplicaRow] = [:]
    var desired: [String: DesiredRecord] = [:]
    /// Replica ids by the device they are placed on.
    var replicasOn: [String: Set<String>] = [:]
    /// Placement state kept between plans, so that a device change re-plans only what it
    /// touched. nil when it must be built afresh: workloads changed, or the store was reloaded.
    var scheduler: IncrementalScheduler?
    /// When placement last ran over the whole fleet (see `reconcileInterval`).
    var lastFullPlan: Int64 = 0
    var placementStats = PlacementStats()
    var drops = DropLedger()
    /// When the controller could not hear the fleet (see `Sight`).
    var sight: Sight
    /// Devices whose `offline` arrived within the grace: judged when it ends (see `state`).
    var heldWills: Set<String> = []
    /// When each device was last asked for a snapshot (see `wantsSnapshot`).
    var snapshotAsked: [String: Int64] = [:]
    var lastAliveWritten: Int64 = 0

    public init(store: any FleetStore, logger: Logger, unreachableAfter: Duration) throws {
        self.store = store
        self.logger = logger
        self.unreachableAfter = unreachableAfter
        let snapshot = try store.load()
        (devices, workloads, replicas, desired) = Self.index(snapshot)
        replicasOn = Self.byDevice(replicas)
        sight = Sight(lastAlive: snapshot.meta[Self.lastAliveKey].flatMap { Int64($0) }, now: Self.nowMillis())
    }

    static func byDevice(_ replicas: [String: ReplicaRow]) -> [String: Set<String>] {
        replicas.values.reduce(into: [:]) { $0[$1.device, default: []].insert($1.id) }
    }

    static func index(_ s: FleetSnapshot) -> ([String: DeviceRecord], [String: WorkloadRecord], [String: ReplicaRow], [String: DesiredRecord]) {
        (
            Dictionary(s.devices.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a }),
            Dictionary(s.workloads.map { ($0.spec.name, $0) }, uniquingKeysWith: { a, _ in a }),
            Dictionary(s.replicas.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a }),
            Dictionary(s.desired.map { ($0.device, $0) }, uniquingKeysWith: { a, _ in a })
        )
    }

    public func setPublisher(_ publisher: any DesiredPublisher) {
        self.publisher = publisher
    }

    public static func nowMillis() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    func event(_ kind: String, _ subject: String, _ message: String, into batch: inout StoreBatch) {
        batch.events.append(EventRecord(time: Self.nowMillis(), kind: kind, subject: subject, message: message))
        logger.info("\(message)", metadata: ["event": "\(kind)", "subject": "\(subject)"])
    }

    /// Writes a batch, then hands its desired state to the publisher: nothing is published
    /// that the store does not hold. A failed write is logged and thrown, and memory is
    /// reloaded from disk so that the two never disagree.
    func commit(_ batch: StoreBatch, publishing messages: [Desired] = []) throws {
        do {
            try store.write(batch)
        } catch {
            logger.error("store write failed", metadata: ["error": "\(error)"])
            reload()
            throw error
        }
        if !batch.devices.isEmpty || !batch.workloads.isEmpty || !batch.replicas.isEmpty || !batch.deletedReplicas.isEmpty || !batch.deletedWorkloads.isEmpty {
            placementVersion &+= 1
        }
        if !messages.isEmpty { publisher?.enqueue(messages) }
    }

    /// Puts memory back to what the store holds, after a change that must not land.
    func reload() {
        guard let snapshot = try? store.load() else { return }
        (devices, workloads, replicas, desired) = Self.index(snapshot)
        replicasOn = Self.byDevice(replicas)
        scheduler = nil
        placementVersion &+= 1
    }

    var lastOfflineReplan: Int64 = 0
    /// Latest CPU use per replica (millicores) and when it was reported.
    var replicaCPU: [String: (millis: Int, time: Int64)] = [:]
    var autoscalers: [String: Autoscaler] = [:]
    /// Grows with every committed change that placement depends on, so that the autoscaler
    /// asks the scheduler again only when something changed.
    var placementVersion: UInt64 = 0
    /// The autoscaler's last "how many of N would not fit", with the version it was computed at.
    var unplaceableCache: [String: (wanted: Int, version: UInt64, count: Int)] = [:]
    /// Full plans the autoscaler ran to see what fits (for tests and status).
    public internal(set) var autoscalePlans = 0
    /// Pings in flight: correlation number → (device, sent at).
    var pings: [UInt64: (device: String, sent: ContinuousClock.Instant)] = [:]
    var nextPing: UInt64 = 1

    /// Every device's current desired state, for republishing after a broker restart.
    public func allDesired() -> [Desired] {
        desired.values.sorted { $0.device < $1.device }.map { Desired(device: $0.device, generation: $0.generation, replicas: $0.replicas) }
    }
}
