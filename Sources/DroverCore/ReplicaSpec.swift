/// One replica as a device must run it: the device-facing half of a workload.
public struct ReplicaSpec: Hashable, Codable, Sendable {
    /// `<workload>-<ordinal>`, unique in the fleet.
    public var id: String
    public var workload: String
    public var runtime: RuntimeKind
    public var command: [String]
    public var env: [String: String]
    public var restartPolicy: RestartPolicy
    public var resources: Resources
    /// `root`, a user name or `UID[:GID]`; nil: the device's workload user.
    public var user: String?
    /// For a container runtime: the image, pinned to a digest.
    public var image: String?
    public var volumes: [VolumeMount]
    public var probes: Probes
    /// The workload revision this spec is of (reported back by the device, so the controller
    /// knows which revision each replica runs). Not part of `revisionKey`: a new number for
    /// the same template restarts nothing.
    public var revision: Int?
    /// Start this revision beside the replica's running instance and stop that one once this
    /// one is ready (a rollout's `maxSurge`); absent: replace it. Not part of `revisionKey`.
    public var surge: Bool?

    public init(
        id: String, workload: String, runtime: RuntimeKind, command: [String], env: [String: String],
        restartPolicy: RestartPolicy, resources: Resources, user: String? = nil, image: String? = nil, volumes: [VolumeMount] = [],
        probes: Probes = Probes()
    ) {
        self.volumes = volumes
        self.probes = probes
        self.user = user
        self.image = image
        self.id = id
        self.workload = workload
        self.runtime = runtime
        self.command = command
        self.env = env
        self.restartPolicy = restartPolicy
        self.resources = resources
    }

    enum CodingKeys: String, CodingKey { case id, workload, runtime, command, env, restartPolicy, resources, user, image, volumes, probes, revision, surge }

    /// `volumes` came after the first release: absent, it is empty.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        workload = try c.decode(String.self, forKey: .workload)
        runtime = try c.decode(RuntimeKind.self, forKey: .runtime)
        command = try c.decode([String].self, forKey: .command)
        env = try c.decode([String: String].self, forKey: .env)
        restartPolicy = try c.decode(RestartPolicy.self, forKey: .restartPolicy)
        resources = try c.decode(Resources.self, forKey: .resources)
        user = try c.decodeIfPresent(String.self, forKey: .user)
        image = try c.decodeIfPresent(String.self, forKey: .image)
        volumes = try c.decodeIfPresent([VolumeMount].self, forKey: .volumes) ?? []
        probes = try c.decodeIfPresent(Probes.self, forKey: .probes) ?? Probes()
        revision = try c.decodeIfPresent(Int.self, forKey: .revision)
        surge = try c.decodeIfPresent(Bool.self, forKey: .surge)
    }

    /// Stable under dictionary order: when it changes, the agent must restart the replica.
    public var revisionKey: String {
        var parts = [runtime.rawValue, restartPolicy.rawValue, "\(resources.cpuMillis)", "\(resources.memoryBytes)"]
        parts += command.map { "c:" + $0 }
        parts += env.keys.sorted().map { "e:\($0)=\(env[$0] ?? "")" }
        // Only when set, so that replicas from before the field keep their key.
        if let user { parts.append("u:" + user) }
        if let image { parts.append("i:" + image) }
        parts += volumes.map { "v:\($0.name):\($0.path):\($0.readOnly ? "ro" : "rw")" }
        for (name, probe) in [("s", probes.startup), ("l", probes.liveness), ("r", probes.readiness)] {
            if let probe { parts.append("p\(name):\(probe)") }
        }
        return parts.joined(separator: "\u{1F}")
    }
}

extension WorkloadSpec {
    public static func replicaID(workload: String, ordinal: Int) -> String { "\(workload)-\(ordinal)" }

    public func replica(ordinal: Int) -> ReplicaSpec {
        replica(id: Self.replicaID(workload: name, ordinal: ordinal))
    }

    public func replica(id: String) -> ReplicaSpec {
        ReplicaSpec(id: id, workload: name, runtime: runtime, command: command, env: env, restartPolicy: restartPolicy, resources: resources, user: user, image: image, volumes: volumes, probes: probes)
    }
}
