import DroverCore

/// The schema version every envelope carries in `v`.
public let wireVersion = 1

/// Every device message names its device; the controller refuses one whose id differs
/// from the id in its topic.
public protocol DeviceMessage: Codable, Sendable {
    var v: Int { get }
    var device: String { get }
    /// Checks beyond types: ranges and names, with field paths.
    func validate() -> [FieldError]
}

extension DeviceMessage {
    public func validate() -> [FieldError] { [] }
}

/// `dev/<id>/hello`, QoS 1: sent on every (re)connect.
public struct Hello: DeviceMessage, Hashable {
    public var v = wireVersion
    public var device: String
    public var facts: DeviceFacts
    /// Changes when the device reboots (Linux `boot_id`).
    public var bootID: String
    public var lastAppliedGeneration: Generation

    public init(device: String, facts: DeviceFacts, bootID: String, lastAppliedGeneration: Generation) {
        self.device = device
        self.facts = facts
        self.bootID = bootID
        self.lastAppliedGeneration = lastAppliedGeneration
    }

    public func validate() -> [FieldError] {
        var errors: [FieldError] = []
        if facts.capacity.cpuMillis < 0 { errors.append(.init(path: "facts.capacity.cpuMillis", reason: "must not be negative")) }
        if facts.capacity.memoryBytes < 0 { errors.append(.init(path: "facts.capacity.memoryBytes", reason: "must not be negative")) }
        if lastAppliedGeneration < 0 { errors.append(.init(path: "lastAppliedGeneration", reason: "must not be negative")) }
        for key in facts.labels.keys where !Names.isValidLabelKey(key) {
            errors.append(.init(path: "facts.labels.\(key)", reason: "is not a valid label key"))
        }
        return errors
    }
}

/// `dev/<id>/state`, QoS 1, retained. `offline` is the device's last will.
public struct DeviceState: DeviceMessage, Hashable {
    public enum Value: String, Codable, Sendable { case online, offline }
    public var v = wireVersion
    public var device: String
    public var state: Value

    public init(device: String, state: Value) {
        self.device = device
        self.state = state
    }
}

/// `dev/<id>/beat`, QoS 0: periodic liveness and usage.
public struct Beat: DeviceMessage, Hashable {
    public var v = wireVersion
    public var device: String
    /// Milliseconds since the Unix epoch on the device's clock.
    public var time: Int64
    public var usage: Usage
    /// How many replicas are in each phase.
    public var phases: [String: Int]
    /// CPU used by each running replica's process group since the last beat, in millicores.
    public var replicaCPU: [String: Int]?

    public init(device: String, time: Int64, usage: Usage, phases: [String: Int]) {
        self.device = device
        self.time = time
        self.usage = usage
        self.phases = phases
    }

    public func validate() -> [FieldError] {
        guard usage.cpuPercent.isFinite, usage.cpuPercent >= 0 else {
            return [.init(path: "usage.cpuPercent", reason: "must be a finite number >= 0")]
        }
        return []
    }
}

/// The status of one replica at one moment, as the agent saw it.
public struct ReplicaStatus: Hashable, Codable, Sendable {
    public var id: String
    public var workload: String
    public var phase: ReplicaPhase
    /// The generation of desired state the agent was applying.
    public var generation: Generation
    public var pid: Int32?
    public var exitCode: Int32?
    public var restarts: Int
    public var message: String?
    /// Milliseconds since the Unix epoch on the device's clock.
    public var time: Int64

    public init(
        id: String, workload: String, phase: ReplicaPhase, generation: Generation, pid: Int32? = nil,
        exitCode: Int32? = nil, restarts: Int = 0, message: String? = nil, time: Int64
    ) {
        self.id = id
        self.workload = workload
        self.phase = phase
        self.generation = generation
        self.pid = pid
        self.exitCode = exitCode
        self.restarts = restarts
        self.message = message
        self.time = time
    }
}

/// `dev/<id>/report`, QoS 1: replica status changes from the agent's outbox.
///
/// `seq` increases per device; the controller ignores a report whose seq it has already
/// applied, so a resend after a lost PUBACK is harmless.
public struct Report: DeviceMessage, Hashable {
    public var v = wireVersion
    public var device: String
    public var seq: Int64
    public var replicas: [ReplicaStatus]

    public init(device: String, seq: Int64, replicas: [ReplicaStatus]) {
        self.device = device
        self.seq = seq
        self.replicas = replicas
    }

    public func validate() -> [FieldError] {
        var errors: [FieldError] = []
        if seq < 1 { errors.append(.init(path: "seq", reason: "must be >= 1")) }
        for (i, r) in replicas.enumerated() where r.id.isEmpty || r.restarts < 0 {
            errors.append(.init(path: "replicas[\(i)]", reason: "needs an id and restarts >= 0"))
        }
        return errors
    }
}

/// `dev/<id>/desired`, QoS 1, retained: the device's whole desired state.
public struct Desired: DeviceMessage, Hashable {
    public var v = wireVersion
    public var device: String
    public var generation: Generation
    public var replicas: [ReplicaSpec]

    public init(device: String, generation: Generation, replicas: [ReplicaSpec]) {
        self.device = device
        self.generation = generation
        self.replicas = replicas
    }

    public func validate() -> [FieldError] {
        var errors: [FieldError] = []
        if generation < 1 { errors.append(.init(path: "generation", reason: "must be >= 1")) }
        var seen = Set<String>()
        for (i, r) in replicas.enumerated() {
            if r.command.isEmpty { errors.append(.init(path: "replicas[\(i)].command", reason: "must not be empty")) }
            if !seen.insert(r.id).inserted { errors.append(.init(path: "replicas[\(i)].id", reason: "duplicate id \(r.id)")) }
            if r.id.isEmpty || r.id.contains("/") || r.id.contains("..") {
                errors.append(.init(path: "replicas[\(i)].id", reason: "must be a plain name"))
            }
        }
        return errors
    }
}

/// `dev/<id>/cmd`, QoS 1: a request to the device. The MQTT 5 response topic and correlation
/// data say where to answer and how the controller matches the answer.
public struct Command: DeviceMessage, Hashable {
    public enum Name: String, Codable, Sendable {
        /// Answer at once; the controller measures the round trip.
        case ping
    }

    public var v = wireVersion
    public var device: String
    public var command: Name

    public init(device: String, command: Name) {
        self.device = device
        self.command = command
    }
}

/// `dev/<id>/cmd/reply`, QoS 1: the answer, with the request's correlation data.
public struct CommandReply: DeviceMessage, Hashable {
    public var v = wireVersion
    public var device: String
    public var command: Command.Name
    public var ok: Bool
    public var message: String?

    public init(device: String, command: Command.Name, ok: Bool, message: String? = nil) {
        self.device = device
        self.command = command
        self.ok = ok
        self.message = message
    }
}
