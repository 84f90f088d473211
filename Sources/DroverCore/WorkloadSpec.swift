/// How a replica's process is run on a device. Drivers sit behind one protocol in the agent.
public enum RuntimeKind: String, Codable, Sendable, CaseIterable {
    case exec
    /// An OCI container from `image`, under runc (each watched by its conmon).
    case runc
    /// The same container through podman, on devices that have it.
    case podman

    /// Whether replicas of this runtime are containers (they need an image).
    public var isContainer: Bool { self != .exec }
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
    public var mode: WorkloadMode
    /// The count for `mode: replicas`; ignored for `every`.
    public var replicas: Int
    public var selector: LabelSelector
    /// Allowed device architectures (`amd64`, `arm64`); empty: any.
    public var arch: [String]
    /// What one replica reserves on its device.
    public var resources: Resources
    public var runtime: RuntimeKind
    public var command: [String]
    public var env: [String: String]
    public var restartPolicy: RestartPolicy
    public var connectivity: ConnectivityNeeds
    public var spread: SpreadConstraint?
    public var affinity: [AffinityTerm]
    public var antiAffinity: [AffinityTerm]
    /// Higher goes first and may preempt lower.
    public var priority: Int
    public var maxPerDevice: Int
    public var strategy: PlacementStrategy
    public var autoscale: AutoscaleSpec?
    /// Whom the replicas run as on the device: `root`, a user name, or `UID[:GID]`; nil: the
    /// device's unprivileged workload user (`drover` by default).
    public var user: String?
    /// The OCI image of a container runtime: `NAME:TAG`, `NAME@sha256:...` or with a registry
    /// host; at apply, the controller pins it to a digest (`NAME:TAG@sha256:...`).
    public var image: String?
    /// Named volumes (containers only).
    public var volumes: [VolumeMount]
    /// Host ports the replicas listen on. Replicas use the device's network (no network
    /// isolation yet), so the scheduler never puts two replicas that claim one port on one
    /// device.
    public var ports: [Int]
    /// Health checks the agent runs (startup, liveness, readiness).
    public var probes: Probes
    /// How a new revision goes live; nil: on every replica at once.
    public var rollout: RolloutSpec?

    public init(
        name: String, mode: WorkloadMode = .replicas, replicas: Int = 1, selector: LabelSelector = LabelSelector(), arch: [String] = [],
        resources: Resources = .zero, runtime: RuntimeKind = .exec, command: [String], env: [String: String] = [:],
        restartPolicy: RestartPolicy = .always, connectivity: ConnectivityNeeds = ConnectivityNeeds(), spread: SpreadConstraint? = nil,
        affinity: [AffinityTerm] = [], antiAffinity: [AffinityTerm] = [], priority: Int = 0, maxPerDevice: Int = 1,
        strategy: PlacementStrategy = .spreadLoad, autoscale: AutoscaleSpec? = nil, user: String? = nil, image: String? = nil,
        volumes: [VolumeMount] = [], ports: [Int] = [], probes: Probes = Probes()
    ) {
        self.user = user
        self.image = image
        self.volumes = volumes
        self.ports = ports
        self.probes = probes
        self.name = name
        self.mode = mode
        self.replicas = replicas
        self.selector = selector
        self.arch = arch
        self.resources = resources
        self.runtime = runtime
        self.command = command
        self.env = env
        self.restartPolicy = restartPolicy
        self.connectivity = connectivity
        self.spread = spread
        self.affinity = affinity
        self.antiAffinity = antiAffinity
        self.priority = priority
        self.maxPerDevice = maxPerDevice
        self.strategy = strategy
        self.autoscale = autoscale
    }

