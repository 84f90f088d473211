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
    /// The longest the device goes between beats, in milliseconds: the controller judges its
    /// silence from there. Absent: a beat every few seconds (the old rule).
    public var beatEvery: Int64?

    public init(device: String, facts: DeviceFacts, bootID: String, lastAppliedGeneration: Generation, beatEvery: Int64? = nil) {
        self.device = device
        self.facts = facts
        self.bootID = bootID
        self.lastAppliedGeneration = lastAppliedGeneration
        self.beatEvery = beatEvery
    }

    public func validate() -> [FieldError] {
        var check = FieldChecker()
        check.text("facts.agentVersion", facts.agentVersion, max: WireLimits.maxShortText)
        check.text("facts.arch", facts.arch, max: WireLimits.maxShortText, empty: false)
        check.text("facts.os", facts.os, max: WireLimits.maxOSText)
        check.resources("facts.capacity", facts.capacity)
        check.labels("facts.labels", facts.labels)
        check.count("facts.runtimes", facts.runtimes.count, max: WireLimits.maxRuntimes)
        check.count("facts.encodings", facts.encodingsGiven, max: WireLimits.maxEncodings)
        check.text("bootID", bootID, max: WireLimits.maxShortText)
        check.range("lastAppliedGeneration", lastAppliedGeneration, 0...WireLimits.maxCounter)
        if let beatEvery { check.range("beatEvery", beatEvery, WireLimits.beatEveryRange) }
        return check.errors
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

/// `dev/<id>/beat`, QoS 1: what changed since the device's previous beat (usage, phases,
/// replica CPU, its summary, its round-trip time), or only `time` when nothing did. A field
/// that is absent has not changed.
public struct Beat: DeviceMessage, Hashable {
    public var v = wireVersion
    public var device: String
    /// Milliseconds since the Unix epoch on the device's clock.
    public var time: Int64
    public var usage: Usage?
    /// How many replicas are in each phase.
    public var phases: [String: Int]?
    /// CPU each running replica's process group uses, in millicores: only the replicas whose
    /// figure moved (see `BeatPlanner`).
    public var replicaCPU: [String: Int]?
    /// The generation the device has applied, the last report sequence number it queued, and
    /// the `ReplicaDigest` of its replicas. When the controller has every report up to
    /// `reportSeq` for `generation` and its digest differs, it asks for a full snapshot.
    public var generation: Generation?
    public var reportSeq: Int64?
    public var digest: String?
    /// The device's smoothed round-trip time to the broker, in milliseconds, from the
    /// acknowledgements of its own QoS 1 publishes.
    public var rtt: Double?

    public init(device: String, time: Int64, usage: Usage? = nil, phases: [String: Int]? = nil) {
        self.device = device
        self.time = time
        self.usage = usage
        self.phases = phases
    }

    public func validate() -> [FieldError] {
        var check = FieldChecker()
        check.range("time", time, WireLimits.timeRange)
        // NaN fails every comparison, so it is out of range too.
        if let usage {
            check.require(usage.cpuPercent.isFinite && WireLimits.cpuPercentRange.contains(usage.cpuPercent), "usage.cpuPercent", "must be a number between 0 and 100")
            check.range("usage.memoryUsedBytes", usage.memoryUsedBytes, 0...WireLimits.maxMemoryBytes)
            check.range("usage.memoryTotalBytes", usage.memoryTotalBytes, 0...WireLimits.maxMemoryBytes)
            check.range("usage.diskUsedBytes", usage.diskUsedBytes, 0...WireLimits.maxStorageBytes)
            check.range("usage.diskTotalBytes", usage.diskTotalBytes, 0...WireLimits.maxStorageBytes)
        }
        // The entries are sorted (so problems are named in a stable order) only when one fails.
        if let phases, !(phases.count <= ReplicaPhase.allCases.count && phases.allSatisfy({ ReplicaPhase(rawValue: $0.key) != nil && (0...WireLimits.maxReplicas).contains($0.value) })) {
            check.count("phases", phases.count, max: ReplicaPhase.allCases.count)
            for (phase, count) in phases.sorted(by: { $0.key < $1.key }).prefix(ReplicaPhase.allCases.count) {
                check.require(ReplicaPhase(rawValue: phase) != nil, "phases.\(phase.prefix(64))", "is not a replica phase")
                check.range("phases.\(phase.prefix(64))", count, 0...WireLimits.maxReplicas)
            }
        }
        if let rtt { check.require(rtt.isFinite && WireLimits.rttRange.contains(rtt), "rtt", "must be a number of milliseconds between 0 and 600000") }
        if let generation { check.range("generation", generation, 0...WireLimits.maxCounter) }
        if let reportSeq { check.range("reportSeq", reportSeq, 0...WireLimits.maxCounter) }
        if let digest { check.text("digest", digest, max: 16, empty: false) }
        if let replicaCPU, !(replicaCPU.count <= WireLimits.maxReplicas && replicaCPU.allSatisfy({ Names.isValidReplicaID($0.key) && (0...WireLimits.maxCPUMillis).contains($0.value) })) {
            check.count("replicaCPU", replicaCPU.count, max: WireLimits.maxReplicas)
            for (id, millis) in replicaCPU.sorted(by: { $0.key < $1.key }).prefix(WireLimits.maxReplicas) {
                check.require(Names.isValidReplicaID(id), "replicaCPU.\(id.prefix(128))", "is not a replica id")
                check.range("replicaCPU.\(id.prefix(128))", millis, 0...WireLimits.maxCPUMillis)
            }
        }
        return check.errors
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
    /// For a replica with a readiness probe: whether it passes; nil without one.
    public var ready: Bool?
    /// The workload revision the replica runs (its spec's).
    public var revision: Int?

    public init(
        id: String, workload: String, phase: ReplicaPhase, generation: Generation, pid: Int32? = nil,
        exitCode: Int32? = nil, restarts: Int = 0, message: String? = nil, time: Int64, ready: Bool? = nil, revision: Int? = nil
    ) {
        self.ready = ready
        self.revision = revision
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
    /// The outbox epoch: new whenever the device's store is created afresh, when `seq`
    /// starts again at 1. Optional for agents that predate it.
    public var epoch: String?
    /// A full snapshot: `replicas` is everything the device holds, and a replica placed on it
    /// that is not listed has not been started there yet.
    public var full: Bool?

    public init(device: String, seq: Int64, replicas: [ReplicaStatus], epoch: String? = nil, full: Bool? = nil) {
        self.device = device
        self.seq = seq
        self.replicas = replicas
        self.epoch = epoch
        self.full = full
    }

    public func validate() -> [FieldError] {
        var check = FieldChecker()
        check.range("seq", seq, 1...WireLimits.maxCounter)
        check.text("epoch", epoch ?? "", max: WireLimits.maxShortText)
        check.count("replicas", replicas.count, max: WireLimits.maxReplicas)
        for (i, r) in replicas.prefix(WireLimits.maxReplicas).enumerated() {
            let path = { "replicas[\(i)]" }
            check.require(Names.isValidReplicaID(r.id), path() + ".id", "is not a replica id")
            check.require(Names.isValidWorkloadName(r.workload), path() + ".workload", "is not a workload name")
            check.range(path() + ".generation", r.generation, 0...WireLimits.maxCounter)
            if let pid = r.pid { check.range(path() + ".pid", pid, 1...Int32.max) }
            if let code = r.exitCode { check.range(path() + ".exitCode", code, WireLimits.exitCodeRange) }
            check.range(path() + ".restarts", r.restarts, 0...WireLimits.maxRestarts)
            check.text(path() + ".message", r.message ?? "", max: WireLimits.maxMessageText)
            check.range(path() + ".time", r.time, WireLimits.timeRange)
        }
        return check.errors
    }
}

/// `dev/<id>/desired`, QoS 1, retained: the device's whole desired state.
public struct Desired: DeviceMessage, Hashable {
    public var v = wireVersion
    public var device: String
    public var generation: Generation
    public var replicas: [ReplicaSpec]
    /// Not on the wire, nor in equality: the device reads it deflated (`Deflate`), so
    /// `WireCodec.encode` deflates it (binary then: not for `encodeText`).
    public var deflate = false

    enum CodingKeys: String, CodingKey { case v, device, generation, replicas }

    public static func == (a: Desired, b: Desired) -> Bool {
        a.v == b.v && a.device == b.device && a.generation == b.generation && a.replicas == b.replicas
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(v)
        hasher.combine(device)
        hasher.combine(generation)
        hasher.combine(replicas)
    }

    public init(device: String, generation: Generation, replicas: [ReplicaSpec]) {
        self.device = device
        self.generation = generation
        self.replicas = replicas
    }

    public func validate() -> [FieldError] {
        var check = FieldChecker()
        check.range("generation", generation, 1...WireLimits.maxCounter)
        check.count("replicas", replicas.count, max: WireLimits.maxReplicas)
        var seen = Set<String>()
        for (i, r) in replicas.prefix(WireLimits.maxReplicas).enumerated() {
            check.require(!r.command.isEmpty || r.image != nil, "replicas[\(i)].command", "must not be empty")
            check.require(r.image.map { ImageReference(parsing: $0)?.digest != nil } ?? true, "replicas[\(i)].image", "must be an image reference pinned to a digest")
            check.require(seen.insert(r.id).inserted, "replicas[\(i)].id", "duplicate id \(r.id.prefix(128))")
            check.require(Names.isValidReplicaID(r.id), "replicas[\(i)].id", "must be a plain name: letters, digits, '.', '_' or '-', not '.' or '..'")
            check.require(r.user.map(Names.isValidRunAs) ?? true, "replicas[\(i)].user", "must be root, a user name or UID[:GID]")
            for problem in VolumeMount.problems(r.volumes) { check.require(false, "replicas[\(i)].\(problem.field)", problem.reason) }
            // The workload names directories on the device (volumes), and resources become
            // cgroup limits computed from them: both are checked here, not trusted.
            check.require(Names.isValidWorkloadName(r.workload), "replicas[\(i)].workload", "must be a workload name")
            check.resources("replicas[\(i)].resources", r.resources)
            if let revision = r.revision { check.range("replicas[\(i)].revision", Int64(revision), 1...WireLimits.maxCounter) }
            for problem in r.probes.problems(at: "replicas[\(i)].") { check.require(false, problem.path, problem.reason) }
        }
        return check.errors
    }
}

/// `dev/<id>/cmd`, QoS 1: a request to the device. The MQTT 5 response topic and correlation
/// data say where to answer and how the controller matches the answer. The correlation also
/// travels in the payload (`correlation`): MQTT 3.1.1 bridges between brokers drop MQTT 5
/// properties, and a request that crossed one still gets its answer matched.
public struct Command: DeviceMessage, Hashable {
    public enum Name: String, Codable, Sendable {
        /// Answer at once; the controller measures the round trip.
        case ping
        /// Queue a full report of every replica (`Report.full`), then answer.
        case snapshot
        /// Answer with the last `tail` lines of `replica`'s log, in `output`.
        case logs
    }

    public var v = wireVersion
    public var device: String
    public var command: Name
    /// For `logs`: which replica, and how many lines (1 … 10,000; default 100).
    public var replica: String?
    public var tail: Int?
    /// For `logs`, to follow a log: what was written from this byte offset on (an offset the
    /// device gave in `CommandReply.offset`), instead of the tail.
    public var since: Int64?
    /// The correlation data in lowercase hex (see `Correlation`), echoed in the reply.
    public var correlation: String?

    public init(device: String, command: Name, replica: String? = nil, tail: Int? = nil, since: Int64? = nil, correlation: String? = nil) {
        self.device = device
        self.command = command
        self.replica = replica
        self.tail = tail
        self.since = since
        self.correlation = correlation
    }

    public static let maxTail = 10_000

    public func validate() -> [FieldError] {
        var check = FieldChecker()
        if let replica { check.require(Names.isValidReplicaID(replica), "replica", "must be a replica id") }
        if let tail { check.range("tail", Int64(tail), 1...Int64(Self.maxTail)) }
        if let since { check.range("since", since, 0...WireLimits.maxCounter) }
        if command == .logs { check.require(replica != nil, "replica", "is required for logs") }
        if let correlation { check.require(Correlation.bytes(correlation) != nil, "correlation", Correlation.rule) }
        return check.errors
    }
}

/// `dev/<id>/cmd/reply`, QoS 1: the answer, with the request's correlation data.
public struct CommandReply: DeviceMessage, Hashable {
    public var v = wireVersion
    public var device: String
    /// The request's command name, echoed as the device read it (also an unknown one).
    public var command: String
    public var ok: Bool
    public var message: String?
    /// For `logs`: the lines asked for, at most `maxOutput` bytes (the newest ones).
    public var output: String?
    /// For `logs`: the log's byte offset just past `output`, to ask `since` next time.
    public var offset: Int64?
    /// The request's `correlation`, echoed.
    public var correlation: String?

    public init(device: String, command: String, ok: Bool, message: String? = nil, output: String? = nil, offset: Int64? = nil, correlation: String? = nil) {
        self.device = device
        self.command = command
        self.ok = ok
        self.message = message
        self.output = output
        self.offset = offset
        self.correlation = correlation
    }

    public static let maxOutput = 128 * 1024

    public func validate() -> [FieldError] {
        var check = FieldChecker()
        check.text("command", command, max: WireLimits.maxShortText)
        check.text("message", message ?? "", max: WireLimits.maxMessageText)
        check.text("output", output ?? "", max: Self.maxOutput)
        if let offset { check.range("offset", offset, 0...WireLimits.maxCounter) }
        if let correlation { check.require(Correlation.bytes(correlation) != nil, "correlation", Correlation.rule) }
        return check.errors
    }
}

/// Correlation data in a payload: 1 to 32 bytes as lowercase hex.
public enum Correlation {
    static let rule = "must be 2 to 64 lowercase hex digits, an even number"

    public static func text(_ bytes: [UInt8]) -> String { hexString(bytes) }

    public static func bytes(_ text: String) -> [UInt8]? {
        let t = Array(text.utf8)
        guard (2...64).contains(t.count), t.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            default: nil
            }
        }
        var out: [UInt8] = []
        for k in stride(from: 0, to: t.count, by: 2) {
            guard let hi = nibble(t[k]), let lo = nibble(t[k + 1]) else { return nil }
            out.append(hi << 4 | lo)
        }
        return out
    }
}
