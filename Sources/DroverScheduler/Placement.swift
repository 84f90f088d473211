import DroverCore

/// Whether a device takes new replicas.
public enum Schedulability: String, Codable, Sendable, CaseIterable {
    case normal
    /// No new placements; what runs there stays.
    case cordoned
    /// No new placements, and what runs there is moved away.
    case draining
}

/// What the controller measures of a device's connection.
public struct ConnectivityRecord: Hashable, Codable, Sendable {
    public var linkClass: LinkClass
    /// Fraction of the measurement window the device was online, 0...1.
    public var uptimeRatio: Double
    public var flaps: Int
    /// Milliseconds since the epoch.
    public var lastSeen: Int64
    public var rttMillis: Double?

    public init(linkClass: LinkClass = .wired, uptimeRatio: Double = 1, flaps: Int = 0, lastSeen: Int64 = 0, rttMillis: Double? = nil) {
        self.linkClass = linkClass
        self.uptimeRatio = uptimeRatio
        self.flaps = flaps
        self.lastSeen = lastSeen
        self.rttMillis = rttMillis
    }
}

/// A device as placement sees it.
public struct DeviceSnapshot: Hashable, Sendable {
    public var id: String
    public var labels: [String: String]
    public var arch: String
    public var capacity: Resources
    public var runtimes: Set<RuntimeKind>
    public var presence: Presence
    public var schedulability: Schedulability
    public var connectivity: ConnectivityRecord

    public init(
        id: String, labels: [String: String] = [:], arch: String = "amd64", capacity: Resources, runtimes: Set<RuntimeKind> = [.exec],
        presence: Presence = .online, schedulability: Schedulability = .normal, connectivity: ConnectivityRecord = ConnectivityRecord()
    ) {
        self.id = id
        self.labels = labels
        self.arch = arch
        self.capacity = capacity
        self.runtimes = runtimes
        self.presence = presence
        self.schedulability = schedulability
        self.connectivity = connectivity
    }
}

/// One replica and where it runs.
public struct Assignment: Hashable, Sendable, Comparable {
    public var workload: String
    /// `<workload>-<ordinal>` for `mode: replicas`, `<workload>-<device>` for `mode: every`.
    public var id: String
    /// The ordinal for `mode: replicas`; -1 for `mode: every`.
    public var ordinal: Int
    public var device: String

    public init(workload: String, ordinal: Int, device: String) {
        self.workload = workload
        self.id = WorkloadSpec.replicaID(workload: workload, ordinal: ordinal)
        self.ordinal = ordinal
        self.device = device
    }

    public init(everyOf workload: String, device: String) {
        self.workload = workload
        self.id = "\(workload)-\(device)"
        self.ordinal = -1
        self.device = device
    }

    public static func < (a: Assignment, b: Assignment) -> Bool {
        (a.workload, a.ordinal, a.id, a.device) < (b.workload, b.ordinal, b.id, b.device)
    }
}

/// A replica that found no device, and why each device said no.
public struct Unplaced: Hashable, Sendable {
    public var workload: String
    public var id: String
    /// "3 devices: insufficient memory (needs 64Mi, most free 32Mi)", largest group first.
    public var reasons: [String]
}

/// The result of placement: where every replica runs, what could not be placed, and which
/// lower-priority replicas were evicted to make room.
public struct PlacementPlan: Sendable {
    public var assignments: [Assignment]
    public var unplaced: [Unplaced]
    public var preempted: [Assignment]

    public init(assignments: [Assignment] = [], unplaced: [Unplaced] = [], preempted: [Assignment] = []) {
        self.assignments = assignments
        self.unplaced = unplaced
        self.preempted = preempted
    }

    public func byDevice() -> [String: [Assignment]] {
        Dictionary(grouping: assignments, by: \.device)
    }
}

/// Everything placement looks at. `now` is passed in: placement reads no clock.
public struct SchedulingInput: Sendable {
    public var devices: [DeviceSnapshot]
    public var workloads: [WorkloadSpec]
    public var current: [Assignment]
    /// Milliseconds since the epoch.
    public var now: Int64

    public init(devices: [DeviceSnapshot], workloads: [WorkloadSpec], current: [Assignment], now: Int64) {
        self.devices = devices
        self.workloads = workloads
        self.current = current
        self.now = now
    }
}
