import Foundation
import Testing

/// Rollouts over real agents: waves in order under maxUnavailable with a bake; a revision
/// that crashes stopped in its canary and rolled back by itself.
@Suite("Rollouts", .serialized)
struct RolloutTests {
    static func manifest(_ version: String, crash: Bool = false) -> String {
        let script = crash ? "echo \(version); exit 3" : "touch ready; echo \(version); exec sleep 1000"
        return """
            apiVersion: drover/v1
            kind: Workload
            metadata: {name: svc}
            spec:
              replicas: 5
              restartPolicy: always
              resources: {cpu: 10m, memory: 1Mi}
              command: ["/bin/sh", "-c", \(String(reflecting: script))]
              readinessProbe: {exec: {command: [test, -f, ready]}, periodSeconds: 1}
              rollout:
                waves: [{count: 1}, {selector: {matchLabels: {site: a}}}, {percent: 100}]
                maxUnavailable: 1
                bakeTime: 2s
                progressDeadline: 20s
            """
    }

    @Test("over five agents, a new revision goes live canary, site a, then the rest, at most one replica down at a time; a crashing one stops in the canary and rolls back by itself")
    func waves() async throws {
        // Devices must not flap under a loaded machine: an offline one is (rightly) not waited for.
        try await FleetTestbed.run("rollout", unreachableAfter: 15, Self.body)
    }

    static func body(_ bed: FleetTestbed) async throws {
        for (i, site) in ["a", "b", "a", "b", "b"].enumerated() {
            try bed.startAgent("gw-\(i + 1)", labels: "site=\(site)", capacity: "cpu=1,memory=256Mi")
        }
        try await bed.waitForDevices(online: 5)
        try await bed.apply(manifest("v1"))
        #expect(await Harness.eventually(.seconds(30)) {
            let rows = (try? await bed.replicas("svc")) ?? []
            return rows.count == 5 && rows.allSatisfy { $0["phase"] as? String == "running" && $0["ready"] as? Bool == true }
        })

        // Revision 2: watched until it is done.
        try await bed.apply(manifest("v2"))
        var mostDown = 0
        var phase = ""
        for _ in 0..<300 {
            let rows = (try? await bed.replicas("svc")) ?? []
            mostDown = max(mostDown, rows.filter { !($0["phase"] as? String == "running" && $0["ready"] as? Bool == true) }.count)
            phase = (try? await bed.api.get("/v1/workloads/svc/rollout"))?["state"].flatMap { ($0 as? [String: Any])?["phase"] as? String } ?? ""
            if phase == "succeeded" { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(phase == "succeeded")
        #expect(mostDown <= 1, "maxUnavailable 1, seen \(mostDown) down at once")
        // The order the controller told them in (watching the API samples it too coarsely on a busy machine).
        let view = try await bed.api.get("/v1/workloads/svc/rollout")
        let order = (view["state"] as? [String: Any])?["order"] as? [String] ?? []
        let rows = try await bed.replicas("svc")
        let siteOf = Dictionary(rows.compactMap { r in (r["id"] as? String).map { ($0, ["gw-1": "a", "gw-3": "a"][r["device"] as? String ?? ""] ?? "b") } }, uniquingKeysWith: { a, _ in a })
        let sites = order.map { siteOf[$0] ?? "?" }
        let afterCanary = Array(sites.dropFirst())
        #expect(order.count == 5 && afterCanary == afterCanary.sorted() && afterCanary.contains("b"), "the canary (one replica), then site a, then site b: \(order) \(sites)")
        let status = try bed.drover(["rollout", "status", "svc"])
        #expect(status.output.contains("revision 1 → 2, succeeded") && status.output.contains("5 on revision 2"), "\(status.output)")

        // Revision 3 crashes: the canary stops it, and revision 2 comes back by itself.
        try await bed.apply(manifest("v3", crash: true))
        var toldThree = Set<String>()
        var rolledBack = false
        for _ in 0..<300 {
            for row in (try? await bed.replicas("svc")) ?? [] where row["revision"] as? Int == 3 { toldThree.insert(row["id"] as? String ?? "") }
            let view = try? await bed.api.get("/v1/workloads/svc/rollout")
            if (view?["state"] as? [String: Any])?["phase"] as? String == "failed", view?["revision"] as? Int == 2 {
                rolledBack = true
                break
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        let after = try bed.drover(["rollout", "status", "svc"]).output
        #expect(rolledBack, "\(after)")
        #expect(toldThree.count <= 1, "only the canary ever ran revision 3: \(toldThree)")
        #expect(await Harness.eventually(.seconds(30)) {
            let rows = (try? await bed.replicas("svc")) ?? []
            return rows.count == 5 && rows.allSatisfy { $0["revision"] as? Int == 2 && $0["phase"] as? String == "running" }
        })
        let events = try await bed.events().filter { $0.subject == "svc" }.map(\.message).joined(separator: "\n")
        #expect(events.contains("rolling back to 2"), "\(events)")
        let history = try bed.drover(["rollout", "history", "svc"]).output
        #expect(history.contains("rolled back"), "\(history)")
    }
}

