/// A device as the controller knows it.
public struct DeviceRecord: Codable, Sendable, Hashable {
    public var id: String
    public var facts: DeviceFacts
    public var presence: Presence
    /// Milliseconds since the epoch on the controller's clock.
    public var lastSeen: Int64
    public var joinedAt: Int64
    public var bootID: String
    public var lastAppliedGeneration: Generation
    /// Highest report sequence number applied; older or repeated reports are ignored.
    public var lastReportSeq: Int64
    public var usage: Usage?
    public var phases: [String: Int]

    public init(id: String, facts: DeviceFacts, presence: Presence, lastSeen: Int64, joinedAt: Int64, bootID: String,
                lastAppliedGeneration: Generation = 0, lastReportSeq: Int64 = 0, usage: Usage? = nil, phases: [String: Int] = [:]) {
        self.id = id
        self.facts = facts
        self.presence = presence
        self.lastSeen = lastSeen
        self.joinedAt = joinedAt
        self.bootID = bootID
        self.lastAppliedGeneration = lastAppliedGeneration
        self.lastReportSeq = lastReportSeq
        self.usage = usage
        self.phases = phases
    }
}

/// A workload and its revision, which grows with every change of its spec.
public struct WorkloadRecord: Codable, Sendable, Hashable {
    public var spec: WorkloadSpec
    public var revision: Int
    public var createdAt: Int64
    public var updatedAt: Int64

    public init(spec: WorkloadSpec, revision: Int, createdAt: Int64, updatedAt: Int64) {
        self.spec = spec
        self.revision = revision
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// One placed replica and the last status its device reported.
public struct ReplicaRow: Codable, Sendable, Hashable {
    public var id: String
    public var workload: String
    public var ordinal: Int
    public var device: String
    public var phase: ReplicaPhase
    public var pid: Int32?
    public var exitCode: Int32?
    public var restarts: Int
    public var message: String?
    public var updatedAt: Int64

    public init(id: String, workload: String, ordinal: Int, device: String, phase: ReplicaPhase = .pending, pid: Int32? = nil,
                exitCode: Int32? = nil, restarts: Int = 0, message: String? = nil, updatedAt: Int64) {
        self.id = id
        self.workload = workload
        self.ordinal = ordinal
        self.device = device
        self.phase = phase
        self.pid = pid
        self.exitCode = exitCode
        self.restarts = restarts
        self.message = message
        self.updatedAt = updatedAt
    }
}

/// The desired state last sent to one device.
public struct DesiredRecord: Codable, Sendable, Hashable {
    public var device: String
    public var generation: Generation
    public var replicas: [ReplicaSpec]

    public init(device: String, generation: Generation, replicas: [ReplicaSpec]) {
        self.device = device
        self.generation = generation
        self.replicas = replicas
    }
}

/// Something that happened in the fleet, for `drover events`.
public struct EventRecord: Codable, Sendable, Hashable {
    public var id: Int64
    public var time: Int64
    public var kind: String
    public var subject: String
    public var message: String

    public init(id: Int64 = 0, time: Int64, kind: String, subject: String, message: String) {
        self.id = id
        self.time = time
        self.kind = kind
        self.subject = subject
        self.message = message
    }
}
