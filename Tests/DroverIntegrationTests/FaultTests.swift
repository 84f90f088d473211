import Foundation
import Testing

/// What a real fleet goes through: power cuts, crashes and restarts of every process, and the
/// controller's own absence. Real controllers, brokers, agents and replica processes.
@Suite("Faults", .serialized)
struct FaultTests {
    static func manifest(_ name: String, replicas: Int = 1, tolerate: String? = nil) -> String {
        """
        apiVersion: drover/v1
        kind: Workload
        metadata: {name: \(name)}
        spec:
          replicas: \(replicas)
          resources: {cpu: 10m, memory: 1Mi}
        \(tolerate.map { "  connectivity: {tolerateOffline: \($0)}" } ?? "")
          command: ["/bin/sh", "-c", "exec sleep 1000"]
        """
    }

    static func pids(_ bed: FleetTestbed, _ workloads: [String]) async throws -> Set<Int32> {
        var all = Set<Int32>()
        for w in workloads { all.formUnion(try await bed.running(w).map(\.pid)) }
        return all
    }

    @Test("a reboot: agent and replicas killed, the agent started with no broker runs them again; the controller then shows the new pids")
    func reboot() async throws {
        try await FleetTestbed.run("reboot") { bed in
            try bed.startAgent("gw-1", labels: "role=gateway", capacity: "cpu=2,memory=1Gi", extra: ["--stop-grace", "1"])
            try await bed.waitForDevices(online: 1)
            var spec = Self.manifest("steady")
            try await bed.apply(spec)
            spec = Self.manifest("second")
            try await bed.apply(spec)
            #expect(await Harness.eventually { (try? await Self.pids(bed, ["steady", "second"]).count) == 2 })
            let before = try await Self.pids(bed, ["steady", "second"])

            // The power goes: everything on the device dies at once.
            await bed.agents["gw-1"]?.stop(signal: SIGKILL)
            Harness.killProcesses(under: bed.agentDir("gw-1"))
            #expect(await Harness.eventually(.seconds(5)) { before.allSatisfy { !Harness.isAlive($0) } })
            // And the controller with its broker is away when the device comes back.
            await bed.stopController()

            try bed.startAgent("gw-1", labels: "role=gateway", capacity: "cpu=2,memory=1Gi", extra: ["--stop-grace", "1"])
            let restarted = await Harness.eventually(.seconds(15)) {
                Harness.processes(under: bed.agentDir("gw-1")).filter(Harness.isAlive).count == 2
            }
            #expect(restarted, "agent log:\n\(bed.agents["gw-1"]?.log ?? "")")
            let now = Set(Harness.processes(under: bed.agentDir("gw-1")).filter(Harness.isAlive))
            #expect(now.isDisjoint(with: before))
            #expect(bed.agents["gw-1"]?.log.contains("replica was not running after the agent started") == true)

            try await bed.startController()
            let reported = await Harness.eventually(.seconds(20)) { (try? await Self.pids(bed, ["steady", "second"])) == now }
            let seen = (try? await Self.pids(bed, ["steady", "second"])) ?? []
            #expect(reported, "controller sees \(seen), processes \(now)")
        }
    }

    @Test("kill -9 of the agent alone: the same replicas are adopted, zero restarts")
    func agentCrashAdopts() async throws {
        try await FleetTestbed.run("adopt9") { bed in
            let before = try await bed.steadyOnGW1().map(\.pid)
            await bed.agents["gw-1"]?.stop(signal: SIGKILL)
            try bed.startAgent("gw-1", labels: "role=gateway", capacity: "cpu=2,memory=1Gi")
            try await Task.sleep(for: .seconds(3))
            #expect(try await bed.running("steady").map(\.pid) == before)
            #expect(try await bed.replicas("steady").first?["restarts"] as? Int == 0)
            #expect(bed.agents["gw-1"]?.log.contains("adopted running replica") == true)
            #expect(bed.agents["gw-1"]?.log.contains("started replica") == false)
        }
    }

