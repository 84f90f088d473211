import Foundation
import Testing

/// An independent MQTT client sends hostile messages on every device topic to a real
/// controller: it stays up, the right counters rise, other devices are untouched, and every
/// CLI view still renders.
@Suite("Hostile MQTT input", .serialized)
struct HostileMQTTTests {
    static let maxI = "9223372036854775807"
    static let minI = "-9223372036854775808"

    static func hello(_ device: String, capacity: String = #"{"cpuMillis":2000,"memoryBytes":1073741824}"#, labels: String = "{}", generation: String = "0") -> String {
        #"{"v":1,"device":"\#(device)","bootID":"b","lastAppliedGeneration":\#(generation),"facts":{"agentVersion":"x","arch":"amd64","os":"Linux","capacity":\#(capacity),"labels":\#(labels),"runtimes":["exec"]}}"#
    }

    static func beat(_ device: String, time: String = "1", cpu: String = "1", memory: String = "1", phases: String = "{}", replicaCPU: String = "{}") -> String {
        #"{"v":1,"device":"\#(device)","time":\#(time),"usage":{"cpuPercent":\#(cpu),"memoryUsedBytes":\#(memory),"memoryTotalBytes":2,"diskUsedBytes":1,"diskTotalBytes":2},"phases":\#(phases),"replicaCPU":\#(replicaCPU)}"#
    }

    static func report(_ device: String, seq: String, id: String = "x-0", workload: String = "x", extra: String = "") -> String {
        #"{"v":1,"device":"\#(device)","seq":\#(seq),"replicas":[{"id":"\#(id)","workload":"\#(workload)","phase":"exited","generation":1,"restarts":0,"time":1\#(extra)}]}"#
    }