    /// Fields added after the first release decode to their defaults when absent.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        mode = try c.decodeIfPresent(WorkloadMode.self, forKey: .mode) ?? .replicas
        replicas = try c.decodeIfPresent(Int.self, forKey: .replicas) ?? 1
        selector = try c.decodeIfPresent(LabelSelector.self, forKey: .selector) ?? LabelSelector()
        arch = try c.decodeIfPresent([String].self, forKey: .arch) ?? []
        resources = try c.decodeIfPresent(Resources.self, forKey: .resources) ?? .zero
        runtime = try c.decodeIfPresent(RuntimeKind.self, forKey: .runtime) ?? .exec
        command = try c.decode([String].self, forKey: .command)
        env = try c.decodeIfPresent([String: String].self, forKey: .env) ?? [:]
        restartPolicy = try c.decodeIfPresent(RestartPolicy.self, forKey: .restartPolicy) ?? .always
        connectivity = try c.decodeIfPresent(ConnectivityNeeds.self, forKey: .connectivity) ?? ConnectivityNeeds()
        spread = try c.decodeIfPresent(SpreadConstraint.self, forKey: .spread)
        affinity = try c.decodeIfPresent([AffinityTerm].self, forKey: .affinity) ?? []
        antiAffinity = try c.decodeIfPresent([AffinityTerm].self, forKey: .antiAffinity) ?? []
        priority = try c.decodeIfPresent(Int.self, forKey: .priority) ?? 0
        maxPerDevice = try c.decodeIfPresent(Int.self, forKey: .maxPerDevice) ?? 1
        strategy = try c.decodeIfPresent(PlacementStrategy.self, forKey: .strategy) ?? .spreadLoad
        autoscale = try c.decodeIfPresent(AutoscaleSpec.self, forKey: .autoscale)
        user = try c.decodeIfPresent(String.self, forKey: .user)
        volumes = try c.decodeIfPresent([VolumeMount].self, forKey: .volumes) ?? []
        ports = try c.decodeIfPresent([Int].self, forKey: .ports) ?? []
        probes = try c.decodeIfPresent(Probes.self, forKey: .probes) ?? Probes()
        rollout = try c.decodeIfPresent(RolloutSpec.self, forKey: .rollout)
        image = try c.decodeIfPresent(String.self, forKey: .image)
    }

    /// Whether the replicas run as root: `user: root` or a uid of 0. (A device refuses a
    /// name that is root under another name, so these are all the ways.)
    public var runsAsRoot: Bool {
        guard let user else { return false }
        return user == "root" || user.split(separator: ":", omittingEmptySubsequences: false).first.flatMap { Int($0) } == 0
    }

    /// The largest replica count a workload may ask for; a typo such as `replicas: 10000000`
    /// must not make the controller plan ten million replicas.
    public static let maxReplicas = 100_000
    public static let maxPorts = 64

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
        switch runtime {
        case .exec:
            if command.isEmpty { fail("command", "must name a program to run") }
            if image != nil { fail("image", "needs a container runtime: runtime: runc") }
        case .runc, .podman:
            if let image {
                if ImageReference(parsing: image) == nil { fail("image", "'\(image.prefix(80))' is not an image reference: NAME[:TAG][@sha256:DIGEST], with an optional REGISTRY/ first") }
            } else {
                fail("image", "is required for runtime \(runtime.rawValue)")
            }
        }
        if !volumes.isEmpty, runtime == .exec { fail("volumes", "need a container runtime (image:); an exec replica works in its own directory") }
        for problem in VolumeMount.problems(volumes) { fail(problem.field, problem.reason) }
        if ports.count > Self.maxPorts { fail("ports", "at most \(Self.maxPorts) ports") }
        for (i, port) in ports.prefix(Self.maxPorts).enumerated() where !(1...65535).contains(port) || ports[..<i].contains(port) {
            fail("ports[\(i)]", (1...65535).contains(port) ? "port \(port) is listed twice" : "must be a port number 1-65535, found \(port)")
        }
        for problem in probes.problems(at: "") { fail(problem.path, problem.reason) }
        for problem in rollout?.problems(at: "rollout") ?? [] { fail(problem.path, problem.reason) }
        if !ports.isEmpty, maxPerDevice > 1 { fail("maxPerDevice", "must be 1 with ports: two replicas on one device cannot both listen on a host port") }
        if let user, !Names.isValidRunAs(user) { fail("user", "must be root, a user name (lowercase, up to 32 characters) or UID[:GID], found '\(user.prefix(40))'") }
        if let program = command.first, program.isEmpty { fail("command[0]", "must not be empty") }
        for (key, value) in selector.matchLabels {
            if !Names.isValidLabelKey(key) { fail("selector.matchLabels.\(key)", "is not a valid label key") }
            if !Names.isValidLabelValue(value) { fail("selector.matchLabels.\(key)", "value '\(value)' is not a valid label value") }
        }
        for (i, e) in selector.matchExpressions.enumerated() {
            if !Names.isValidLabelKey(e.key) { fail("selector.matchExpressions[\(i)].key", "is not a valid label key") }
            let needsValues = e.operator == .in || e.operator == .notIn
            if needsValues == e.values.isEmpty {
                fail("selector.matchExpressions[\(i)].values", needsValues ? "must list at least one value for \(e.operator.rawValue)" : "must be empty for \(e.operator.rawValue)")
            }
        }
        if resources.storageBytes < 0 { fail("resources.storage", "must not be negative") }
        for (name, count) in resources.devices where count < 0 || !Names.isValidLabelKey(name) {
            fail("resources.\(name)", "must be a device resource name with a count >= 0")
        }
        if let minUptime = connectivity.minUptime, !(0...1).contains(minUptime) { fail("connectivity.minUptime", "must be between 0 and 1") }
        if connectivity.tolerateOfflineSeconds < 0 { fail("connectivity.tolerateOffline", "must not be negative") }
        if let spread {
            if !Names.isValidLabelKey(spread.labelKey) { fail("spread.labelKey", "is not a valid label key") }
            if spread.maxSkew < 1 { fail("spread.maxSkew", "must be >= 1") }
        }
        for (field, terms) in [("affinity", affinity), ("antiAffinity", antiAffinity)] {
            for (i, t) in terms.enumerated() {
                if !Names.isValidWorkloadName(t.workload) { fail("\(field)[\(i)].workload", "is not a workload name") }
                if let key = t.labelKey, !Names.isValidLabelKey(key) { fail("\(field)[\(i)].labelKey", "is not a valid label key") }
            }
        }
        if maxPerDevice < 1 { fail("maxPerDevice", "must be >= 1") }
        if let a = autoscale {
            if a.minReplicas < 0 { fail("autoscale.minReplicas", "must be >= 0") }
            if a.maxReplicas < a.minReplicas || a.maxReplicas > Self.maxReplicas { fail("autoscale.maxReplicas", "must be between minReplicas and \(Self.maxReplicas)") }
            if a.targetCPUPercent < 1 { fail("autoscale.targetCPUPercent", "must be >= 1") }
            if a.stabilizationSeconds < 0 { fail("autoscale.stabilizationWindow", "must not be negative") }
            if mode == .every { fail("autoscale", "does not apply to mode: every") }
        }
        for key in env.keys.sorted() where key.isEmpty || key.contains("=") || key.contains("\0") {
            fail("env.\(key)", "is not a valid environment variable name")
        }
        checkRanges(fail)
        return errors
    }

    /// The largest values a manifest may hold: past them, sums and conversions to
    /// milliseconds could overflow, and no real device has them.
    public enum Limits {
        public static let cpuMillis = 10_000_000
        public static let memoryBytes: Int64 = 1 << 50
        public static let storageBytes: Int64 = 1 << 60
        public static let deviceResourceCount = 1_000_000
        /// Ten years.
        public static let seconds = 10 * 366 * 86_400
        public static let priority = 1_000_000
        public static let targetCPUPercent = 100_000
        /// The command and environment of one replica, in bytes: it travels in every desired
        /// state of a device that runs it.
        public static let commandAndEnvBytes = 64 * 1024
    }

    private func checkRanges(_ fail: (String, String) -> Void) {
        if resources.cpuMillis > Limits.cpuMillis { fail("resources.cpu", "must be at most \(Limits.cpuMillis / 1000) cores") }
        if resources.memoryBytes > Limits.memoryBytes { fail("resources.memory", "must be at most 1Pi") }
        if resources.storageBytes > Limits.storageBytes { fail("resources.storage", "must be at most 1Ei") }
        for (name, count) in resources.devices where count > Limits.deviceResourceCount {
            fail("resources.\(name)", "must be at most \(Limits.deviceResourceCount)")
        }
        if connectivity.tolerateOfflineSeconds > Limits.seconds { fail("connectivity.tolerateOffline", "must be at most 10 years") }
        if priority < -Limits.priority || priority > Limits.priority { fail("priority", "must be between -\(Limits.priority) and \(Limits.priority)") }
        if maxPerDevice > Self.maxReplicas { fail("maxPerDevice", "must be at most \(Self.maxReplicas)") }
        if let spread, spread.maxSkew > Self.maxReplicas { fail("spread.maxSkew", "must be at most \(Self.maxReplicas)") }
        if let a = autoscale {
            if a.targetCPUPercent > Limits.targetCPUPercent { fail("autoscale.targetCPUPercent", "must be at most \(Limits.targetCPUPercent)") }
            if a.stabilizationSeconds > Limits.seconds { fail("autoscale.stabilizationWindow", "must be at most 10 years") }
        }
        let size = command.reduce(0) { $0 + $1.utf8.count + 4 } + env.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count + 6 }
        if size > Limits.commandAndEnvBytes { fail("env", "command and env together are \(size) bytes; at most \(Limits.commandAndEnvBytes / 1024)Ki") }
    }
}