    @Test("the controller stopped for longer than tolerateOffline: no replica moves or restarts, no device recorded unreachable")
    func controllerAbsence() async throws {
        try await FleetTestbed.run("absence") { bed in
            for id in ["gw-1", "gw-2"] { try bed.startAgent(id, labels: "role=gateway", capacity: "cpu=2,memory=1Gi") }
            try await bed.waitForDevices(online: 2)
            try await bed.apply(Self.manifest("tolerant", replicas: 2, tolerate: "2s"))
            #expect(await Harness.eventually { (try? await bed.running("tolerant").count) == 2 })
            let before = try await bed.running("tolerant").map { "\($0.id)@\($0.device):\($0.pid)" }.sorted()
            let eventsBefore = try await bed.events().count

            await bed.stopController()
            try await Task.sleep(for: .seconds(7))  // > tolerateOffline + unreachableAfter
            try await bed.startController()
            try await Task.sleep(for: .seconds(6))  // 3 × unreachableAfter

            let after = try await bed.running("tolerant").map { "\($0.id)@\($0.device):\($0.pid)" }.sorted()
            #expect(after == before)
            #expect(try await bed.replicas("tolerant").allSatisfy { $0["restarts"] as? Int == 0 })
            let since = try await bed.events().dropFirst(eventsBefore)
            let bad = since.filter { ["DeviceUnreachable", "ReplicaPlaced", "ReplicaStopped", "ReplicaRestarting"].contains($0.kind) }
            #expect(bad.isEmpty, "events after the restart: \(since.map { "\($0.kind) \($0.message)" })")
        }
    }

    @Test("kill -9 of the controller: its broker goes with it; started again, exactly one broker runs and the fleet converges")
    func controllerCrash() async throws {
        try await FleetTestbed.run("ctlcrash") { bed in
            let before = try await bed.steadyOnGW1().map(\.pid)
            #expect(bed.managedBrokers().count == 1)

            await bed.killController()
            #expect(await Harness.eventually(.seconds(5)) { bed.managedBrokers().isEmpty }, "the managed broker outlived its controller")
            try await bed.startController()
            try await Task.sleep(for: .seconds(1))
            #expect(bed.managedBrokers().count == 1)
            #expect(await Harness.eventually { (try? await bed.running("steady").map(\.pid)) == before })
            #expect(bed.controller?.log.contains("Address already in use") == false)
        }
    }

    @Test("kill -9 of the controller in the middle of applies: each apply is all there or not at all, and what is there runs")
    func crashDuringApply() async throws {
        try await FleetTestbed.run("applycrash") { bed in
            for id in ["gw-1", "gw-2", "gw-3"] { try bed.startAgent(id, labels: "role=gateway", capacity: "cpu=2,memory=1Gi") }
            try await bed.waitForDevices(online: 3)
            for (round, delay) in [0, 5, 20, 60].enumerated() {
                let name = "burst-\(round)"
                let api = bed.api
                let apply = Task { _ = try? await api.request("POST", "/v1/workloads", body: Self.manifest(name, replicas: 3)) }
                try await Task.sleep(for: .milliseconds(delay))
                await bed.killController()
                await apply.value
                try await bed.startController()
                let (code, view, _) = try await bed.api.request("GET", "/v1/workloads/\(name)")
                if code == 404 { continue }
                #expect(code == 200)
                #expect(view["desiredReplicas"] as? Int == 3, "\(name): a half-applied workload: \(view)")
                let converged = await Harness.eventually(.seconds(20)) {
                    guard let running = try? await bed.running(name), running.count == 3 else { return false }
                    return running.allSatisfy { Harness.isAlive($0.pid) }
                }
                let rows = String(describing: (try? await bed.replicas(name)) ?? [])
                #expect(converged, "\(name): \(rows)")
            }
            #expect(bed.managedBrokers().count == 1)
        }
    }

