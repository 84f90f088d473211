import Foundation
import Testing

/// Health probes, run by real agents on real processes: exec, http and tcp, passing and
/// failing; liveness restarts; readiness shown and reported; probes go on with the broker down.
@Suite("Health probes", .serialized)
struct ProbeTests {
    static func manifest(_ name: String, _ script: String, probes: String) -> String {
        """
        apiVersion: drover/v1
        kind: Workload
        metadata: {name: \(name)}
        spec:
          resources: {cpu: 10m, memory: 1Mi}
          command: ["/bin/sh", "-c", \(String(reflecting: script))]
        \(probes)
        """
    }

    static func replica(_ bed: FleetTestbed, _ name: String) async -> [String: Any] {
        ((try? await bed.replicas(name)) ?? []).first ?? [:]
    }

    @Test("http, tcp and exec probes pass and fail; readiness is shown and reported; liveness restarts; all of it with the broker down too")
    func probes() async throws {
        try await AgentTests.withFleet("probes", Self.body)
    }

    static func body(_ bed: FleetTestbed) async throws {
        let port = try Harness.freePort()
        // An HTTP server whose page can be taken away; ready by http, alive by tcp.
        try await bed.apply(manifest("web", "mkdir -p www; echo ok > www/index.html; exec /bin/busybox httpd -f -p 127.0.0.1:\(port) -h www", probes: """
              readinessProbe: {http: {path: /index.html, port: \(port)}, periodSeconds: 1, failureThreshold: 2}
              livenessProbe: {tcp: {port: \(port)}, periodSeconds: 1}
            """))
        // Ready once a file exists, by an exec probe in the replica's working directory.
        try await bed.apply(manifest("late", "sleep 2; touch ready; exec sleep 1000", probes: """
              readinessProbe: {exec: {command: [test, -f, ready]}, periodSeconds: 1}
            """))
        // Alive while a file exists; it goes after 2 s: restarted by its liveness probe.
        try await bed.apply(manifest("dies", "touch alive; sleep 2; rm alive; exec sleep 1000", probes: """
              livenessProbe: {exec: {command: [test, -f, alive]}, periodSeconds: 1, failureThreshold: 2}
            """))
        // Nothing listens: a tcp liveness probe fails, and restarts it.
        let closed = try Harness.freePort()
        try await bed.apply(manifest("deaf", "exec sleep 1000", probes: """
              livenessProbe: {tcp: {port: \(closed)}, initialDelaySeconds: 1, periodSeconds: 1, failureThreshold: 1}
            """))

        let ready = await Harness.eventually(.seconds(20)) {
            let web = await replica(bed, "web")
            let late = await replica(bed, "late")
            return web["ready"] as? Bool == true && late["ready"] as? Bool == true
        }
        let web = await replica(bed, "web")
        let late = await replica(bed, "late")
        #expect(ready, "\(web) \(late)")
        let describe = try bed.drover(["describe", "workload", "web"])
        #expect(describe.output.contains("web-0 on gw-1: running, ready"), "\(describe.output)")

        let restarted = await Harness.eventually(.seconds(20)) {
            let dies = await replica(bed, "dies")
            let deaf = await replica(bed, "deaf")
            return (dies["restarts"] as? Int ?? 0) >= 1 && (deaf["restarts"] as? Int ?? 0) >= 1
        }
        let dies = await replica(bed, "dies")
        let deaf = await replica(bed, "deaf")
        #expect(restarted, "\(dies) \(deaf)")
        let log = bed.agents["gw-1"]?.log ?? ""
        #expect(log.contains("liveness probe failed 2 times: test exit code 1"), "the exec probe's failure, with its reason: \(log)")
        #expect(log.contains("liveness probe failed 1 times: nothing accepts on port \(closed)"), "\(log)")
        let webNow = await replica(bed, "web")
        #expect(webNow["restarts"] as? Int == 0, "a passing liveness probe restarts nothing")

        // The broker goes (with the controller): the page goes too, and the agent notices alone.
        await bed.stopController()
        let www = bed.agentDir("gw-1") + "/replicas/web-0/work/www/index.html"
        try FileManager.default.removeItem(atPath: www)
        let noticed = await Harness.eventually(.seconds(15)) { bed.agents["gw-1"]?.log.contains("replica not ready") == true }
        #expect(noticed, "\(bed.agents["gw-1"]?.log ?? "")")
        try await bed.startController()
        let reported = await Harness.eventually(.seconds(20)) { await replica(bed, "web")["ready"] as? Bool == false }
        let after = await replica(bed, "web")
        #expect(reported, "\(after)")
        let notReady = try bed.drover(["describe", "workload", "web"])
        #expect(notReady.output.contains("web-0 on gw-1: running, not ready"), "\(notReady.output)")
    }
}
