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
              replicas: 4
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

    @Test("a new revision goes live canary, site a, then the rest, at most one replica down at a time; a crashing one stops in the canary and rolls back by itself")
    func waves() async throws {
        // Devices must not flap under a loaded machine: an offline one is (rightly) not waited for.
        try await FleetTestbed.run("rollout", unreachableAfter: 15, Self.body)
    }

    static func body(_ bed: FleetTestbed) async throws {
        for (i, site) in ["a", "b", "a", "b"].enumerated() {
            try bed.startAgent("gw-\(i + 1)", labels: "site=\(site)", capacity: "cpu=1,memory=256Mi")
        }
        try await bed.waitForDevices(online: 4)
        try await bed.apply(manifest("v1"))
        #expect(await Harness.eventually(.seconds(30)) {
            let rows = (try? await bed.replicas("svc")) ?? []
            return rows.count == 4 && rows.allSatisfy { $0["phase"] as? String == "running" && $0["ready"] as? Bool == true }
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
        #expect(order.count == 4 && afterCanary == afterCanary.sorted() && afterCanary.contains("b"), "the canary (one replica), then site a, then site b: \(order) \(sites)")
        let status = try bed.drover(["rollout", "status", "svc"])
        #expect(status.output.contains("revision 1 → 2, succeeded") && status.output.contains("4 on revision 2"), "\(status.output)")

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
            return rows.count == 4 && rows.allSatisfy { $0["revision"] as? Int == 2 && $0["phase"] as? String == "running" }
        })
        let events = try await bed.events().filter { $0.subject == "svc" }.map(\.message).joined(separator: "\n")
        #expect(events.contains("rolling back to 2"), "\(events)")
        let history = try bed.drover(["rollout", "history", "svc"]).output
        #expect(history.contains("rolled back"), "\(history)")
    }
}
