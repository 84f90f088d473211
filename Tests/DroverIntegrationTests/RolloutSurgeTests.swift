import Foundation
import Synchronization
import Testing

/// `maxSurge` over real agents: each device starts the new revision beside the old one and
/// stops the old one once the new one is ready, so no replica is ever down; a revision that
/// never gets ready leaves the old instances serving, and its rollback stops the new ones.
@Suite("Rollouts with surge", .serialized)
struct RolloutSurgeTests {
    /// Revision `version` (a number): its processes carry `1000<version>` in their command line.
    static func manifest(_ version: Int, readyAfter: String = "1") -> String {
        let script = "sleep \(readyAfter); touch ready; exec sleep 1000\(version)"
        return """
            apiVersion: drover/v1
            kind: Workload
            metadata: {name: svc}
            spec:
              replicas: 3
              maxPerDevice: 1
              restartPolicy: always
              resources: {cpu: 100m, memory: 16Mi}
              command: ["/bin/sh", "-c", \(String(reflecting: script))]
              readinessProbe: {exec: {command: [test, -f, ready]}, periodSeconds: 1}
              rollout:
                maxSurge: 3
                maxUnavailable: 0
                progressDeadline: 10s
            """
    }

    /// How many instances of each revision run on this machine now (a shell before its
    /// `exec`, or the `sleep` after it; never both).
    static func instances() -> [Int: Int] {
        var counts: [Int: Int] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where entry.allSatisfy(\.isNumber) {
            guard let raw = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { continue }
            let line = String(decoding: raw.map { $0 == 0 ? UInt8(ascii: " ") : $0 }, as: UTF8.self)
            for version in 1...3 where line.contains("sleep 1000\(version)") { counts[version, default: 0] += 1 }
        }
        return counts
    }

    /// Counts instances every 20 ms on a thread of its own (not the test's task pool, which
    /// other tests may keep busy for seconds): the fewest and the most seen, of revisions 1
    /// and 2 or of one revision.
    final class Sampler: Sendable {
        final class Seen: Sendable {
            let value = Mutex<(fewest: Int, most: Int, done: Bool)>((Int.max, 0, false))
        }
        let box = Seen()

        init(version: Int? = nil) {
            let box = box
            let thread = Thread {
                while !box.value.withLock({ $0.done }) {
                    let counts = RolloutSurgeTests.instances()
                    let n = version.map { counts[$0, default: 0] } ?? counts[1, default: 0] + counts[2, default: 0]
                    box.value.withLock { $0 = (min($0.fewest, n), max($0.most, n), $0.done) }
                    usleep(20_000)
                }
            }
            thread.start()
        }

        func stop() async -> (fewest: Int, most: Int) {
            let result = box.value.withLock { s -> (Int, Int) in
                s.done = true
                return (s.fewest, s.most)
            }
            return result
        }
    }

    static func rollout(_ bed: FleetTestbed) async -> [String: Any] {
        ((try? await bed.api.get("/v1/workloads/svc/rollout"))?["state"] as? [String: Any]) ?? [:]
    }

    @Test("with maxSurge and maxUnavailable 0 no replica is ever down: the old instance runs until the new one is ready; a revision that never gets ready is rolled back with the old instances serving throughout")
    func surge() async throws {
        try await FleetTestbed.run("rollout-surge", unreachableAfter: 15, Self.body)
    }

    static func body(_ bed: FleetTestbed) async throws {
        for i in 1...3 { try bed.startAgent("gw-\(i)", labels: "site=a", capacity: "cpu=1,memory=256Mi") }
        try await bed.waitForDevices(online: 3)
        try await bed.apply(manifest(1, readyAfter: "0"))
        #expect(await Harness.eventually(.seconds(30)) {
            let rows = (try? await bed.replicas("svc")) ?? []
            return instances()[1] == 3 && rows.count == 3 && rows.allSatisfy { $0["ready"] as? Bool == true }
        })

        // Revision 2 (ready 3 s after it starts): sampled until it is done; at every sample
        // three instances serve.
        let sampler = Sampler()
        try await bed.apply(manifest(2, readyAfter: "3"))
        var phase = ""
        for _ in 0..<600 {
            phase = await rollout(bed)["phase"] as? String ?? ""
            if phase == "succeeded", instances()[1] == nil { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let (fewest, most) = await sampler.stop()
        let surged = (await rollout(bed)["surged"] as? [String] ?? []).sorted()
        #expect(phase == "succeeded")
        #expect(surged == ["svc-0", "svc-1", "svc-2"], "every device had room: \(surged)")
        #expect(fewest >= 3, "a replica was down: \(fewest) instances at one sample")
        let surgeLog = ((try? FileManager.default.contentsOfDirectory(atPath: bed.dir)) ?? []).filter { $0.hasPrefix("agent-") }.flatMap { file in
            ((try? String(contentsOfFile: bed.dir + "/" + file, encoding: .utf8)) ?? "").split(separator: "\n").filter { $0.contains("surge") || $0.contains("stopped replica") }
        }
        #expect(most > 3, "the new instances ran beside the old ones: at most \(most); \(surgeLog.joined(separator: "\n"))")
        #expect(instances() == [2: 3])

        // Revision 3 never gets ready: rolled back at the deadline; revision 2 serves throughout.
        try await bed.apply(manifest(3, readyAfter: "1000"))
        let watcher = Sampler(version: 2)
        var sawThree = false
        for _ in 0..<900 {
            let counts = instances()
            sawThree = sawThree || counts[3] != nil
            let state = await rollout(bed)
            if state["phase"] as? String == "failed", counts[3] == nil { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let (fewestOld, _) = await watcher.stop()
        let state = await rollout(bed)
        #expect(state["phase"] as? String == "failed", "\(state)")
        #expect(sawThree, "revision 3 was started beside revision 2")
        #expect(fewestOld == 3, "revision 2 kept serving on every device: at least \(fewestOld)")
        #expect(instances() == [2: 3])
        let rows = try await bed.replicas("svc")
        #expect(rows.allSatisfy { $0["revision"] as? Int == 2 && $0["phase"] as? String == "running" }, "\(rows)")

        // What it took, as Prometheus sees it.
        let (status, _, body) = try await bed.api.request("GET", "/metrics")
        let text = String(decoding: body, as: UTF8.self)
        func sample(_ series: String) -> Double { text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") } ?? -1 }
        #expect(status == 200)
        #expect(sample(#"drover_devices{presence="online"}"#) == 3 && sample(#"drover_replicas{phase="running"}"#) == 3, "\(text)")
        #expect(sample(#"drover_rollouts{phase="failed"}"#) == 1)
        #expect(sample(#"drover_messages_received_total{channel="report"}"#) > 0 && sample(#"drover_messages_received_total{channel="beat"}"#) > 0)
        #expect(sample(#"drover_publish_duration_seconds_count{outcome="acknowledged"}"#) >= 9, "three revisions, three devices")
    }
}
