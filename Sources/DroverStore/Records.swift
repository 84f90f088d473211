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

/// A device's new desired state, as the store keeps it: its generation and the digest of its
/// replicas, not the replicas, which follow from the replica rows and the workloads (the
/// controller makes them again at a restart, `FleetState.load`). A change to one workload
/// touches one replica on each of thousands of devices: storing every device's whole state
/// wrote 5,000 of them for a new 5,000-replica workload at 10k devices (100–230 ms), and
/// storing the specs one row per replica still took about 40 ms of such a change.
public struct DesiredWrite: Sendable, Hashable {
    public var record: DesiredRecord

    public init(_ record: DesiredRecord) {
        self.record = record
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
