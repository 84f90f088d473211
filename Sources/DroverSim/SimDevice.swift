import DroverCore
import DroverProtocol

/// What every simulated device is like; each device varies it by its own random stream.
public struct SimProfile: Sendable {
    public var capacity: Resources
    public var labels: [String: String]
    /// Link classes with their weights; each device draws one.
    public var links: [(LinkClass, Int)]
    /// A replica runs this long (ms) after the device learns of it, give or take a quarter.
    public var startDelay: Int64
    /// The share of replica starts that fail (0 … 1).
    public var failRatio: Double
    public var beatInterval: Int64
    public var idleBeatInterval: Int64

    public init(
        capacity: Resources, labels: [String: String] = [:], links: [(LinkClass, Int)] = [(.wired, 1)], startDelay: Int64 = 200, failRatio: Double = 0,
        beatInterval: Int64 = 5_000, idleBeatInterval: Int64 = 300_000
    ) {
        self.capacity = capacity
        self.labels = labels
        self.links = links
        self.startDelay = startDelay
        self.failRatio = failRatio
        self.beatInterval = beatInterval
        self.idleBeatInterval = idleBeatInterval
    }
}

/// One MQTT publish a simulated device makes.
public struct SimPublish: Sendable, Equatable {
    public var topic: String
    public var payload: [UInt8]
    public var retain = false
    public var correlation: [UInt8]?

    public init(topic: String, payload: [UInt8], retain: Bool = false, correlation: [UInt8]? = nil) {
        self.topic = topic
        self.payload = payload
        self.retain = retain
        self.correlation = correlation
    }
}

/// A simulated device speaking the real protocol (`Sources/DroverProtocol/README.md`), as a
/// pure state machine: each event returns what to publish. Replicas are not processes: each
/// goes `running` (or `failed`) `startDelay` after it was asked for.
public struct SimDevice: Sendable {
    public let id: String
    public let link: LinkClass
    private let profile: SimProfile
    private var random: SplitMix64
    private var applied: Generation = 0
    private var replicas: [String: Replica] = [:]
    /// Replicas waiting to start: id → when.
    private var starting: [String: Int64] = [:]
    private var seq: Int64 = 0
    private let epoch: String
    private var beats: BeatPlanner
    private var nextPid: Int32 = 1000
    public private(set) var running = 0

    struct Replica: Sendable {
        var spec: ReplicaSpec
        var status: ReplicaStatus
    }

    public init(id: String, seed: UInt64, profile: SimProfile) {
        self.id = id
        self.profile = profile
        random = SplitMix64(seed: seed)
        let total = max(1, profile.links.reduce(0) { $0 + max(0, $1.1) })
        var draw = Int(random.next() % UInt64(total))
        link = profile.links.first { draw -= max(0, $0.1); return draw < 0 }?.0 ?? .wired
        epoch = String(random.next(), radix: 16)
        beats = BeatPlanner(idleInterval: profile.idleBeatInterval)
    }

    public var willTopic: String { Topic.device(id, .state) }
    public var willPayload: [UInt8] { WireCodec.encode(DeviceState(device: id, state: .offline)) }
    public var subscriptions: [String] { [Topic.device(id, .desired), Topic.device(id, .cmd), Topic.controllerState] }

    /// Whether this device has announced itself (as the agent's process has, `AgentLink`).
    public private(set) var announced = false

    /// Back on a session the broker kept, after an announcement: only `online`, as the agent
    /// (`AgentLink.resume`).
    public func resume() -> [SimPublish] {
        [SimPublish(topic: Topic.device(id, .state), payload: WireCodec.encode(DeviceState(device: id, state: .online)), retain: true)]
    }

    /// On a connect that is not a resumed session, and whenever the controller comes back:
    /// online, hello, a full snapshot and a whole beat.
    public mutating func announce(now: Int64) -> [SimPublish] {
        announced = true
        let facts = DeviceFacts(
            agentVersion: "sim", arch: "amd64", os: "drover-sim", capacity: profile.capacity, labels: profile.labels, runtimes: [.exec], link: link,
            encodings: [.deflate])
        let hello = Hello(device: id, facts: facts, bootID: epoch, lastAppliedGeneration: applied,
            beatEvery: min(profile.idleBeatInterval + profile.beatInterval, WireLimits.beatEveryRange.upperBound))
        beats.reset()
        var out = [
            SimPublish(topic: Topic.device(id, .state), payload: WireCodec.encode(DeviceState(device: id, state: .online)), retain: true),
            SimPublish(topic: Topic.device(id, .hello), payload: WireCodec.encode(hello)),
            report(replicas.values.map(\.status), full: true),
        ]
        if let beat = beat(now: now) { out.append(beat) }
        return out
    }

    /// A message on one of `subscriptions`.
    public mutating func received(topic: String, payload: [UInt8], responseTopic: String?, correlation: [UInt8]?, now: Int64) -> [SimPublish] {
        if topic == Topic.controllerState { return payload == Array("online".utf8) ? announce(now: now) : [] }
        guard let (device, channel) = Topic.parse(topic), device == id else { return [] }
        switch channel {
        case .desired:
            guard let desired = try? WireCodec.decode(Desired.self, from: payload, topicDevice: id) else { return [] }
            return apply(desired, now: now)
        case .cmd:
            // No response topic: the request crossed an MQTT 3.1.1 bridge (see `Command`).
            guard responseTopic == nil || responseTopic == Topic.device(id, .cmdReply),
                let command = try? WireCodec.decode(Command.self, from: payload, topicDevice: id)
            else { return [] }
            var out: [SimPublish] = []
            var reply: CommandReply
            switch command.command {
            case .ping: reply = CommandReply(device: id, command: command.command.rawValue, ok: true)
            case .snapshot:
                out.append(report(replicas.values.map(\.status), full: true))
                reply = CommandReply(device: id, command: command.command.rawValue, ok: true)
            case .logs: reply = CommandReply(device: id, command: command.command.rawValue, ok: false, message: "a simulated device keeps no logs")
            }
            reply.correlation = command.correlation
            out.insert(SimPublish(topic: Topic.device(id, .cmdReply), payload: WireCodec.encode(reply), correlation: correlation ?? []), at: 0)
            return out
        default:
            return []
        }
    }