    /// (topic device, channel, payload, the drop reason it must be counted as; nil: accepted or ignored).
    static func cases(victim: String, victimReplica: String) -> [(String, String, String, String?)] {
        let labels = "{" + (0..<10_000).map { "\"k\($0)\":\"v\"" }.joined(separator: ",") + "}"
        return [
            ("evil", "hello", hello("evil", capacity: #"{"cpuMillis":\#(maxI),"memoryBytes":\#(maxI)}"#), "invalidField"),
            ("evil", "hello", hello("evil", capacity: #"{"cpuMillis":-1,"memoryBytes":\#(minI)}"#), "invalidField"),
            ("evil", "hello", hello("evil", capacity: #"{"cpuMillis":1e300}"#), "malformed"),
            ("evil", "hello", hello("evil", capacity: #"{"storageBytes":\#(maxI),"devices":{"gpu":\#(maxI)}}"#), "invalidField"),
            ("evil", "hello", hello("evil", generation: maxI), "invalidField"),
            ("evil", "hello", hello("evil", generation: minI), "invalidField"),
            ("evil", "hello", hello("evil", generation: "\"7\""), "malformed"),
            ("evil", "hello", hello("evil", labels: labels), "invalidField"),
            (".", "hello", hello("."), "unknownTopic"),
            ("..", "hello", hello(".."), "unknownTopic"),
            ("known", "hello", hello("known"), nil),
            ("known", "beat", beat("known", time: maxI), "invalidField"),
            ("known", "beat", beat("known", cpu: "1e300"), "invalidField"),
            ("known", "beat", beat("known", cpu: "-1"), "invalidField"),
            ("known", "beat", beat("known", memory: maxI), "invalidField"),
            ("known", "beat", beat("known", phases: #"{"running":\#(maxI)}"#), "invalidField"),
            ("known", "beat", beat("known", replicaCPU: #"{"\#(victimReplica)":\#(maxI)}"#), "invalidField"),
            ("known", "beat", beat("known", memory: "[]"), "malformed"),
            ("known", "report", report("known", seq: maxI), "invalidField"),
            ("known", "report", report("known", seq: "-1"), "invalidField"),
            ("known", "report", report("known", seq: "1", extra: #","pid":-1"#), "invalidField"),
            ("known", "report", report("known", seq: "1", extra: #","exitCode":\#(maxI)"#), "malformed"),
            ("known", "report", report("known", seq: "1", id: ".."), "invalidField"),
            // Another device's replica, with a sequence number far ahead: ignored, not applied.
            ("known", "report", report("known", seq: "9007199254740992", id: victimReplica, workload: "steady"), nil),
            ("known", "cmd/reply", #"{"v":1,"device":"known","command":"ping","ok":true,"message":"\#(String(repeating: "m", count: 5000))"}"#, "invalidField"),
            ("known", "state", #"{"v":1,"device":"known","state":"zzz"}"#, "malformed"),
            (victim, "beat", beat(victim, cpu: "1e300"), "invalidField"),
        ]
    }

    /// On a broker of the operator's without an ACL (the worst case; the managed broker keeps
    /// each device to its own topics, see SecurityTests), so that every topic can be tried.
    @Test("extreme numbers, wrong types, 10,000 labels, ids . and .., another device's replicas, sequence numbers far ahead")
    func hostile() async throws {
        try await FleetTestbed.run("hostile", externalBroker: true) { bed in
            let before = try await bed.steadyOnGW1()
            let port = String(bed.brokerURL.split(separator: ":").last ?? "")
            let cases = Self.cases(victim: "gw-1", victimReplica: before.first?.id ?? "steady-0")
            var expected: [String: Int] = [:]
            for (i, (device, channel, payload, reason)) in cases.enumerated() {
                let file = bed.dir + "/hostile-\(i).json"
                try payload.write(toFile: file, atomically: true, encoding: .utf8)
                let topic = "drover/v1/dev/\(device)/\(channel)"
                let sent = try Harness.run("/usr/bin/mosquitto_pub", ["-h", "127.0.0.1", "-p", port, "-q", "1", "-i", "hostile-\(i)", "-t", topic, "-f", file])
                #expect(sent.status == 0, "\(topic): \(sent.output)")
                if let reason { expected[reason, default: 0] += 1 }
                // The known device must exist before its other messages are judged.
                if device == "known", channel == "hello" {
                    #expect(await Harness.eventually { (try? await bed.api.request("GET", "/v1/devices/known").0) == 200 })
                }
            }
            let counted = await Harness.eventually(.seconds(10)) {
                let drops = ((try? await bed.api.get("/v1/status"))?["fleet"] as? [String: Any])?["droppedMessages"] as? [String: Int] ?? [:]
                return expected.allSatisfy { drops[$0.key] == $0.value }
            }
            let drops = (try await bed.api.get("/v1/status")["fleet"] as? [String: Any])?["droppedMessages"] as? [String: Int] ?? [:]
            #expect(counted, "dropped \(drops), expected \(expected)")
            #expect(bed.controller?.isRunning == true)

            // Nothing of it reached the fleet: no "evil" device, gw-1 and its replica untouched.
            #expect(try await bed.api.request("GET", "/v1/devices/evil").0 == 404)
            let devices = try await bed.api.list("/v1/devices").compactMap { ($0["record"] as? [String: Any])?["id"] as? String }
            #expect(devices.sorted() == ["gw-1", "known"])
            #expect(try await bed.running("steady").map(\.pid) == before.map(\.pid))
            let gw1 = try await bed.api.get("/v1/devices/gw-1")["record"] as? [String: Any]
            #expect(gw1?["presence"] as? String == "online")

            for args in [["status"], ["devices"], ["workloads"], ["describe", "device", "known"], ["describe", "device", "gw-1"],
                         ["describe", "workload", "steady"], ["events", "--limit", "500"], ["devices", "-o", "yaml"], ["devices", "-o", "json"]] {
                let (status, output) = try bed.drover(args)
                #expect(status == 0, "drover \(args.joined(separator: " ")): \(output)")
            }
        }
    }
}
