import DroverMQTT
import DroverProtocol
import Foundation
import Testing

/// A network namespace and a veth pair that the test makes and removes itself: the device
/// side lives in the namespace, the broker listens on the host side too. Link-local
/// addresses, reachable from nowhere else.
final class Partition: @unchecked Sendable {
    let namespace: String
    let hostLink: String
    let hostAddress: String
    let deviceAddress: String

    init() throws {
        let tag = String(UInt32.random(in: 0x1000...0xffff), radix: 16)
        let subnet = Int.random(in: 1...254)
        let host = Int.random(in: 0...63) * 4
        namespace = "drover-pt-\(tag)"
        hostLink = "vh-\(tag)"
        hostAddress = "169.254.\(subnet).\(host + 1)"
        deviceAddress = "169.254.\(subnet).\(host + 2)"
        let deviceLink = "vn-\(tag)"
        let steps: [[String]] = [
            ["netns", "add", namespace],
            ["link", "add", hostLink, "type", "veth", "peer", "name", deviceLink],
            ["link", "set", deviceLink, "netns", namespace],
            ["addr", "add", hostAddress + "/30", "dev", hostLink],
            ["link", "set", hostLink, "up"],
            ["netns", "exec", namespace, "ip", "addr", "add", deviceAddress + "/30", "dev", deviceLink],
            ["netns", "exec", namespace, "ip", "link", "set", deviceLink, "up"],
            ["netns", "exec", namespace, "ip", "link", "set", "lo", "up"],
        ]
        for step in steps {
            let (status, output) = try Harness.run("/usr/sbin/ip", step)
            guard status == 0 else {
                remove()
                throw HarnessError("ip \(step.joined(separator: " ")): \(output)")
            }
        }
    }

    /// Cuts the link: packets stop both ways, nobody is told.
    func cut() throws { try Harness.run("/usr/sbin/ip", ["link", "set", hostLink, "down"]) }
    func heal() throws { try Harness.run("/usr/sbin/ip", ["link", "set", hostLink, "up"]) }

    /// Deleting the namespace deletes its end of the pair, and so the pair.
    func remove() {
        _ = try? Harness.run("/usr/sbin/ip", ["netns", "del", namespace])
        _ = try? Harness.run("/usr/sbin/ip", ["link", "del", hostLink])
    }
}

