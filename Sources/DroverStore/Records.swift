import DroverCore

/// Everything the controller keeps, as loaded at start.
public struct FleetSnapshot: Sendable {
    public var devices: [DeviceRecord] = []
    public var workloads: [WorkloadRecord] = []
    public var replicas: [ReplicaRow] = []
    public var desired: [DesiredRecord] = []
    /// Small facts about the controller itself (`controller.lastAlive`).
    public var meta: [String: String] = [:]
    /// Everything here is what devices said (phases, presence, their events): it may be
    /// written without waiting for the disk, unless it holds desired state or workloads.
    public var fromDevices = false

    public init() {}
}

/// Changes written together in one transaction: either all of them land or none.
public struct StoreBatch: Sendable {
    public var devices: [DeviceRecord] = []
    public var workloads: [WorkloadRecord] = []
    public var deletedWorkloads: [String] = []
    public var replicas: [ReplicaRow] = []
    public var deletedReplicas: [String] = []
    public var desired: [DesiredWrite] = []
    public var events: [EventRecord] = []
    public var meta: [String: String] = [:]
    /// Everything here is what devices said (phases, presence, their events): it may be
    /// written without waiting for the disk, unless it holds desired state or workloads.
    public var fromDevices = false

    public init() {}

    /// Adds `other`'s writes after this one's, as one transaction would make them in order.
    /// (`write` runs deletes before upserts: a row written here and deleted by `other` is
    /// dropped from the upserts, one deleted here and written by `other` from the deletes.)
    public mutating func merge(_ other: StoreBatch) {
        devices += other.devices
        if !other.deletedWorkloads.isEmpty {
            let gone = Set(other.deletedWorkloads)
            workloads.removeAll { gone.contains($0.spec.name) }
        }
        let rewritten = Set(other.workloads.map(\.spec.name))
        deletedWorkloads.removeAll { rewritten.contains($0) }
        workloads += other.workloads
        deletedWorkloads += other.deletedWorkloads
        if !other.deletedReplicas.isEmpty {
            let gone = Set(other.deletedReplicas)
            replicas.removeAll { gone.contains($0.id) }
        }
        let written = Set(other.replicas.map(\.id))
        deletedReplicas.removeAll { written.contains($0) }
        replicas += other.replicas
        deletedReplicas += other.deletedReplicas
        desired += other.desired
        events += other.events
        meta.merge(other.meta) { _, later in later }
        fromDevices = fromDevices && other.fromDevices
    }

    public var isEmpty: Bool {
        devices.isEmpty && workloads.isEmpty && deletedWorkloads.isEmpty && replicas.isEmpty && deletedReplicas.isEmpty
            && desired.isEmpty && events.isEmpty && meta.isEmpty
    }
}

/// A device's new desired state, and what changed since the one before it: a change to one
/// workload touches one replica on each of thousands of devices, and the store writes that
/// replica, not every device's whole state again (at 10k devices and 100k replicas, a new
/// 5,000-replica workload wrote 5,000 whole states, in 100–230 ms).
public struct DesiredWrite: Sendable, Hashable {
    public var record: DesiredRecord
    /// Replicas new or changed since the previous state, in the record's order.
    public var upserted: [ReplicaSpec]
    /// Replicas of the previous state that are gone.
    public var removed: [String]
    /// No previous state was known: whatever the store holds for the device is replaced.
    public var replacesAll: Bool

    /// `inOrder`: both hold their replicas in strictly increasing id order (as the controller
    /// keeps them), so the changes take one walk; else they are matched by id.
    public init(_ record: DesiredRecord, previous: DesiredRecord?, inOrder: Bool = false) {
        self.record = record
        guard let previous else {
            (upserted, removed, replacesAll) = (record.replicas, [], true)
            return
        }
        (upserted, removed) = Self.delta(from: previous.replicas, to: record.replicas, inOrder: inOrder)
        replacesAll = false
    }

    /// The changes as they are known (`upserted` in the record's order).
    public init(_ record: DesiredRecord, upserted: [ReplicaSpec], removed: [String]) {
        (self.record, self.upserted, self.removed, replacesAll) = (record, upserted, removed, false)
    }

    /// What changed from `old` to `new`.
    static func delta(from old: [ReplicaSpec], to new: [ReplicaSpec], inOrder: Bool) -> (upserted: [ReplicaSpec], removed: [String]) {
        guard inOrder else {
            let before = Dictionary(old.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
            let now = Set(new.map(\.id))
            return (new.filter { before[$0.id] != $0 }, old.map(\.id).filter { !now.contains($0) })
        }
        var upserted: [ReplicaSpec] = []
        var removed: [String] = []
        var (i, j) = (0, 0)
        while i < old.count || j < new.count {
            if j == new.count || (i < old.count && old[i].id < new[j].id) {
                removed.append(old[i].id)
                i += 1
            } else if i == old.count || new[j].id < old[i].id {
                upserted.append(new[j])
                j += 1
            } else {
                if old[i] != new[j] { upserted.append(new[j]) }
                i += 1
                j += 1
            }
        }
        return (upserted, removed)
    }
}

/// The controller's storage, kept narrow so that SQLite can be swapped for PostgreSQL by
/// configuration.
public protocol FleetStore: Sendable {
    var location: String { get }
    func load() throws -> FleetSnapshot
    func write(_ batch: StoreBatch) throws
    func events(limit: Int, subject: String?) throws -> [EventRecord]
}
