import Foundation
import Synchronization
import Testing

/// The agent's supervision of real processes, through a real controller.
@Suite("Agent supervision", .serialized)
struct AgentTests {
    static func manifest(_ name: String, command: String, restart: String = "always", replicas: Int = 1) -> String {
        """
        apiVersion: drover/v1
        kind: Workload
        metadata: {name: \(name)}
        spec:
          replicas: \(replicas)
          restartPolicy: \(restart)
          resources: {cpu: 10m, memory: 1Mi}
          command: ["/bin/sh", "-c", \(String(reflecting: command))]
        """
    }

    static func withFleet(_ label: String, agentFlags: [String] = [], _ body: (FleetTestbed) async throws -> Void) async throws {
        try await FleetTestbed.run(label) { bed in
            try bed.startAgent("gw-1", labels: "role=gateway", capacity: "cpu=2,memory=1Gi", extra: agentFlags)
            try await bed.waitForDevices(online: 1)
            try await body(bed)
        }
    }

    @Test("a failing replica is restarted by its policy and its exit code is reported")
    func restartOnFailure() async throws {
        try await Self.withFleet("restart") { bed in
            try await bed.apply(Self.manifest("flaky", command: "sleep 0.2; exit 3", restart: "on-failure"))
            let restarted = await Harness.eventually(.seconds(20)) {
                guard let r = try? await bed.replicas("flaky").first else { return false }
                return (r["restarts"] as? Int ?? 0) >= 2 && r["exitCode"] as? Int == 3
            }
            let seen = (try? await bed.replicas("flaky")) ?? []
            #expect(restarted, "replica: \(seen)")
            let events = String(decoding: try await bed.api.request("GET", "/v1/events?subject=flaky").2, as: UTF8.self)
            #expect(events.contains("exit code 3"))
        }
    }

    @Test("a replica that exits 0 under on-failure is left exited")
    func exitedCleanly() async throws {
        try await Self.withFleet("clean") { bed in
            try await bed.apply(Self.manifest("oneshot", command: "echo done", restart: "on-failure"))
            #expect(await Harness.eventually {
                let r = try? await bed.replicas("oneshot").first
                return r?["phase"] as? String == "exited" && r?["exitCode"] as? Int == 0
            })
            try await Task.sleep(for: .seconds(1.5))
            #expect(try await bed.replicas("oneshot").first?["restarts"] as? Int == 0)
        }
    }

    @Test("stopping a replica stops its whole process group")
    func processGroup() async throws {
        try await Self.withFleet("group") { bed in
            try await bed.apply(Self.manifest("forker", command: "sleep 1000 & sleep 1000 & wait"))
            #expect(await Harness.eventually { Harness.processes(under: bed.agentDir("gw-1")).count >= 3 })
            #expect(try await bed.api.request("DELETE", "/v1/workloads/forker").0 == 204)
            #expect(await Harness.eventually { Harness.processes(under: bed.agentDir("gw-1")).allSatisfy { !Harness.isAlive($0) } })
        }
    }

    @Test("two replicas removed in one generation, one ignoring SIGTERM: both stop, nothing restarts, no process is left")
    func removeTwoOneStubborn() async throws {
        // In a function of its own: swiftc 6.3.1 crashes (SendNonSendable) on this body as a closure.
        try await Self.withFleet("remove2", agentFlags: ["--stop-grace", "1"], Self.removeTwo)
    }

    static func removeTwo(_ bed: FleetTestbed) async throws {
        try await bed.apply("""
            apiVersion: drover/v1
            kind: Workload
            metadata: {name: mixed}
            spec:
              replicas: 2
              maxPerDevice: 2
              resources: {cpu: 10m, memory: 1Mi}
              command: ["/bin/sh", "-c", "if [ \\"$DROVER_REPLICA\\" = mixed-0 ]; then trap '' TERM; fi; while :; do sleep 0.1; done"]
            """)
        #expect(await Harness.eventually { (try? await bed.running("mixed").count) == 2 })
        let startsBefore = (bed.agents["gw-1"]?.log.components(separatedBy: "started replica").count ?? 0) - 1
        #expect(startsBefore == 2)
        let (code, _, _) = try await bed.api.request("POST", "/v1/workloads/mixed/scale", body: #"{"replicas": 0}"#)
        #expect(code == 200)
        let seen = Mutex<[String]>([])
        let gone = await Harness.eventually(.seconds(10)) {
            let left = Harness.processes(under: bed.agentDir("gw-1")).filter(Harness.isAlive)
            seen.withLock { $0.append("n=\(left.count) " + left.map { (try? String(contentsOfFile: "/proc/\($0)/stat", encoding: .utf8)) ?? "" }.joined(separator: " | ")) }
            return left.isEmpty
        }
        #expect(gone, "seen: \(seen.withLock { $0.suffix(3) })")
        try await Task.sleep(for: .seconds(1.5))
        #expect(Harness.processes(under: bed.agentDir("gw-1")).filter(Harness.isAlive).isEmpty)
        let startsAfter = (bed.agents["gw-1"]?.log.components(separatedBy: "started replica").count ?? 0) - 1
        #expect(startsAfter == 2, "a replica being removed was started again")
        #expect(FileManager.default.fileExists(atPath: bed.agentDir("gw-1") + "/replicas/mixed-0") == false, "a removed replica's directory is gone")
    }

    @Test("a restarted agent adopts its running replicas instead of starting them again")
    func adoption() async throws {
        try await Self.withFleet("adopt") { bed in
            try await bed.apply(Self.manifest("steady", command: "exec sleep 1000"))
            #expect(await Harness.eventually { (try? await bed.running("steady").count) == 1 })
            let before = try await bed.running("steady")
            await bed.agents["gw-1"]?.stop()
            #expect(before.allSatisfy { Harness.isAlive($0.pid) }, "replicas must outlive the agent")
            try bed.startAgent("gw-1", labels: "role=gateway", capacity: "cpu=2,memory=1Gi")
            try await bed.waitForDevices(online: 1)
            try await Task.sleep(for: .seconds(1.5))
            #expect(try await bed.running("steady").map(\.pid) == before.map(\.pid))
            let log = bed.agents["gw-1"]?.log ?? ""
            #expect(log.contains("adopted running replica"))
            #expect(!log.contains("started replica"))
        }
    }

    @Test("a replica's log is rotated at the size limit")
    func logCap() async throws {
        try await Self.withFleet("logs", agentFlags: ["--log-limit", "16Ki"]) { bed in
            try await bed.apply(Self.manifest("chatty", command: "while true; do echo 0123456789012345678901234567890123456789012345678901234567890123456789; sleep 0.005; done"))
            let log = bed.agentDir("gw-1") + "/replicas/chatty-0/output.log"
            #expect(await Harness.eventually { FileManager.default.fileExists(atPath: log + ".1") })
            for _ in 0..<10 {
                let size = (try? FileManager.default.attributesOfItem(atPath: log)[.size] as? Int) ?? 0
                // One supervision pass (0.5 s) of output past the limit at most.
                #expect(size < 16 * 1024 + 64 * 1024, "output.log grew to \(size) bytes")
                try await Task.sleep(for: .milliseconds(300))
            }
        }
    }
}

