/// How a replica's process is run on a device. Drivers sit behind one protocol in the agent.
public enum RuntimeKind: String, Codable, Sendable, CaseIterable {
    case exec
}

/// What the agent does when a replica's process exits.
public enum RestartPolicy: String, Codable, Sendable, CaseIterable {
    case always
    case onFailure = "on-failure"
    case never
}

/// The desired shape of one workload: how many replicas, where they may go, and what they run.
public struct WorkloadSpec: Hashable, Codable, Sendable {
    public var name: String
    public var replicas: Int
    /// Labels a device must carry (all of them) to receive a replica.
    public var selector: [String: String]
    /// What one replica reserves on its device.
    public var resources: Resources
    public var runtime: RuntimeKind
    public var command: [String]
    public var env: [String: String]
    public var restartPolicy: RestartPolicy

    public init(
        name: String, replicas: Int = 1, selector: [String: String] = [:], resources: Resources = .zero,
        runtime: RuntimeKind = .exec, command: [String], env: [String: String] = [:],
        restartPolicy: RestartPolicy = .always
    ) {
        self.name = name
        self.replicas = replicas
        self.selector = selector
        self.resources = resources
        self.runtime = runtime
        self.command = command
        self.env = env
        self.restartPolicy = restartPolicy
    }

    /// The largest replica count a workload may ask for; a typo such as `replicas: 10000000`
    /// must not make the controller plan ten million replicas.
    public static let maxReplicas = 100_000

    /// Semantic checks, each naming the field at fault. Paths are relative to `prefix`
    /// (`spec` for a manifest).
    public func validate(prefix: String = "spec") -> [FieldError] {
        var errors: [FieldError] = []
        func fail(_ field: String, _ reason: String) { errors.append(FieldError(path: "\(prefix).\(field)", reason: reason)) }
        if !Names.isValidWorkloadName(name) {
            errors.append(FieldError(path: "metadata.name", reason: "must be 1-63 lowercase letters, digits or '-', not starting or ending with '-'"))
        }
        if replicas < 0 || replicas > Self.maxReplicas { fail("replicas", "must be between 0 and \(Self.maxReplicas)") }
        if resources.cpuMillis < 0 { fail("resources.cpu", "must not be negative") }
        if resources.memoryBytes < 0 { fail("resources.memory", "must not be negative") }
        if command.isEmpty { fail("command", "must name a program to run") }
        if let program = command.first, program.isEmpty { fail("command[0]", "must not be empty") }
        for (key, value) in selector {
            if !Names.isValidLabelKey(key) { fail("selector.\(key)", "is not a valid label key") }
            if !Names.isValidLabelValue(value) { fail("selector.\(key)", "value '\(value)' is not a valid label value") }
        }
        for key in env.keys.sorted() where key.isEmpty || key.contains("=") || key.contains("\0") {
            fail("env.\(key)", "is not a valid environment variable name")
        }
        return errors
    }
}
