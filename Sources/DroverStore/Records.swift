import DroverCore

/// Everything the controller keeps, as loaded at start.
public struct FleetSnapshot: Sendable {
    public var devices: [DeviceRecord] = []
    public var workloads: [WorkloadRecord] = []
    public var replicas: [ReplicaRow] = []
    public var desired: [DesiredRecord] = []
    /// Small facts about the controller itself (`controller.lastAlive`).
    public var meta: [String: String] = [:]

    public init() {}
}

/// Changes written together in one transaction: either all of them land or none.
public struct StoreBatch: Sendable {
    public var devices: [DeviceRecord] = []
    public var workloads: [WorkloadRecord] = []
    public var deletedWorkloads: [String] = []
    public var replicas: [ReplicaRow] = []
    public var deletedReplicas: [String] = []
    public var desired: [DesiredRecord] = []
    public var events: [EventRecord] = []
    public var meta: [String: String] = [:]

    public init() {}

    /// Adds `other`'s writes after this one's, as one transaction would make them in order.
    public mutating func merge(_ other: StoreBatch) {
        devices += other.devices
        workloads += other.workloads
        deletedWorkloads += other.deletedWorkloads
        replicas += other.replicas
        deletedReplicas += other.deletedReplicas
        desired += other.desired
        events += other.events
        meta.merge(other.meta) { _, later in later }
    }

    public var isEmpty: Bool {
        devices.isEmpty && workloads.isEmpty && deletedWorkloads.isEmpty && replicas.isEmpty && deletedReplicas.isEmpty
            && desired.isEmpty && events.isEmpty && meta.isEmpty
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
