import DroverCore
import DroverProtocol
import Testing

@Suite("Wire protocol")
struct ProtocolTests {
    static let facts = DeviceFacts(agentVersion: "0.1.0", arch: "arm64", os: "Debian", capacity: Resources(cpuMillis: 2000, memoryBytes: 1 << 30), labels: ["site": "a"], runtimes: [.exec])

    @Test("topics are built and parsed from one place")
    func topics() {
        #expect(Topic.device("gw-1", .desired) == "drover/v1/dev/gw-1/desired")
        #expect(Topic.parse("drover/v1/dev/gw-1/beat")?.device == "gw-1")
        #expect(Topic.parse("drover/v1/dev/gw-1/beat")?.channel == .beat)
        #expect(Topic.parse("drover/v1/dev/gw-1/other") == nil)
        #expect(Topic.parse("drover/v1/dev/a/b/beat") == nil)
        #expect(Topic.parse("drover/v2/dev/gw-1/beat") == nil)
        #expect(Topic.parse("drover/v1/dev/gw-1/cmd/reply")?.channel == .cmdReply)
        #expect(Topic.parse("drover/v1/dev/gw-1/cmd")?.channel == .cmd)
        #expect(Topic.controllerSubscriptions.count == 5)
    }

    @Test("every message survives a round trip")
    func roundTrip() throws {
        let hello = Hello(device: "gw-1", facts: Self.facts, bootID: "b", lastAppliedGeneration: 4)
        #expect(try WireCodec.decode(Hello.self, from: WireCodec.encode(hello), topicDevice: "gw-1") == hello)
        let status = ReplicaStatus(id: "w-0", workload: "w", phase: .running, generation: 2, pid: 10, restarts: 1, time: 5)
        let report = Report(device: "gw-1", seq: 7, replicas: [status])
        #expect(try WireCodec.decode(Report.self, from: WireCodec.encode(report), topicDevice: "gw-1") == report)
        let spec = WorkloadSpec(name: "w", command: ["/bin/true"]).replica(ordinal: 0)
        let desired = Desired(device: "gw-1", generation: 3, replicas: [spec])
        #expect(try WireCodec.decode(Desired.self, from: WireCodec.encode(desired), topicDevice: "gw-1") == desired)
    }

    func reason<M: DeviceMessage>(_ type: M.Type, _ payload: [UInt8], device: String = "gw-1") -> DropReason? {
        do {
            _ = try WireCodec.decode(type, from: payload, topicDevice: device)
            return nil
        } catch {
            return error.reason
        }
    }

    @Test("malformed payloads are refused as malformed", arguments: ["", "{", "null", "[1,2]", #"{"v":1}"#, #"{"v":"1","device":"gw-1"}"#, "\u{0}\u{1}binary"])
    func malformed(text: String) {
        #expect(reason(Beat.self, Array(text.utf8)) == .malformed)
    }

    @Test("a payload over the size limit is refused unread")
    func oversized() {
        #expect(reason(Beat.self, [UInt8](repeating: 32, count: WireCodec.maxPayloadBytes + 1)) == .oversized)
    }

    @Test("an unknown schema version is refused")
    func wrongVersion() {
        #expect(reason(Beat.self, Array(#"{"v":2,"device":"gw-1"}"#.utf8)) == .unknownVersion)
    }

    @Test("a message whose device differs from its topic is refused")
    func wrongDevice() {
        let hello = Hello(device: "gw-2", facts: Self.facts, bootID: "b", lastAppliedGeneration: 0)
        #expect(reason(Hello.self, WireCodec.encode(hello), device: "gw-1") == .deviceMismatch)
    }

    @Test("well-typed but invalid fields are refused with their path")
    func invalidFields() throws {
        let report = Report(device: "gw-1", seq: 0, replicas: [])
        #expect(reason(Report.self, WireCodec.encode(report)) == .invalidField)
        let desired = Desired(device: "gw-1", generation: 0, replicas: [])
        #expect(reason(Desired.self, WireCodec.encode(desired)) == .invalidField)
        do {
            _ = try WireCodec.decode(Report.self, from: Array(#"{"v":1,"device":"gw-1","seq":1}"#.utf8), topicDevice: "gw-1")
            Issue.record("decoded a report without replicas")
        } catch {
            #expect(error.detail.contains("replicas"))
        }
    }

    @Test("drops are counted always but logged once per device and minute")
    func ledger() {
        var ledger = DropLedger(logInterval: 60)
        let logged = [
            ledger.record(.malformed, device: "a", now: 0), ledger.record(.malformed, device: "a", now: 30),
            ledger.record(.oversized, device: "b", now: 30), ledger.record(.malformed, device: "a", now: 61),
        ]
        #expect(logged == [true, false, true, true])
        #expect(ledger.counts[.malformed] == 3)
        #expect(ledger.total == 4)
    }
}
