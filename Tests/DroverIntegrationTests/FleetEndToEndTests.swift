import Foundation
import Testing

/// Real controller (with its managed mosquitto), real agents, real replica processes.
@Suite("Fleet end to end", .serialized)
struct FleetEndToEndTests {
    static let manifest = Harness.repoRoot + "/fleet-configs/workloads/sensor-reader.yaml"

    static func apply(_ bed: FleetTestbed, file: String = manifest) async throws {
        let (code, body, _) = try await bed.api.request("POST", "/v1/workloads", body: try String(contentsOfFile: file, encoding: .utf8))
        #expect(code == 201 || code == 200, "apply answered \(code): \(body)")
    }

    @Test("apply 3 replicas: 3 processes on the matching devices; scale to 1: two stop; delete: none left")
    func applyScaleDelete() async throws {
        try await FleetTestbed.run("e2e") { bed in
            _ = try bed.startDemoAgents()
            try bed.startAgent("cam-1", labels: "role=camera", capacity: "cpu=4,memory=4Gi")
            try await bed.waitForDevices(online: 4)
            try await Self.apply(bed)

            #expect(await Harness.eventually { (try? await bed.running("sensor-reader").count) == 3 })
            let replicas = try await bed.running("sensor-reader")
            #expect(Set(replicas.map(\.device)) == ["gw-plant-a-1", "gw-plant-a-2", "gw-plant-b-1"])
            for r in replicas {
                #expect(Harness.isAlive(r.pid), "\(r.id) pid \(r.pid) is not running")
                // The process really belongs to that device's agent: it works in its replica dir.
                let cwd = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(r.pid)/cwd")
                #expect(cwd == bed.agentDir(r.device) + "/replicas/" + r.id + "/work")
            }
            #expect(Harness.processes(under: bed.agentDir("cam-1")).isEmpty)

            let (code, _, _) = try await bed.api.request("POST", "/v1/workloads/sensor-reader/scale", body: #"{"replicas": 1}"#)
            #expect(code == 200)
            let kept = replicas.first { $0.id == "sensor-reader-0" }
            let stopped = replicas.filter { $0.id != "sensor-reader-0" }
            #expect(await Harness.eventually { stopped.allSatisfy { !Harness.isAlive($0.pid) } })
            #expect(kept.map { Harness.isAlive($0.pid) } == true)
            #expect(await Harness.eventually { (try? await bed.running("sensor-reader").count) == 1 })

            #expect(try await bed.api.request("DELETE", "/v1/workloads/sensor-reader").0 == 204)
            #expect(await Harness.eventually { kept.map { !Harness.isAlive($0.pid) } ?? true })
            #expect(await Harness.eventually { Harness.processes(under: bed.dir + "/agents").isEmpty })
        }
    }

    @Test("kill -9 of an agent: its device is unreachable within the configured bound, its replicas keep running")
    func agentKilled() async throws {
        try await FleetTestbed.run("kill") { bed in
            try bed.startAgent("gw-1", labels: "role=gateway", capacity: "cpu=1,memory=512Mi")
            try await bed.waitForDevices(online: 1)
            try await Self.apply(bed)
            #expect(await Harness.eventually { (try? await bed.running("sensor-reader").count) == 1 })
            let replica = try await bed.running("sensor-reader").first
            // Past the grace after the controller's start (10 s at least), in which nobody is judged.
            try await bed.waitPastGrace()
            await bed.agents["gw-1"]?.stop(signal: SIGKILL)
            let killedAt = ContinuousClock.now
            let unreachable = await Harness.eventually(.seconds(10)) {
                ((try? await bed.api.get("/v1/devices/gw-1"))?["record"] as? [String: Any])?["presence"] as? String == "unreachable"
            }
            #expect(unreachable)
            #expect(ContinuousClock.now - killedAt < .seconds(2 + 3), "took \(ContinuousClock.now - killedAt)")
            #expect(replica.map { Harness.isAlive($0.pid) } == true, "a replica must outlive its agent")
            let events = String(decoding: try await bed.api.request("GET", "/v1/events?subject=gw-1").2, as: UTF8.self)
            #expect(events.contains("DeviceUnreachable"), "events: \(events)\ncontroller log:\n\(bed.controller?.log.suffix(4000) ?? "")")
        }
    }

    @Test("garbage on device topics is counted and dropped; the controller stays healthy and its state unchanged")
    func garbage() async throws {
        let bed = try FleetTestbed(label: "garbage")
        do {
            try await bed.startController()
            try bed.startAgent("gw-1", labels: "role=gateway", capacity: "cpu=1,memory=512Mi")
            try await bed.waitForDevices(online: 1)
            try await Self.apply(bed)
            #expect(await Harness.eventually { (try? await bed.running("sensor-reader").count) == 1 })
            let before = try await bed.api.list("/v1/devices")
            let port = String(bed.brokerURL.split(separator: ":").last ?? "")
            let big = bed.dir + "/big.json"
            try String(repeating: "x", count: 300 * 1024).write(toFile: big, atomically: true, encoding: .utf8)
            let sends: [[String]] = [
                ["-t", "drover/v1/dev/gw-1/beat", "-m", "garbage"],
                ["-t", "drover/v1/dev/gw-1/report", "-m", #"{"v":1,"device":"gw-1","seq":"x"}"#],
                ["-t", "drover/v1/dev/gw-1/hello", "-m", #"{"v":1,"device":"intruder"}"#],
                ["-t", "drover/v1/dev/gw-1/state", "-m", #"{"v":9,"device":"gw-1","state":"offline"}"#],
                ["-t", "drover/v1/dev/gw-1/beat", "-f", big],
                ["-t", "drover/v1/dev/gw-1/beat", "-m", "\u{1}\u{2}\u{3}"],
            ]
            for args in sends {
                // With gw-1's own credentials: a device gone bad can still say anything on its own topics.
                let sent = try Harness.run("/usr/bin/mosquitto_pub", ["-h", "127.0.0.1", "-p", port, "-q", "1", "-i", "garbage-\(UUID().uuidString.prefix(6))"] + bed.mqttLogin("gw-1") + args)
                #expect(sent.status == 0, "\(sent.output)")
            }
            let counted = await Harness.eventually(.seconds(10)) {
                let drops = ((try? await bed.api.get("/v1/status"))?["fleet"] as? [String: Any])?["droppedMessages"] as? [String: Int] ?? [:]
                return drops.values.reduce(0, +) >= sends.count
            }
            #expect(counted)
            let drops = (try await bed.api.get("/v1/status")["fleet"] as? [String: Any])?["droppedMessages"] as? [String: Int] ?? [:]
            #expect(drops["malformed"] ?? 0 >= 3)
            #expect(drops["deviceMismatch"] == 1)
            #expect(drops["unknownVersion"] == 1)
            #expect(drops["oversized"] == 1)
            #expect(bed.controller?.isRunning == true)
            let after = try await bed.api.list("/v1/devices")
            #expect((after.first?["record"] as? [String: Any])?["presence"] as? String == "online")
            #expect(after.count == before.count)
            #expect(try await bed.running("sensor-reader").count == 1)
        } catch {
            Issue.record("\(error)")
        }
        await bed.shutdown()
    }

    @Test("a restarted controller comes back with the same state from controller.db")
    func controllerRestart() async throws {
        try await FleetTestbed.run("restart") { bed in
            _ = try bed.startDemoAgents()
            try await bed.waitForDevices(online: 3)
            try await Self.apply(bed)
            #expect(await Harness.eventually { (try? await bed.running("sensor-reader").count) == 3 })
            let before = try await bed.running("sensor-reader").sorted { $0.id < $1.id }
            let brokerBefore = bed.brokerURL
            await bed.stopController()
            #expect(bed.controller?.isRunning == false)
            try await bed.startController()
            #expect(bed.brokerURL == brokerBefore, "agents are configured with the broker URL: it must not change")
            try await bed.waitForDevices(online: 3)
            let after = try await bed.running("sensor-reader").sorted { $0.id < $1.id }
            #expect(after.map(\.id) == before.map(\.id))
            #expect(after.map(\.device) == before.map(\.device))
            #expect(after.map(\.pid) == before.map(\.pid), "replicas were not restarted")
            let view = try await bed.api.get("/v1/workloads/sensor-reader")
            #expect(view["revision"] as? Int == 1)
        }
    }
}

@Suite("Managed broker", .serialized)
struct ManagedBrokerTests {
    static func brokerPID(_ bed: FleetTestbed) -> Int32? {
        (try? String(contentsOfFile: bed.dir + "/controller/mosquitto.pid", encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    @Test("a broker that dies is restarted on the same port; agents come back and reports queued meanwhile arrive")
    func brokerRestarted() async throws {
        try await FleetTestbed.run("broker") { bed in
            try bed.startAgent("gw-1", labels: "role=gateway", capacity: "cpu=1,memory=512Mi")
            try await bed.waitForDevices(online: 1)
            try await bed.apply(try String(contentsOfFile: FleetEndToEndTests.manifest, encoding: .utf8))
            #expect(await Harness.eventually { (try? await bed.running("sensor-reader").count) == 1 })
            let replica = try #require(try await bed.running("sensor-reader").first)
            #expect(await Harness.eventually(.seconds(10)) {
                let device = try? await bed.api.get("/v1/devices/gw-1")
                return ((device?["record"] as? [String: Any])?["usage"] as? [String: Any])?["memoryTotalBytes"] as? Int ?? 0 > 0
            }, "beats carry real usage")

            let broker = try #require(Self.brokerPID(bed))
            kill(broker, SIGKILL)
            // While the broker is down the replica dies; the agent restarts it and queues the reports.
            try await Task.sleep(for: .milliseconds(100))
            kill(replica.pid, SIGKILL)
            #expect(await Harness.eventually { Self.brokerPID(bed).map { $0 != broker && Harness.isAlive($0) } == true })
            #expect(await Harness.eventually(.seconds(30)) {
                guard let r = try? await bed.replicas("sensor-reader").first else { return false }
                return r["phase"] as? String == "running" && (r["restarts"] as? Int ?? 0) >= 1 && r["pid"] as? Int != Int(replica.pid)
            })
            #expect(((try await bed.api.get("/v1/status"))["brokerConnected"] as? Bool) == true)
            let events = String(decoding: try await bed.api.request("GET", "/v1/events?subject=sensor-reader").2, as: UTF8.self)
            #expect(events.contains("exit code 137"), "the exit during the outage was reported")
        }
    }
}