@Suite("Autoscaling end to end", .serialized)
struct AutoscaleEndToEndTests {
    @Test("a CPU-burning workload scales up to what the fleet can hold, then back down after the window")
    func burnScalesUpAndDown() async throws {
        try await FleetTestbed.run("autoscale") { bed in
            for id in ["gw-1", "gw-2"] { try bed.startAgent(id, labels: "role=gateway", capacity: "cpu=2,memory=1Gi") }
            try await bed.waitForDevices(online: 2)
            // Each replica burns a core for 12 s (long enough on a loaded machine), then idles; a
            // request of 100m makes that ~1000%.
            try await bed.apply("""
                apiVersion: drover/v1
                kind: Workload
                metadata: {name: burner}
                spec:
                  replicas: 1
                  resources: {cpu: 100m, memory: 8Mi}
                  autoscale: {minReplicas: 1, maxReplicas: 3, targetCPUPercent: 50, stabilizationWindow: 3s}
                  command: ["/bin/sh", "-c", "timeout --foreground 12 sh -c 'while :; do :; done'; exec sleep 1000"]
                """)
            let up = await Harness.eventually(.seconds(30)) {
                (try? await bed.api.get("/v1/workloads/burner"))?["desiredReplicas"] as? Int == 2
            }
            #expect(up, "two devices hold at most two replicas: the fleet bounds maxReplicas 3")
            let down = await Harness.eventually(.seconds(40)) {
                (try? await bed.api.get("/v1/workloads/burner"))?["desiredReplicas"] as? Int == 1
            }
            #expect(down)
            let events = String(decoding: try await bed.api.request("GET", "/v1/events?subject=burner").2, as: UTF8.self)
            #expect(events.contains("WorkloadAutoscaled"))
            #expect(events.contains("scaled from 1 to 2"))
            #expect(events.contains("scaled from 2 to 1"))
        }
    }
}
