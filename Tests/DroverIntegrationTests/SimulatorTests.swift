import Foundation
import Testing

/// drover-sim against a real broker and controller: its devices join, run what they are
/// given, come and go under churn, and say goodbye when it stops.
@Suite("Fleet simulator", .serialized)
struct SimulatorTests {
    @Test("300 simulated devices join over real MQTT, run a placed workload, churn without losing it, and leave when stopped")
    func simulatedFleet() async throws {
        try await FleetTestbed.run("sim", externalBroker: true, Self.body)
    }

    static func online(_ bed: FleetTestbed) async -> Int {
        ((try? await bed.api.list("/v1/devices")) ?? []).filter { ($0["record"] as? [String: Any])?["presence"] as? String == "online" }.count
    }

    static func body(_ bed: FleetTestbed) async throws {
        let sim = try TestProcess(
            Harness.binary("drover-sim"),
            ["--broker", bed.brokerURL, "--devices", "300", "--threads", "2", "--start-delay", "100", "--zones", "3", "--links", "wired=2,cellular=1",
             "--keepalive", "5", "--stats-every", "1", "--json"],
            log: bed.dir + "/sim.log")
        bed.agents["sim"] = sim
        #expect(await Harness.eventually(.seconds(30)) { await online(bed) == 300 }, "\(sim.log.suffix(500))")
        let device = try await bed.api.get("/v1/devices/sim-000004")["record"] as? [String: Any]
        let facts = device?["facts"] as? [String: Any]
        #expect((facts?["labels"] as? [String: String])?["zone"] == "z1" && facts?["agentVersion"] as? String == "sim", "\(String(describing: device))")

        try await bed.apply("""
            apiVersion: drover/v1
            kind: Workload
            metadata: {name: simulated}
            spec:
              replicas: 250
              resources: {cpu: 100m, memory: 16Mi}
              selector: {matchLabels: {zone: z1}}
              command: [/bin/sleep, "1000"]
            """)
        let running = await Harness.eventually(.seconds(30)) { (try? await bed.running("simulated").count) == 100 }
        #expect(running, "one replica on each of the 100 devices in zone z1")
        // Its status lines (every second) count the same.
        let counted = await Harness.eventually(.seconds(5)) { sim.log.split(separator: "\n").last?.contains("\"running\":100,") == true }
        #expect(counted, "the simulator counts what the controller sees: \(sim.log.suffix(400))")

        // Stopped, each device says goodbye (`offline`) before it disconnects.
        await sim.stop()
        #expect(sim.exitCode == 0, "\(sim.log.suffix(500))")
        #expect(await Harness.eventually(.seconds(20)) { await online(bed) == 0 })
    }

    @Test("under churn the broker fires each cut device's will, and the device comes back by itself")
    func churn() async throws {
        try await FleetTestbed.run("sim-churn", externalBroker: true, Self.churnBody)
    }

    static func churnBody(_ bed: FleetTestbed) async throws {
        do {
            let sim = try TestProcess(
                Harness.binary("drover-sim"),
                ["--broker", bed.brokerURL, "--devices", "40", "--churn", "120", "--churn-downtime", "1", "--start-delay", "50", "--stats-every", "1"],
                log: bed.dir + "/sim.log")
            bed.agents["sim"] = sim
            #expect(await Harness.eventually(.seconds(30)) { await online(bed) >= 35 })
            try await bed.waitPastGrace()
            try await Task.sleep(for: .seconds(6))
            let events = String(decoding: try await bed.api.request("GET", "/v1/events?limit=1000").2, as: UTF8.self)
            #expect(events.contains("is unreachable (last will"), "churned devices are seen to go")
            #expect(events.contains("is back online") || events.contains("is online"), "and to come back")
            #expect(sim.log.contains("disconnects"), "\(sim.log.suffix(300))")
            let line = sim.log.split(separator: "\n").last.map(String.init) ?? ""
            let disconnects = line.split(separator: " ").drop { $0 != "disconnects" }.dropFirst().first.flatMap { Int($0) } ?? 0
            #expect(disconnects >= 5, "about 2 a second: \(line)")
        }
    }
}