@Suite("Network partition", .serialized)
struct PartitionTests {
    @Test("a partitioned device keeps its replicas until tolerateOffline, then they run elsewhere; back, it stops its own; never more than asked")
    func partition() async throws {
        let net = try Partition()
        defer { net.remove() }
        try await FleetTestbed.run("partition", externalBroker: true, brokerAlsoOn: net.hostAddress) { bed in
            let port = bed.external?.port ?? 0
            try bed.startAgent("gw-1", labels: "role=gateway", capacity: "cpu=2,memory=1Gi", netns: net.namespace, broker: "mqtt://\(net.hostAddress):\(port)")
            try bed.startAgent("gw-2", labels: "role=gateway", capacity: "cpu=2,memory=1Gi")
            try await bed.waitForDevices(online: 2)
            try await bed.apply(FaultTests.manifest("steady", replicas: 2, tolerate: "4s"))
            #expect(await Harness.eventually { (try? await bed.running("steady").count) == 2 })
            try bed.startAgent("gw-3", labels: "role=gateway", capacity: "cpu=2,memory=1Gi")
            try await bed.waitForDevices(online: 3)
            let isolated = try await bed.running("steady").first { $0.device == "gw-1" }
            #expect(isolated != nil, "one replica runs on gw-1")
            try await bed.waitPastGrace()

            /// Live replica processes per device, as the machine sees them.
            func processes() -> [String: Int] {
                var counts: [String: Int] = [:]
                for id in ["gw-1", "gw-2", "gw-3"] { counts[id] = Harness.processes(under: bed.agentDir(id)).filter(Harness.isAlive).count }
                return counts
            }

            try net.cut()
            let cutAt = ContinuousClock.now
            #expect(await Harness.eventually(.seconds(10)) {
                ((try? await bed.api.get("/v1/devices/gw-1"))?["record"] as? [String: Any])?["presence"] as? String == "unreachable"
            })
            // Within tolerateOffline the replica stays where it is, and still runs there.
            if ContinuousClock.now - cutAt < .seconds(3) {
                #expect(try await bed.replicas("steady").contains { $0["device"] as? String == "gw-1" })
            }
            #expect(processes()["gw-1"] == 1)
            // After it, the replica runs elsewhere; only gw-1's own copy is extra.
            let moved = await Harness.eventually(.seconds(20)) {
                guard let running = try? await bed.running("steady") else { return false }
                return running.count == 2 && !running.contains { $0.device == "gw-1" }
            }
            #expect(moved)
            for _ in 0..<5 {
                let p = processes()
                #expect((p["gw-2"] ?? 0) + (p["gw-3"] ?? 0) <= 2, "reachable devices run more than asked: \(p)")
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(processes()["gw-1"] == 1, "cut off, gw-1 cannot know and keeps running its own")

            try net.heal()
            let stopped = await Harness.eventually(.seconds(45)) { processes()["gw-1"] == 0 }
            #expect(stopped, "back, gw-1 stops the replica that moved away: \(processes())")
            #expect(await Harness.eventually(.seconds(20)) {
                ((try? await bed.api.get("/v1/devices/gw-1"))?["record"] as? [String: Any])?["presence"] as? String == "online"
            })
            let p = processes()
            #expect(p.values.reduce(0, +) == 2, "\(p)")
            #expect(try await bed.running("steady").count == 2)
        }
    }

    @Test("at the default beats an idle device is all but silent, yet a cut link marks it unreachable within 1.5 keepalives, by its will")
    func presenceFromSession() async throws {
        let net = try Partition()
        defer { net.remove() }
        try await FleetTestbed.run("session", externalBroker: true, brokerAlsoOn: net.hostAddress, Self.sessionBody(net))
    }

    @Test("back on its kept session after a cut, a device says only online: no hello, no resubscription, no desired state again; what changed meanwhile reaches it")
    func resumedSession() async throws {
        let net = try Partition()
        defer { net.remove() }
        try await FleetTestbed.run("resume", externalBroker: true, brokerAlsoOn: net.hostAddress) { bed in
            guard let broker = bed.external else { throw HarnessError("no external broker") }
            let observer = try MQTTClientTests.client(broker, id: "observer")
            observer.subscribe("drover/v1/dev/gw-1/+")
            observer.start()
            defer { Task { await observer.shutdown() } }
            #expect(await MQTTClientTests.waitConnected(observer))
            // What the device publishes, as it arrives.
            let reader = Task {
                var seen: [(at: ContinuousClock.Instant, message: String)] = []
                for await message in observer.messages {
                    // Desired state comes deflated to an agent, which says it reads it so.
                    let payload = Deflate.isDeflated(message.payload) ? (try? Deflate.inflated(message.payload, limit: 1 << 20)) ?? [] : message.payload
                    seen.append((.now, String(message.topic.split(separator: "/").last ?? "") + ":" + String(decoding: payload, as: UTF8.self)))
                }
                return seen
            }
            try bed.startAgent(
                "gw-1", labels: "role=gateway", capacity: "cpu=2,memory=1Gi", extra: ["--idle-beat-interval", "300", "--keepalive", "5"], netns: net.namespace,
                broker: "mqtt://\(net.hostAddress):\(broker.port)")
            try await bed.waitForDevices(online: 1)
            try await bed.apply(FaultTests.manifest("steady", replicas: 1, tolerate: "600s"))
            #expect(await Harness.eventually { (try? await bed.running("steady").count) == 1 })
            let before = try #require(try await bed.running("steady").first)
            try await bed.waitPastGrace()
            // The broker logs each subscription: "<client id> <qos> <filter>".
            let subscribes = { ((try? String(contentsOfFile: broker.dir + "/mosquitto.log", encoding: .utf8))?.components(separatedBy: "drover-agent-gw-1 1 drover/v1/").count ?? 1) - 1 }
            let subscribedBefore = subscribes()
            #expect(subscribedBefore == 3, "desired, cmd and ctl/state, once")

            try net.cut()
            #expect(await Harness.eventually(.seconds(15)) { (try? await bed.presence("gw-1")) == "unreachable" }, "the will")
            // A new revision while the device is away: the broker queues it in its session.
            try await bed.apply(FaultTests.manifest("steady", replicas: 1, tolerate: "600s").replacingOccurrences(of: "sleep 1000", with: "sleep 1001"))
            try await Task.sleep(for: .seconds(1))
            let healed = ContinuousClock.now
            try net.heal()
            #expect(await Harness.eventually(.seconds(20)) { (try? await bed.presence("gw-1")) == "online" })
            let replaced = await Harness.eventually(.seconds(20)) { ((try? await bed.running("steady").first)?.pid ?? before.pid) != before.pid }
            #expect(replaced, "the revision queued in the session reached the device and runs")
            try await Task.sleep(for: .seconds(2))
            reader.cancel()
            let all = await reader.value
            #expect(all.contains { $0.at < healed && $0.message.hasPrefix("desired:") && $0.message.contains("sleep 1001") }, "sent while the device was away")
            let seen = all.filter { $0.at > healed }.map(\.message)
            #expect(seen.contains { $0.hasPrefix("state:") && $0.contains("online") }, "\(seen)")
            #expect(!seen.contains { $0.hasPrefix("hello:") }, "no hello on a resumed session: \(seen)")
            #expect(subscribes() == subscribedBefore, "no SUBSCRIBE on a resumed session (the retained desired state would come again)")
            let log = try String(contentsOfFile: bed.dir + "/agent-gw-1-0.log", encoding: .utf8)
            #expect(log.contains("sessionPresent: true") || log.contains("sessionPresent=true"), "the device reconnected into its session")
        }
    }

    static func sessionBody(_ net: Partition) -> (FleetTestbed) async throws -> Void {
        { bed in
            let port = bed.external?.port ?? 0
            let metrics = try Harness.freePort()
            // The default idle beat (5 minutes) and a 5 s keepalive: only the will can say it is gone in time.
            try bed.startAgent(
                "gw-1", labels: "role=gateway", capacity: "cpu=2,memory=1Gi", extra: ["--idle-beat-interval", "300", "--keepalive", "5"], netns: net.namespace,
                broker: "mqtt://\(net.hostAddress):\(port)")
            try bed.startAgent("gw-2", labels: "role=gateway", capacity: "cpu=2,memory=1Gi", extra: ["--idle-beat-interval", "300", "--metrics-listen", "\(metrics)"])
            try await bed.waitForDevices(online: 2)
            try await bed.apply(FaultTests.manifest("steady", replicas: 2, tolerate: "60s"))
            #expect(await Harness.eventually { (try? await bed.running("steady").count) == 2 })
            try await bed.waitPastGrace()

            // Sampled every 0.5 s, nothing changing: the old beats were 16 in 8 s.
            let before = try await AgentMetricsTests.value(port: metrics, "drover_agent_beats_sent_total")
            try await Task.sleep(for: .seconds(8))
            let after = try await AgentMetricsTests.value(port: metrics, "drover_agent_beats_sent_total")
            #expect(after - before <= 3, "an idle device sent \(after - before) beats in 8 s")
            #expect(try await bed.presence("gw-2") == "online", "and is online all the same")

            try net.cut()
            let cutAt = ContinuousClock.now
            let gone = await Harness.eventually(.seconds(15)) { (try? await bed.presence("gw-1")) == "unreachable" }
            #expect(gone, "the broker fires the will after 7.5 s of silence")
            #expect(ContinuousClock.now - cutAt >= .seconds(4), "no sooner than the keepalive allows")
            let events = String(decoding: try await bed.api.request("GET", "/v1/events?subject=gw-1").2, as: UTF8.self)
            #expect(events.contains("last will"), "\(events)")
            try net.heal()
            #expect(await Harness.eventually(.seconds(20)) { (try? await bed.presence("gw-1")) == "online" })
        }
    }
}