    /// Runs exactly the desired replicas: new and changed ones go `pending` and start after
    /// the delay; the others are stopped and reported once.
    mutating func apply(_ desired: Desired, now: Int64) -> [SimPublish] {
        guard desired.generation > applied else { return [] }
        applied = desired.generation
        var changed: [ReplicaStatus] = []
        let wanted = Dictionary(desired.replicas.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        for (id, replica) in replicas where wanted[id] == nil {
            var status = replica.status
            status.phase = .stopped
            status.generation = desired.generation
            status.time = now
            changed.append(status)
            replicas[id] = nil
            starting[id] = nil
        }
        for spec in desired.replicas.sorted(by: { $0.id < $1.id }) {
            if var replica = replicas[spec.id] {
                var old = replica.spec
                (old.revision, old.surge) = (spec.revision, spec.surge)
                replica.status.generation = desired.generation
                guard old != spec else {
                    replica.spec = spec
                    replica.status.revision = spec.revision
                    replicas[spec.id] = replica
                    continue
                }
            }
            let status = ReplicaStatus(id: spec.id, workload: spec.workload, phase: .pending, generation: desired.generation, restarts: replicas[spec.id]?.status.restarts ?? 0, time: now, revision: spec.revision)
            replicas[spec.id] = Replica(spec: spec, status: status)
            starting[spec.id] = now + jittered(profile.startDelay)
            changed.append(status)
        }
        running = replicas.values.filter { $0.status.phase == .running }.count
        return changed.isEmpty ? [] : [report(changed, full: false)]
    }

    /// When the next replica is due to start; nil: none waits.
    public var nextStart: Int64? { starting.values.min() }

    /// Starts every replica whose time has come.
    public mutating func startDue(now: Int64) -> [SimPublish] {
        var changed: [ReplicaStatus] = []
        for (id, due) in starting.sorted(by: { $0.key < $1.key }) where due <= now {
            starting[id] = nil
            guard var replica = replicas[id] else { continue }
            let fails = profile.failRatio > 0 && Double(random.next() % 1_000_000) / 1_000_000 < profile.failRatio
            nextPid = nextPid >= 4_000_000 ? 1000 : nextPid + 1
            replica.status.phase = fails ? .failed : .running
            replica.status.pid = fails ? nil : nextPid
            replica.status.exitCode = fails ? 1 : nil
            replica.status.message = fails ? "simulated failure" : nil
            replica.status.ready = !fails && replica.spec.probes.readiness != nil ? true : nil
            replica.status.time = now
            replicas[id] = replica
            changed.append(replica.status)
        }
        running = replicas.values.filter { $0.status.phase == .running }.count
        return changed.isEmpty ? [] : [report(changed, full: false)]
    }

    /// Every `beatInterval`: a beat when something changed (`BeatPlanner`).
    public mutating func beat(now: Int64) -> SimPublish? {
        var phases: [String: Int] = [:]
        for replica in replicas.values { phases[replica.status.phase.rawValue, default: 0] += 1 }
        let cpu = Dictionary(uniqueKeysWithValues: replicas.values.filter { $0.status.phase == .running }.map { ($0.spec.id, max(1, $0.spec.resources.cpuMillis / 4)) })
        let usage = Usage(
            cpuPercent: Double(min(100, cpu.values.reduce(0, +) * 100 / max(1, profile.capacity.cpuMillis))), memoryUsedBytes: profile.capacity.memoryBytes / 4,
            memoryTotalBytes: profile.capacity.memoryBytes, diskUsedBytes: 1 << 30, diskTotalBytes: 8 << 30)
        let digest = ReplicaDigest.compute(replicas.values.map(\.status.digestEntry))
        let sample = BeatPlanner.Sample(usage: usage, phases: phases, replicaCPU: cpu, generation: applied, reportSeq: seq, digest: digest, rtt: 1)
        return beats.next(sample, device: id, now: now).map { SimPublish(topic: Topic.device(id, .beat), payload: WireCodec.encode($0)) }
    }

    private mutating func report(_ statuses: [ReplicaStatus], full: Bool) -> SimPublish {
        seq += 1
        let report = Report(device: id, seq: seq, replicas: statuses.sorted { $0.id < $1.id }, epoch: epoch, full: full ? true : nil)
        // `stopped` replicas are reported once and forgotten.
        return SimPublish(topic: Topic.device(id, .report), payload: WireCodec.encode(report))
    }

    private mutating func jittered(_ millis: Int64) -> Int64 {
        guard millis > 3 else { return max(0, millis) }
        let quarter = UInt64(millis / 4)
        return millis - Int64(quarter) + Int64(random.next() % (2 * quarter + 1))
    }
}

/// A small, fast, seeded random stream: the same seed gives the same fleet.
public struct SplitMix64: Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
