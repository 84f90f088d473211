import DroverCore
import DroverProtocol
import Foundation
import Testing

/// Every number a device sends has a range; anything outside it, or of the wrong type, is
/// dropped with the right reason before any arithmetic can touch it.
@Suite("Hostile input at decode")
struct HostileInputTests {
    struct Case: CustomStringConvertible, Sendable {
        var message: String
        var path: String
        var value: String
        var reason: DropReason
        var description: String { "\(message).\(path) = \(value.prefix(40)) → \(reason.rawValue)" }
    }

    static let maxI = "9223372036854775807"
    static let minI = "-9223372036854775808"

    static let cases: [Case] = {
        var c: [Case] = []
        func add(_ message: String, _ path: String, _ values: [String], _ reason: DropReason) {
            for v in values { c.append(Case(message: message, path: path, value: v, reason: reason)) }
        }
        for field in ["facts.capacity.cpuMillis", "facts.capacity.memoryBytes", "facts.capacity.storageBytes", "lastAppliedGeneration"] {
            add("hello", field, [maxI, minI, "-1"], .invalidField)
            add("hello", field, ["1e300", "\"12\"", "true"], .malformed)
        }
        // Capacity dimensions may be left out (null is absent: 0); the generation may not.
        add("hello", "lastAppliedGeneration", ["null"], .malformed)
        add("hello", "facts.capacity.devices", [#"{"gpu":\#(maxI)}"#, #"{"gpu":-1}"#, #"{"a b":1}"#], .invalidField)
        add("hello", "facts.labels", [Self.manyLabels(10_000), #"{"bad key":"x"}"#, #"{"k":"v v"}"#], .invalidField)
        add("hello", "facts.arch", ["\"\"", "\"\(String(repeating: "x", count: 100))\""], .invalidField)
        add("hello", "bootID", ["\"\(String(repeating: "b", count: 100))\""], .invalidField)
        add("beat", "time", [maxI, minI, "-1"], .invalidField)
        add("beat", "usage.cpuPercent", ["1e300", "-1", "100.5"], .invalidField)
        add("beat", "usage.cpuPercent", ["\"NaN\""], .malformed)
        for field in ["usage.memoryUsedBytes", "usage.memoryTotalBytes", "usage.diskUsedBytes", "usage.diskTotalBytes"] {
            add("beat", field, [maxI, minI, "-1"], .invalidField)
        }
        add("beat", "phases", [#"{"running":\#(maxI)}"#, #"{"running":-1}"#, #"{"bogus":1}"#], .invalidField)
        add("beat", "replicaCPU", [#"{"w-0":\#(maxI)}"#, #"{"w-0":-1}"#, #"{"..":1}"#, #"{".":1}"#], .invalidField)
        add("report", "seq", [maxI, minI, "0", "-1"], .invalidField)
        add("report", "seq", ["1e300", "\"x\""], .malformed)
        for (field, bad) in [("generation", [maxI, "-1"]), ("pid", ["-1", "0"]), ("exitCode", ["256", "-1"]), ("restarts", [maxI, "-1"]), ("time", [maxI, "-1"])] {
            add("report", "replicas[0].\(field)", bad, .invalidField)
        }
        add("report", "replicas[0].pid", ["4294967296", maxI], .malformed)
        add("report", "replicas[0].id", ["\"..\"", "\".\"", "\"a/b\"", "\"\""], .invalidField)
        add("report", "replicas[0].message", ["\"\(String(repeating: "m", count: 2000))\""], .invalidField)
        add("cmdReply", "message", ["\"\(String(repeating: "m", count: 2000))\""], .invalidField)
        add("desired", "generation", [maxI, "0", "-1"], .invalidField)
        add("desired", "replicas[0].id", ["\"..\"", "\".\""], .invalidField)
        return c
    }()

    static func manyLabels(_ n: Int) -> String {
        "{" + (0..<n).map { "\"k\($0)\":\"v\"" }.joined(separator: ",") + "}"
    }

    /// A valid message of each kind, as JSON text with a placeholder where the field goes.
    static func template(_ message: String) -> [String: Any] {
        let spec = WorkloadSpec(name: "w", command: ["/bin/true"]).replica(ordinal: 0)
        let facts = DeviceFacts(agentVersion: "1", arch: "amd64", os: "Linux", capacity: Resources(cpuMillis: 1000, memoryBytes: 1 << 30), labels: [:], runtimes: [.exec])
        let bytes: [UInt8] = switch message {
        case "hello": WireCodec.encode(Hello(device: "gw-1", facts: facts, bootID: "b", lastAppliedGeneration: 1))
        case "beat":
            WireCodec.encode({
                var b = Beat(device: "gw-1", time: 1, usage: Usage(cpuPercent: 1, memoryUsedBytes: 1, memoryTotalBytes: 2, diskUsedBytes: 1, diskTotalBytes: 2), phases: ["running": 1])
                b.replicaCPU = ["w-0": 5]
                return b
            }())
        case "report": WireCodec.encode(Report(device: "gw-1", seq: 1, replicas: [ReplicaStatus(id: "w-0", workload: "w", phase: .running, generation: 1, pid: 5, exitCode: 0, time: 1)]))
        case "cmdReply": WireCodec.encode(CommandReply(device: "gw-1", command: "ping", ok: true, message: "ok"))
        default: WireCodec.encode(Desired(device: "gw-1", generation: 1, replicas: [spec]))
        }
        return (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] ?? [:]
    }

    /// The template with `path` replaced by the raw JSON `value`, as bytes.
    static func payload(_ c: Case) -> [UInt8] {
        let marker = "HOSTILE-MARKER-7f3a"
        var root = template(c.message)
        func set(_ node: Any, _ keys: ArraySlice<String>) -> Any {
            guard let key = keys.first else { return marker }
            if key.hasSuffix("[0]"), var object = node as? [String: Any], let list = object[String(key.dropLast(3))] as? [Any], let first = list.first {
                object[String(key.dropLast(3))] = [set(first, keys.dropFirst())] + list.dropFirst()
                return object
            }
            var object = node as? [String: Any] ?? [:]
            object[key] = set(object[key] ?? [:], keys.dropFirst())
            return object
        }
        root = set(root, ArraySlice(c.path.split(separator: ".").map(String.init))) as? [String: Any] ?? root
        let text = String(decoding: (try? JSONSerialization.data(withJSONObject: root, options: [.sortedKeys])) ?? Data(), as: UTF8.self)
        return Array(text.replacingOccurrences(of: "\"\(marker)\"", with: c.value).utf8)
    }

    /// `beatCall`: beats through `decodeBeat` (the controller's call) instead of `decode`.
    func decode(_ c: Case, beatCall: Bool = false) -> DropReason? {
        let bytes = Self.payload(c)
        do throws(WireError) {
            switch c.message {
            case "hello": _ = try WireCodec.decode(Hello.self, from: bytes, topicDevice: "gw-1")
            case "beat" where beatCall: _ = try WireCodec.decodeBeat(from: bytes, topicDevice: "gw-1")
            case "beat": _ = try WireCodec.decode(Beat.self, from: bytes, topicDevice: "gw-1")
            case "report": _ = try WireCodec.decode(Report.self, from: bytes, topicDevice: "gw-1")
            case "cmdReply": _ = try WireCodec.decode(CommandReply.self, from: bytes, topicDevice: "gw-1")
            default: _ = try WireCodec.decode(Desired.self, from: bytes, topicDevice: "gw-1")
            }
            return nil
        } catch {
            return error.reason
        }
    }

    @Test("the valid templates decode", arguments: ["hello", "beat", "report", "cmdReply", "desired"])
    func templatesDecode(message: String) {
        #expect(decode(Case(message: message, path: "v", value: "1", reason: .invalidField)) == nil)
        #expect(decode(Case(message: message, path: "v", value: "1", reason: .invalidField), beatCall: true) == nil)
    }

    @Test("an extreme or mistyped value is dropped with the right reason", arguments: cases)
    func hostile(c: Case) {
        #expect(decode(c) == c.reason, "payload: \(String(decoding: Self.payload(c).prefix(300), as: UTF8.self))")
        if c.message == "beat" { #expect(decode(c, beatCall: true) == c.reason, "through decodeBeat") }
    }

    @Test("a report with more replicas than the limit is dropped")
    func tooManyReplicas() {
        let statuses = (0...WireLimits.maxReplicas).map { ReplicaStatus(id: "w-\($0)", workload: "w", phase: .running, generation: 1, time: 1) }
        let bytes = WireCodec.encode(Report(device: "gw-1", seq: 1, replicas: statuses))
        #expect(throws: WireError.self) { try WireCodec.decode(Report.self, from: bytes, topicDevice: "gw-1") }
    }

    @Test("device ids . and .. are no topic of a device")
    func dotIDs() {
        #expect(Topic.parse("drover/v1/dev/./hello") == nil)
        #expect(Topic.parse("drover/v1/dev/../beat") == nil)
        #expect(Topic.parse("drover/v1/dev/.a/beat")?.device == ".a")
        // Topics of other shapes.
        for topic in ["drover/v1/dev/gw-1", "drover/v1/dev//beat", "drover/v1/dev/gw-1/beat/x", "drover/v1/dev/gw-1/", "drover/v1/dev/", "drover/v2/dev/gw-1/beat", "xdrover/v1/dev/gw-1/beat", "drover/v1/dev/gw-ü/beat"] {
            #expect(Topic.parse(topic) == nil, "\(topic)")
        }
        let parsed = Topic.parse("drover/v1/dev/gw-1/report")
        #expect(parsed?.device == "gw-1" && parsed?.channel == .report)
        #expect(Topic.parse(Topic.device("dev-000042", .beat))?.device == "dev-000042")
    }

    @Test("a runtime this build does not know is left out, not the whole device")
    func unknownRuntime() throws {
        let text = #"{"v":1,"device":"gw-1","bootID":"b","lastAppliedGeneration":0,"facts":{"agentVersion":"9","arch":"arm64","os":"L","capacity":{"cpuMillis":1000,"memoryBytes":1},"labels":{},"runtimes":["kata","exec"]}}"#
        let hello = try WireCodec.decode(Hello.self, from: Array(text.utf8), topicDevice: "gw-1")
        #expect(hello.facts.runtimes == [.exec])
    }

    @Test("memory sizes print at every magnitude, up to the largest 64-bit value")
    func formatExtremes() {
        #expect(Quantity.formatMemory(Int64.max) == "8388608.0Ti")
        #expect(Quantity.formatMemory(Int64.min) == "\(Int64.min)")
        #expect(Quantity.formatMemory((1 << 30) + (1 << 29)) == "1.5Gi")
        #expect(Quantity.formatMemory((1 << 30) - 1) == "1024.0Mi")
    }
}
