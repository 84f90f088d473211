import Foundation
import Testing

/// The same workload semantics through podman: a container of the image pushed to the
/// controller, its limits, its logs, its adoption after an agent crash, OOMKilled, cleanup.
@Suite("Containers under podman", .serialized)
struct PodmanTests {
    /// The cgroup directory of `pid` in the `controller` hierarchy (cgroup v1).
    static func cgroup(of pid: Int32, _ controller: String) -> String? {
        let lines = ContainerTests.read("/proc/\(pid)/cgroup").split(separator: "\n")
        guard let line = lines.first(where: { $0.split(separator: ":").dropFirst().first?.split(separator: ",").contains(Substring(controller)) == true }) else { return nil }
        return "/sys/fs/cgroup/\(controller)" + (line.split(separator: ":", maxSplits: 2).last.map(String.init) ?? "")
    }

    /// podman's run root for the agent's data dir, as the driver names it.
    static func runRoot(_ base: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in base.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return "/run/drover/podman-" + String(hash, radix: 16)
    }

    static func podman(_ bed: FleetTestbed, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let base = bed.agentDir("gw-1") + "/containers/podman"
        let run = runRoot(base)
        return try Harness.run(
            "/usr/bin/podman", ["--root", base + "/root", "--runroot", run + "/run", "--tmpdir", run + "/tmp", "--cgroup-manager", "cgroupfs", "--events-backend", "none"] + arguments,
            environment: ["CONTAINERS_CONF": base + "/containers.conf"])
    }

    @Test("a podman container runs with its limits and logs, is adopted after kill -9 of the agent, is reported OOMKilled, and leaves nothing when removed")
    func podmanWorkload() async throws {
        var base = ""
        try await ContainerTests.withContainers("podman") { bed, parent in
            base = bed.agentDir("gw-1") + "/containers/podman"
            try await Self.body(bed, parent)
        }
        // podman keeps its storage mounted and its run root on /run: both go with the test.
        _ = try? Harness.run("/usr/bin/umount", [base + "/root/overlay"])
        try? FileManager.default.removeItem(atPath: Self.runRoot(base))
    }

    static func body(_ bed: FleetTestbed, _ parent: String) async throws {
        try await bed.apply(ContainerTests.manifest("ticker", runtime: "podman"))
        let up = await Harness.eventually(.seconds(60)) { (try? await bed.running("ticker").count) == 1 }
        let seen = (try? await bed.replicas("ticker")) ?? []
        #expect(up, "\(seen)")
        let pid = try #require(try await bed.running("ticker").first?.pid)
        let status = ContainerTests.read("/proc/\(pid)/status")
        #expect(status.contains("\nNSpid:\t\(pid)\t1"), "pid 1 in its own namespace")
        let memory = try #require(cgroup(of: pid, "memory"))
        #expect(memory.hasPrefix("/sys/fs/cgroup/memory\(parent)/"), "\(memory)")
        #expect(ContainerTests.read(memory + "/memory.limit_in_bytes") == "\(64 << 20)")
        #expect(cgroup(of: pid, "cpu").map { ContainerTests.read($0 + "/cpu.cfs_quota_us") } == "25000")

        try await Task.sleep(for: .seconds(1))
        let logs = try bed.drover(["logs", "ticker", "--tail", "2"])
        #expect(logs.status == 0 && logs.output.split(separator: "\n").allSatisfy { $0.hasPrefix("tick ") }, "\(logs.output)")

        await bed.agents["gw-1"]?.stop(signal: SIGKILL)
        try bed.startAgent("gw-1", labels: "role=gateway", capacity: "cpu=2,memory=1Gi", extra: ["--cgroup-parent", parent, "--stop-grace", "1"])
        try await Task.sleep(for: .seconds(3))
        #expect(try await bed.running("ticker").map(\.pid) == [pid], "adopted, not restarted")

        // A surge: the new revision runs as `drover1-ticker-0` beside the old one, which then stops.
        try await bed.apply(ContainerTests.surging(ContainerTests.manifest("ticker", runtime: "podman") + "  env: {REVISION: \"2\"}"))
        let surged = await Harness.eventually(.seconds(60)) {
            guard let now = try? await bed.running("ticker"), now.count == 1, let new = now.first?.pid else { return false }
            return new != pid && !Harness.isAlive(pid)
        }
        let names = try podman(bed, ["ps", "--format", "{{.Names}}"]).output
        #expect(surged && names.contains("drover1-ticker-0") && !names.contains("drover-ticker-0"), "\(names)")

        try await bed.apply(ContainerTests.manifest("hog", command: "exec tail /dev/zero", memory: "32Mi", restart: "never", runtime: "podman"))
        let killed = await Harness.eventually(.seconds(60)) {
            guard let r = try? await bed.replicas("hog").first else { return false }
            return r["phase"] as? String == "exited" && r["exitCode"] as? Int == 137 && (r["message"] as? String)?.contains("OOMKilled") == true
        }
        let hog = (try? await bed.replicas("hog")) ?? []
        #expect(killed, "\(hog)")

        for name in ["ticker", "hog"] { #expect(try bed.drover(["delete", "workload", name]).status == 0) }
        let gone = await Harness.eventually(.seconds(30)) {
            !Harness.isAlive(pid) && !FileManager.default.fileExists(atPath: memory) && ((try? podman(bed, ["ps", "--all", "--quiet"]))?.output.isEmpty ?? false)
        }
        let left = try podman(bed, ["ps", "--all"]).output
        #expect(gone, "left: \(left)")
    }
}