extension RolloutTests {
    static func manifest(_ version: String, bake: String, deadline: String = "20s") -> String {
        manifest(version).replacingOccurrences(of: "bakeTime: 2s", with: "bakeTime: \(bake)")
            .replacingOccurrences(of: "progressDeadline: 20s", with: "progressDeadline: \(deadline)")
            .replacingOccurrences(of: "replicas: 5", with: "replicas: 3")
            .replacingOccurrences(of: "{selector: {matchLabels: {site: a}}}, ", with: "")
    }

    static func rollout(_ bed: FleetTestbed) async -> (phase: String, revision: Int, message: String) {
        let view = (try? await bed.api.get("/v1/workloads/svc/rollout")) ?? [:]
        let state = view["state"] as? [String: Any] ?? [:]
        return (state["phase"] as? String ?? "", view["revision"] as? Int ?? 0, state["message"] as? String ?? "")
    }

    static func allRun(_ bed: FleetTestbed, _ revision: Int) async -> Bool {
        let rows = (try? await bed.replicas("svc")) ?? []
        return rows.count == 3 && rows.allSatisfy { $0["revision"] as? Int == revision && $0["phase"] as? String == "running" }
    }

    @Test("a controller restarted mid-bake resumes the rollout; pause, resume and abort through the CLI; a device offline during its wave does not block, and runs the final revision once back")
    func resilience() async throws {
        try await FleetTestbed.run("rollout-faults", unreachableAfter: 3, Self.resilienceBody)
    }

    static func resilienceBody(_ bed: FleetTestbed) async throws {
        for i in 1...3 { try bed.startAgent("gw-\(i)", labels: "site=a", capacity: "cpu=1,memory=256Mi") }
        try await bed.waitForDevices(online: 3)
        try await bed.apply(manifest("v1", bake: "6s"))
        #expect(await Harness.eventually(.seconds(30)) { await allRun(bed, 1) })

        // The controller goes down while the canary bakes, and comes back: the rollout goes on.
        try await bed.apply(manifest("v2", bake: "6s"))
        #expect(await Harness.eventually(.seconds(30)) { await rollout(bed).phase == "baking" })
        await bed.stopController()
        try await bed.startController()
        let finished = await Harness.eventually(.seconds(60)) { await rollout(bed).phase == "succeeded" }
        let afterRestart = await rollout(bed)
        #expect(finished, "\(afterRestart)")
        #expect(await Harness.eventually(.seconds(20)) { await allRun(bed, 2) })

        // Paused in its first wave, it waits; resumed, it finishes.
        try await bed.apply(manifest("v3", bake: "1s"))
        let paused = try bed.drover(["rollout", "pause", "svc"])
        #expect(paused.status == 0 && paused.output.contains("paused"), "\(paused.output)")
        try await Task.sleep(for: .seconds(4))
        let waiting = await rollout(bed)
        #expect(waiting.phase == "paused", "\(waiting)")
        let resumed = try bed.drover(["rollout", "resume", "svc"])
        #expect(resumed.status == 0, "\(resumed.output)")
        #expect(await Harness.eventually(.seconds(60)) { await rollout(bed).phase == "succeeded" })

        // Aborted: revision 3 comes back everywhere.
        try await bed.apply(manifest("v4", bake: "30s"))
        #expect(await Harness.eventually(.seconds(30)) { await rollout(bed).phase == "baking" })
        let aborted = try bed.drover(["rollout", "abort", "svc"])
        #expect(aborted.status == 0 && aborted.output.contains("rolling back"), "\(aborted.output)")
        #expect(await Harness.eventually(.seconds(30)) { await allRun(bed, 3) })
        #expect(await rollout(bed).revision == 3)

        // A device goes away; the rollout does not wait for it, and it catches up when back.
        await bed.agents["gw-3"]?.stop(signal: SIGKILL)
        #expect(await Harness.eventually(.seconds(20)) {
            ((try? await bed.api.get("/v1/devices/gw-3"))?["record"] as? [String: Any])?["presence"] as? String == "unreachable"
        })
        try await bed.apply(manifest("v5", bake: "1s", deadline: "10s"))
        let done = await Harness.eventually(.seconds(60)) { await rollout(bed).phase == "succeeded" }
        let state = await rollout(bed)
        #expect(done, "\(state)")
        try bed.startAgent("gw-3", labels: "site=a", capacity: "cpu=1,memory=256Mi")
        let caughtUp = await Harness.eventually(.seconds(30)) { await allRun(bed, 5) }
        let rows = (try? await bed.replicas("svc")) ?? []
        #expect(caughtUp, "\(rows)")
    }
}