    @Test("kill -9 of the controller during a burst of reports: started again, every replica's phase converges on the truth")
    func crashDuringReports() async throws {
        try await FleetTestbed.run("reportcrash") { bed in
            for id in ["gw-1", "gw-2", "gw-3"] { try bed.startAgent(id, labels: "role=gateway", capacity: "cpu=2,memory=1Gi") }
            try await bed.waitForDevices(online: 3)
            // Each replica runs a moment and exits 0 for good: a burst of pending, running,
            // exited reports from every device, with a truth that then holds still.
            try await bed.apply("""
                apiVersion: drover/v1
                kind: Workload
                metadata: {name: burst}
                spec:
                  replicas: 3
                  restartPolicy: never
                  resources: {cpu: 10m, memory: 1Mi}
                  command: ["/bin/sh", "-c", "sleep 0.3"]
                """)
            try await Task.sleep(for: .milliseconds(150))
            await bed.killController()
            try await Task.sleep(for: .seconds(1))
            try await bed.startController()
            let converged = await Harness.eventually(.seconds(20)) {
                guard let rows = try? await bed.replicas("burst"), rows.count == 3 else { return false }
                return rows.allSatisfy { $0["phase"] as? String == "exited" && $0["exitCode"] as? Int == 0 }
            }
            let rows = String(describing: (try? await bed.replicas("burst")) ?? [])
            #expect(converged, "controller: \(rows)")
            #expect(bed.managedBrokers().count == 1)
        }
    }

    @Test("an agent.db that cannot be read stops the agent with one clear error and a non-zero exit")
    func corruptAgentStore() async throws {
        let dir = try Harness.temporaryDirectory("corrupt")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data(repeating: 0x41, count: 16384).write(to: URL(fileURLWithPath: dir + "/agent.db"))
        let port = try Harness.freePort()
        let (status, output) = try Harness.run(
            Harness.binary("drover-agent"), ["--id", "gw-1", "--broker", "mqtt://127.0.0.1:\(port)", "--data-dir", dir])
        #expect(status != 0)
        #expect(output.contains("agent.db"), "output: \(output)")
        #expect(output.contains("move it aside"))
    }

    /// Starts a controller on `dir` that is expected to stop by itself within `timeout`, and
    /// whether it did; it is killed if it did not.
    static func controllerThatExits(dir: String, listen port: Int, within timeout: Duration) async throws -> (TestProcess, exited: Bool) {
        let controller = try TestProcess(
            Harness.binary("drover-controller"), ["--data-dir", dir + "/controller", "--listen", "127.0.0.1:\(port)"], log: dir + "/controller.log")
        let exited = await Harness.eventually(timeout) { !controller.isRunning }
        if !exited { await controller.stop(signal: SIGKILL) }
        return (controller, exited)
    }

    @Test("a managed broker that cannot start stops the controller with its error and a non-zero exit")
    func brokerCannotStart() async throws {
        let dir = try Harness.temporaryDirectory("nobroker")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Something else holds the broker's port.
        let (holder, port) = try Harness.holdPort()
        defer { close(holder) }
        try FileManager.default.createDirectory(atPath: dir + "/controller", withIntermediateDirectories: true)
        try "\(port)\n".write(toFile: dir + "/controller/broker.port", atomically: true, encoding: .utf8)
        let (controller, exited) = try await Self.controllerThatExits(dir: dir, listen: try Harness.freePort(), within: .seconds(40))
        #expect(exited, "the controller ran on without its broker")
        #expect(controller.log.contains("mosquitto exited 5 times"), "log:\n\(controller.log)")
        #expect(controller.exitCode.map { $0 != 0 } == true)
    }

    @Test("an API address that is taken stops the controller with its error and a non-zero exit, and its broker with it")
    func apiCannotListen() async throws {
        let dir = try Harness.temporaryDirectory("noapi")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (holder, port) = try Harness.holdPort()
        defer { close(holder) }
        let (controller, exited) = try await Self.controllerThatExits(dir: dir, listen: port, within: .seconds(20))
        #expect(exited, "the controller ran on without its API")
        #expect(controller.exitCode.map { $0 != 0 } == true)
        #expect(controller.log.lowercased().contains("address already in use"), "log:\n\(controller.log)")
        let config = dir + "/controller/mosquitto.conf"
        let brokers = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { pid_t($0) }.filter { pid in
            Harness.isAlive(pid) && ((try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8))?.split(separator: "\0").contains { $0 == config } ?? false)
        }
        #expect(brokers.isEmpty, "the managed broker outlived its controller")
        for pid in brokers { kill(pid, SIGKILL) }
    }
}
