import DroverCore
import DroverProtocol
import DroverSim
import Testing

/// drover-sim's devices speak the protocol as the agent does: what they report is what the
/// controller decodes, and their digest is the one it computes.
@Suite("Simulated device")
struct SimDeviceTests {
    static let profile = SimProfile(capacity: Resources(cpuMillis: 2000, memoryBytes: 1 << 30), labels: ["site": "a"], startDelay: 100)

    static func spec(_ id: String, env: [String: String] = [:]) -> ReplicaSpec {
        ReplicaSpec(id: id, workload: "w", runtime: .exec, command: ["/bin/true"], env: env, restartPolicy: .always, resources: Resources(cpuMillis: 100, memoryBytes: 1 << 20))
    }

    static func reports(_ out: [SimPublish]) throws -> [Report] {
        try out.filter { $0.topic.hasSuffix("/report") }.map { try WireCodec.decode(Report.self, from: $0.payload, topicDevice: "sim-1") }
    }

    static func desired(_ generation: Int64, _ specs: [ReplicaSpec]) -> [UInt8] {
        WireCodec.encode(Desired(device: "sim-1", generation: generation, replicas: specs))
    }

    @Test("announce, apply, start, change, remove: every message decodes as the controller decodes it")
    func lifecycle() throws {
        var device = SimDevice(id: "sim-1", seed: 7, profile: Self.profile)
        let hello = device.announce(now: 1_000)
        #expect(hello.map { $0.topic.split(separator: "/").last.map(String.init) ?? "" } == ["state", "hello", "report", "beat"])
        let decoded = try WireCodec.decode(Hello.self, from: hello[1].payload, topicDevice: "sim-1")
        #expect(decoded.facts.labels == ["site": "a"] && decoded.beatEvery == 305_000, "the idle interval and a sampling period")
        #expect(hello[0].retain)

        let topic = Topic.device("sim-1", .desired)
        var out = device.received(topic: topic, payload: Self.desired(1, [Self.spec("w-0"), Self.spec("w-1")]), responseTopic: nil, correlation: nil, now: 2_000)
        #expect(try Self.reports(out).first?.replicas.map(\.phase) == [.pending, .pending])
        let due = try #require(device.nextStart)
        #expect((2_075...2_125).contains(due), "started 100 ms on, give or take a quarter")
        out = device.startDue(now: 2_200)
        #expect(try Self.reports(out).first?.replicas.map(\.phase) == [.running, .running])
        #expect(device.running == 2 && device.nextStart == nil)
        #expect(device.received(topic: topic, payload: Self.desired(1, []), responseTopic: nil, correlation: nil, now: 2_300).isEmpty, "a generation not newer is ignored")

        out = device.received(topic: topic, payload: Self.desired(2, [Self.spec("w-0", env: ["A": "1"])]), responseTopic: nil, correlation: nil, now: 3_000)
        let reported = try Self.reports(out)
        let changes = try #require(reported.first)
        #expect(changes.replicas.map { "\($0.id) \($0.phase.rawValue)" } == ["w-0 pending", "w-1 stopped"])
        #expect(changes.seq > 1, "sequence numbers grow")
        _ = device.startDue(now: 4_000)
        let next = device.beat(now: 4_000)
        let beat = try #require(next)
        let decodedBeat = try WireCodec.decode(Beat.self, from: beat.payload, topicDevice: "sim-1")
        #expect(decodedBeat.phases == ["running": 1] && decodedBeat.generation == 2)
    }

    @Test("a ping is answered with its correlation data, only on the device's own reply topic")
    func ping() throws {
        var device = SimDevice(id: "sim-1", seed: 7, profile: Self.profile)
        let ping = WireCodec.encode(Command(device: "sim-1", command: .ping))
        let reply = device.received(topic: Topic.device("sim-1", .cmd), payload: ping, responseTopic: Topic.device("sim-1", .cmdReply), correlation: [1, 2], now: 1)
        #expect(reply.count == 1 && reply.first?.correlation == [1, 2])
        #expect(device.received(topic: Topic.device("sim-1", .cmd), payload: ping, responseTopic: "elsewhere", correlation: [1], now: 1).isEmpty)
    }

    @Test("a quarter of the starts fail when asked, and the same seed gives the same fleet")
    func failures() throws {
        var profile = Self.profile
        profile.failRatio = 0.25
        var a = SimDevice(id: "sim-1", seed: 3, profile: profile)
        var b = SimDevice(id: "sim-1", seed: 3, profile: profile)
        let specs = (0..<400).map { Self.spec("w-\($0)") }
        for d in [0, 1] {
            var device = d == 0 ? a : b
            _ = device.received(topic: Topic.device("sim-1", .desired), payload: Self.desired(1, specs), responseTopic: nil, correlation: nil, now: 0)
            if d == 0 { a = device } else { b = device }
        }
        let failedA = try Self.reports(a.startDue(now: 1_000)).flatMap(\.replicas).filter { $0.phase == .failed }.count
        let failedB = try Self.reports(b.startDue(now: 1_000)).flatMap(\.replicas).filter { $0.phase == .failed }.count
        #expect((60...140).contains(failedA), "\(failedA) of 400")
        #expect(failedA == failedB)
    }
}
