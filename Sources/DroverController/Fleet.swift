import DroverCore
import DroverProtocol
import DroverScheduler
import DroverStore
import Foundation
import Logging

/// Sends a device its whole desired state. The MQTT ingest implements it; tests record it.
public protocol DesiredPublisher: Sendable {
    func publish(_ desired: Desired) async
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
    var drops = DropLedger()

    public init(store: any FleetStore, logger: Logger, unreachableAfter: Duration) throws {
        self.store = store
        self.logger = logger
        self.unreachableAfter = unreachableAfter
        let snapshot = try store.load()
        (devices, workloads, replicas, desired) = Self.index(snapshot)
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

    /// Writes a batch; a failed write is logged and reported, memory is reloaded from disk so
    /// that the two never disagree.
    func commit(_ batch: StoreBatch) throws {
        do {
            try store.write(batch)
        } catch {
            logger.error("store write failed", metadata: ["error": "\(error)"])
            if let snapshot = try? store.load() {
                (devices, workloads, replicas, desired) = Self.index(snapshot)
            }
            throw error
        }
    }

    // MARK: placement

    /// Runs placement and turns the plan into replica rows and per-device desired state.
    /// Only devices whose replica set changed get a new generation.
    func replan(into batch: inout StoreBatch, now: Int64 = Fleet.nowMillis()) -> [Desired] {
        let plan = Scheduler.plan(schedulingInput(workloads: workloads.values.map(\.spec), now: now))
        var placed = Set<String>()
        for a in plan.assignments {
            placed.insert(a.id)
            if let row = replicas[a.id], row.device == a.device { continue }
            let row = ReplicaRow(id: a.id, workload: a.workload, ordinal: a.ordinal, device: a.device, updatedAt: now)
            replicas[row.id] = row
            batch.replicas.append(row)
            event("ReplicaPlaced", a.workload, "replica \(a.id) placed on \(a.device)", into: &batch)
        }
        for a in plan.preempted {
            event("ReplicaPreempted", a.workload, "replica \(a.id) on \(a.device) preempted by a higher-priority workload", into: &batch)
        }
        for id in replicas.keys.sorted() where !placed.contains(id) {
            batch.deletedReplicas.append(id)
            replicas[id] = nil
        }
        lastUnplaced = Dictionary(grouping: plan.unplaced, by: \.workload)

        var messages: [Desired] = []
        let byDevice = plan.byDevice()
        for id in Set(devices.keys).union(desired.keys).sorted() {
            let specs = (byDevice[id] ?? []).compactMap { a in workloads[a.workload]?.spec.replica(id: a.id) }.sorted { $0.id < $1.id }
            let previous = desired[id]
            if let previous, previous.replicas == specs { continue }
            if previous == nil, specs.isEmpty { continue }
            // Generation never decreases: a stale retained message must not resurrect a replica.
            let record = DesiredRecord(device: id, generation: (previous?.generation ?? 0) + 1, replicas: specs)
            desired[id] = record
            batch.desired.append(record)
            messages.append(Desired(device: id, generation: record.generation, replicas: specs))
        }
        return messages
    }

    /// Devices, the given workloads and the replicas as they stand, for the scheduler.
    func schedulingInput(workloads specs: [WorkloadSpec], now: Int64) -> SchedulingInput {
        let snapshots = devices.values.map { d in
            DeviceSnapshot(
                id: d.id, labels: d.facts.labels, arch: d.facts.arch, capacity: d.facts.capacity, runtimes: Set(d.facts.runtimes),
                presence: d.presence, schedulability: Schedulability(rawValue: d.schedulability) ?? .normal,
                connectivity: ConnectivityRecord(
                    linkClass: d.facts.link ?? .wired, uptimeRatio: d.uptimeRatio(at: now), flaps: d.flaps, lastSeen: d.lastSeen, rttMillis: d.rttMillis))
        }
        let current = replicas.values.map { r in
            r.ordinal >= 0 ? Assignment(workload: r.workload, ordinal: r.ordinal, device: r.device) : Assignment(everyOf: r.workload, device: r.device)
        }
        return SchedulingInput(devices: snapshots, workloads: specs, current: current, now: now)
    }

    var lastUnplaced: [String: [Unplaced]] = [:]
    var lastOfflineReplan: Int64 = 0
    /// Latest CPU use per replica (millicores) and when it was reported.
    var replicaCPU: [String: (millis: Int, time: Int64)] = [:]
    var autoscalers: [String: Autoscaler] = [:]
    /// Pings in flight: correlation number → (device, sent at).
    var pings: [UInt64: (device: String, sent: ContinuousClock.Instant)] = [:]
    var nextPing: UInt64 = 1

    func send(_ messages: [Desired]) async {
        guard let publisher else { return }
        for m in messages { await publisher.publish(m) }
    }

    /// Every device's current desired state, for republishing after a broker restart.
    public func allDesired() -> [Desired] {
        desired.values.sorted { $0.device < $1.device }.map { Desired(device: $0.device, generation: $0.generation, replicas: $0.replicas) }
    }
}
