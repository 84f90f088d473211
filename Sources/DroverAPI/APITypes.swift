import DroverCore

/// The JSON shapes of the REST API, shared by the controller and the CLI.

/// A replica the scheduler could not place, and why.
public struct PendingReplica: Codable, Sendable, Hashable {
    public var id: String
    public var reasons: [String]

    public init(id: String, reasons: [String]) {
        self.id = id
        self.reasons = reasons
    }
}

/// A workload as the API shows it: spec plus per-replica status.
public struct WorkloadView: Codable, Sendable {
    public var name: String
    public var revision: Int
    public var spec: WorkloadSpec
    public var desiredReplicas: Int
    public var runningReplicas: Int
    public var replicas: [ReplicaRow]
    public var unplaced: [PendingReplica]
    public var createdAt: Int64
    public var updatedAt: Int64

    public init(name: String, revision: Int, spec: WorkloadSpec, desiredReplicas: Int, runningReplicas: Int, replicas: [ReplicaRow], unplaced: [PendingReplica], createdAt: Int64, updatedAt: Int64) {
        self.name = name
        self.revision = revision
        self.spec = spec
        self.desiredReplicas = desiredReplicas
        self.runningReplicas = runningReplicas
        self.replicas = replicas
        self.unplaced = unplaced
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// What `apply` did.
public enum ApplyOutcome: String, Codable, Sendable {
    case created, configured, unchanged
}

public struct DeviceView: Codable, Sendable {
    public var record: DeviceRecord
    public var allocated: Resources
    public var replicas: [ReplicaRow]
    public var generation: Generation

    public init(record: DeviceRecord, allocated: Resources, replicas: [ReplicaRow], generation: Generation) {
        self.record = record
        self.allocated = allocated
        self.replicas = replicas
        self.generation = generation
    }
}

public struct FleetSummary: Codable, Sendable {
    public var devices: Int
    public var online: Int
    public var unreachable: Int
    public var workloads: Int
    public var desiredReplicas: Int
    public var runningReplicas: Int
    public var droppedMessages: [String: Int]
    public var placement: PlacementStats

    public init(
        devices: Int, online: Int, unreachable: Int, workloads: Int, desiredReplicas: Int, runningReplicas: Int, droppedMessages: [String: Int],
        placement: PlacementStats
    ) {
        self.devices = devices
        self.online = online
        self.unreachable = unreachable
        self.workloads = workloads
        self.desiredReplicas = desiredReplicas
        self.runningReplicas = runningReplicas
        self.droppedMessages = droppedMessages
        self.placement = placement
    }
}

/// How often placement ran since the controller started, and how long it took: full plans
/// (workloads changed, a device joined, the periodic reconciliation) and incremental
/// re-plans of device changes.
public struct PlacementStats: Codable, Sendable, Equatable {
    public var fullPlans: Int = 0
    public var incrementalPlans: Int = 0
    public var lastFullPlanMillis: Double = 0
    public var lastIncrementalMillis: Double = 0

    public init() {}
}

/// What `/v1/status` reports about the controller itself.
public struct ControllerInfo: Codable, Sendable {
    public var version: String
    public var store: String
    /// The URL agents should connect to.
    public var brokerURL: String
    public var brokerManaged: Bool
    /// Whether the broker refuses anonymous clients and keeps each device to its own topics.
    public var brokerSecurity: String

    public init(version: String, store: String, brokerURL: String, brokerManaged: Bool, brokerSecurity: String = "") {
        self.version = version
        self.store = store
        self.brokerURL = brokerURL
        self.brokerManaged = brokerManaged
        self.brokerSecurity = brokerSecurity
    }
}

public struct StatusResponse: Codable, Sendable {
    public var controller: ControllerInfo
    public var brokerConnected: Bool
    public var fleet: FleetSummary

    public init(controller: ControllerInfo, brokerConnected: Bool, fleet: FleetSummary) {
        self.controller = controller
        self.brokerConnected = brokerConnected
        self.fleet = fleet
    }
}

/// `GET /v1/workloads/{name}/rollout`: the last rollout (nil before the first) and the
/// replicas by the revision they run.
public struct RolloutView: Codable, Sendable {
    public var workload: String
    public var revision: Int
    public var spec: RolloutSpec?
    public var state: RolloutState?
    public var replicasByRevision: [String: Int]
    public var bakeSecondsLeft: Int64?

    public init(workload: String, revision: Int, spec: RolloutSpec?, state: RolloutState?, replicasByRevision: [String: Int], bakeSecondsLeft: Int64?) {
        self.workload = workload
        self.revision = revision
        self.spec = spec
        self.state = state
        self.replicasByRevision = replicasByRevision
        self.bakeSecondsLeft = bakeSecondsLeft
    }
}

/// `POST /v1/workloads/{name}/undo`: the revision to go back to; absent, the one before.
public struct UndoRequest: Codable, Sendable {
    public var revision: Int?

    public init(revision: Int? = nil) {
        self.revision = revision
    }
}

public struct ScaleRequest: Codable, Sendable {
    public var replicas: Int

    public init(replicas: Int) {
        self.replicas = replicas
    }
}

public struct ApplyResponse: Codable, Sendable {
    public var outcome: ApplyOutcome
    public var workload: WorkloadView

    public init(outcome: ApplyOutcome, workload: WorkloadView) {
        self.outcome = outcome
        self.workload = workload
    }
}

/// One change a plan would make: place, move, stop or preempt a replica.
public struct PlannedChange: Codable, Sendable, Hashable {
    public var action: String
    public var replica: String
    public var workload: String
    public var device: String
    /// For a move: where the replica runs now.
    public var from: String?

    public init(action: String, replica: String, workload: String, device: String, from: String?) {
        self.action = action
        self.replica = replica
        self.workload = workload
        self.device = device
        self.from = from
    }
}

/// `POST /v1/plan` and `drover apply --dry-run`: what applying a manifest would do.
public struct PlanPreview: Codable, Sendable {
    public var workload: String
    public var outcome: ApplyOutcome
    public var changes: [PlannedChange]
    /// Replicas (of any workload) left unplaced, each with the reason of every device.
    public var unplaced: [PendingReplica]

    public init(workload: String, outcome: ApplyOutcome, changes: [PlannedChange], unplaced: [PendingReplica]) {
        self.workload = workload
        self.outcome = outcome
        self.changes = changes
        self.unplaced = unplaced
    }
}
