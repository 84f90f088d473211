import DroverCore

/// A device as placement sees it.
public struct DeviceSnapshot: Hashable, Sendable {
    public var id: String
    public var labels: [String: String]
    public var capacity: Resources
    public var runtimes: Set<RuntimeKind>
    public var presence: Presence

    public init(id: String, labels: [String: String], capacity: Resources, runtimes: Set<RuntimeKind>, presence: Presence) {
        self.id = id
        self.labels = labels
        self.capacity = capacity
        self.runtimes = runtimes
        self.presence = presence
    }
}

/// One replica slot of a workload and where it runs.
public struct Assignment: Hashable, Sendable, Comparable {
    public var workload: String
    public var ordinal: Int
    public var device: String

    public init(workload: String, ordinal: Int, device: String) {
        self.workload = workload
        self.ordinal = ordinal
        self.device = device
    }

    public var replicaID: String { WorkloadSpec.replicaID(workload: workload, ordinal: ordinal) }

    public static func < (a: Assignment, b: Assignment) -> Bool {
        (a.workload, a.ordinal, a.device) < (b.workload, b.ordinal, b.device)
    }
}

/// Why one device could not take a replica.
public enum RejectionReason: Hashable, Sendable, CustomStringConvertible {
    case unreachable
    case selectorMismatch(key: String, wanted: String)
    case runtimeMissing(RuntimeKind)
    case alreadyRunsWorkload
    case insufficientCPU(neededMillis: Int, freeMillis: Int)
    case insufficientMemory(needed: Int64, free: Int64)

    /// Groups devices by kind of reason in explanations.
    var kind: String {
        switch self {
        case .unreachable: "unreachable"
        case .selectorMismatch(let key, let wanted): "selector \(key)=\(wanted) not matched"
        case .runtimeMissing(let r): "runtime \(r.rawValue) not available"
        case .alreadyRunsWorkload: "already runs a replica of this workload"
        case .insufficientCPU(let needed, _): "insufficient cpu (needs \(Quantity.formatCPU(needed)))"
        case .insufficientMemory(let needed, _): "insufficient memory (needs \(Quantity.formatMemory(needed)))"
        }
    }

    public var description: String { kind }
}

/// A replica that found no device, and why each device said no.
public struct Unplaced: Hashable, Sendable {
    public var workload: String
    public var ordinal: Int
    /// "3 devices: insufficient memory (needs 64Mi)" lines, largest group first.
    public var reasons: [String]
}

/// The result of placement: where every replica runs, and what could not be placed.
public struct PlacementPlan: Sendable {
    public var assignments: [Assignment]
    public var unplaced: [Unplaced]

    /// Assignments grouped by device.
    public func byDevice() -> [String: [Assignment]] {
        Dictionary(grouping: assignments, by: \.device)
    }
}
