import Foundation
import Testing

/// Real containers: images built here, pushed to the controller, pulled by a real agent and
/// run under runc, each watched by its conmon.
@Suite("Containers under runc", .serialized)
struct ContainerTests {
    /// A testbed with one agent whose containers get cgroups under a parent of the test's own;
    /// whatever a failed test leaves there is removed at the end.
    static func withContainers(_ label: String, _ body: (FleetTestbed, String) async throws -> Void) async throws {
        let parent = "/drover-test-\(label)-\(getpid())"
        try await FleetTestbed.run(label) { bed in
            let archive = bed.dir + "/ticker.tar"
            let built = try Harness.run(Harness.repoRoot + "/tools/build-image", [archive, "v1", "/bin/sh", "-c", "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.2; done"])
            guard built.status == 0 else { throw HarnessError("tools/build-image failed: \(built.output)") }
            let pushed = try bed.drover(["image", "push", archive, "ticker:v1"])
            guard pushed.status == 0 else { throw HarnessError("drover image push failed: \(pushed.output)") }
            try bed.startAgent("gw-1", labels: "role=gateway", capacity: "cpu=2,memory=1Gi", extra: ["--cgroup-parent", parent, "--stop-grace", "1"])
            try await bed.waitForDevices(online: 1)
            let runtimes = try await bed.api.get("/v1/devices/gw-1")["record"] as? [String: Any]
            let facts = runtimes?["facts"] as? [String: Any]
            guard let offered = facts?["runtimes"] as? [String], offered.contains("runc"), offered.contains("podman") else {
                throw HarnessError("gw-1 does not offer runc and podman: \(facts ?? [:])")
            }
            try await body(bed, parent)
        }
        killContainers(parent)
        removeCgroups(parent)
    }

    /// Every process in the test's container cgroups, by pid: a container's processes live
    /// in its own mount namespace, where the harness's look at working directories misses them.
    static func killContainers(_ parent: String) {
        let base = "/sys/fs/cgroup/pids\(parent)"
        for child in (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [] where !child.contains(".") {
            for pid in read(base + "/" + child + "/cgroup.procs").split(separator: "\n").compactMap({ pid_t($0) }) { kill(pid, SIGKILL) }
        }
        for _ in 0..<50 {
            let left = ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []).filter { !$0.contains(".") && !read(base + "/" + $0 + "/cgroup.procs").isEmpty }
            if left.isEmpty { return }
            usleep(100_000)
        }
    }

    static func manifest(_ name: String, command: String? = nil, memory: String = "64Mi", restart: String = "always", runtime: String = "runc") -> String {
        """
        apiVersion: drover/v1
        kind: Workload
        metadata: {name: \(name)}
        spec:
          image: ticker:v1
          runtime: \(runtime)
          replicas: 1
          restartPolicy: \(restart)
          resources: {cpu: 250m, memory: \(memory)}
        \(command.map { "  command: [\"/bin/sh\", \"-c\", \(String(reflecting: $0))]" } ?? "")
        """
    }

    static let controllers = ["memory", "cpu", "cpuacct", "pids", "cpuset", "blkio", "devices", "freezer", "systemd", "unified"]

    /// The replica's cgroup directories that exist, in every hierarchy.
    static func cgroups(_ parent: String, _ replica: String) -> [String] {
        controllers.map { "/sys/fs/cgroup/\($0)\(parent)/\(replica)" }.filter { FileManager.default.fileExists(atPath: $0) }
    }

    static func removeCgroups(_ parent: String) {
        for controller in controllers {
            let base = "/sys/fs/cgroup/\(controller)\(parent)"
            for child in (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [] where !child.contains(".") { rmdir(base + "/" + child) }
            rmdir(base)
        }
    }

    static func read(_ path: String) -> String { ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines) }

    @Test("a container runs in its own pid namespace as the workload user with its limits in its cgroup; drover logs shows its output; removing it leaves nothing behind")
    func runsAndCleansUp() async throws {
        try await Self.withContainers("ctr-run", Self.runsAndCleansUpBody)
    }

    static func runsAndCleansUpBody(_ bed: FleetTestbed, _ parent: String) async throws {
        try await bed.apply(manifest("ticker"))
        let up = await Harness.eventually(.seconds(30)) { (try? await bed.running("ticker").count) == 1 }
        let seen = (try? await bed.replicas("ticker")) ?? []
        #expect(up, "\(seen)")
        let pid = try #require(try await bed.running("ticker").first?.pid)
        let status = read("/proc/\(pid)/status")
        let nspid = status.split(separator: "\n").first { $0.hasPrefix("NSpid:") }?.split(whereSeparator: \.isWhitespace).dropFirst().map(String.init)
        #expect(nspid == ["\(pid)", "1"], "the container's first process is pid 1 in a namespace of its own: \(nspid ?? [])")
        let uid = status.split(separator: "\n").first { $0.hasPrefix("Uid:") }?.split(whereSeparator: \.isWhitespace).dropFirst().first.map(String.init)
        #expect(uid == String(getpwnam("drover")?.pointee.pw_uid ?? 0) && uid != "0", "runs as the workload user, uid \(uid ?? "?")")
        #expect(read("/sys/fs/cgroup/memory\(parent)/ticker-0/memory.limit_in_bytes") == "\(64 << 20)")
        #expect(read("/sys/fs/cgroup/cpu\(parent)/ticker-0/cpu.cfs_quota_us") == "25000", "250m of a 100 ms period")
        #expect(read("/sys/fs/cgroup/pids\(parent)/ticker-0/pids.max") == "1024")
        #expect(read("/sys/fs/cgroup/memory\(parent)/ticker-0/cgroup.procs").split(separator: "\n").contains("\(pid)"))

        // The rootfs is read-only; /tmp is the container's own; no new user namespace.
        let write = try Harness.run("/usr/sbin/runc", ["--root", bed.agentDir("gw-1") + "/containers/runc", "exec", "ticker-0", "/bin/sh", "-c", "touch /x 2>&1; touch /tmp/y && echo tmp-ok; unshare -U true 2>/dev/null || echo no-userns"])
        #expect(write.output.contains("Read-only file system") && write.output.contains("tmp-ok"), "\(write.output)")
        #expect(write.output.contains("no-userns"), "seccomp refuses a new user namespace: \(write.output)")

        try await Task.sleep(for: .seconds(1))
        let logs = try bed.drover(["logs", "ticker", "--tail", "3"])
        let lines = logs.output.split(separator: "\n")
        #expect(logs.status == 0 && lines.count == 3 && lines.allSatisfy { $0.hasPrefix("tick ") }, "the text alone, without conmon's prefix: \(logs.output)")

        // --follow: the tail, then each new line once, in order, as the container writes it.
        let follower = try TestProcess(
            Harness.binary("drover"), ["logs", "ticker", "--tail", "1", "--follow"], log: bed.dir + "/follow.log", environment: bed.droverEnvironment)
        try await Task.sleep(for: .seconds(4))
        await follower.stop(signal: SIGKILL)
        let followed = (try? String(contentsOfFile: bed.dir + "/follow.log", encoding: .utf8)) ?? ""
        let ticks = followed.split(separator: "\n").compactMap { $0.hasPrefix("tick ") ? Int($0.dropFirst(5)) : nil }
        #expect(ticks.count >= 8 && ticks == Array((ticks.first ?? 0)..<((ticks.first ?? 0) + ticks.count)), "consecutive, none twice, none missed: \(followed)")

        let agentDir = bed.agentDir("gw-1")
        let (deleted, _) = try bed.drover(["delete", "workload", "ticker"])
        #expect(deleted == 0)
        let gone = await Harness.eventually(.seconds(20)) {
            !Harness.isAlive(pid) && cgroups(parent, "ticker-0").isEmpty && !FileManager.default.fileExists(atPath: agentDir + "/replicas/ticker-0")
                && Harness.processes(under: agentDir).isEmpty
        }
        let listed = try Harness.run("/usr/sbin/runc", ["--root", agentDir + "/containers/runc", "list", "-q"])
        #expect(gone, "left: cgroups \(cgroups(parent, "ticker-0")), processes \(Harness.processes(under: agentDir))")
        #expect(listed.status == 0 && listed.output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "runc still knows: \(listed.output)")
    }

    @Test("a container past its memory limit is killed and reported OOMKilled; a crashing one is restarted by its policy with its exit code")
    func oomAndCrash() async throws {
        try await Self.withContainers("ctr-oom", Self.oomAndCrashBody)
    }

    static func oomAndCrashBody(_ bed: FleetTestbed, _ parent: String) async throws {
        // `tail` keeps the whole of an endless line in memory.
        try await bed.apply(manifest("hog", command: "echo start; exec tail /dev/zero", memory: "32Mi", restart: "never"))
        try await bed.apply(manifest("crash", command: "echo up; sleep 0.3; exit 3", restart: "on-failure"))
        let killed = await Harness.eventually(.seconds(30)) {
            guard let r = try? await bed.replicas("hog").first else { return false }
            return r["phase"] as? String == "exited" && r["exitCode"] as? Int == 137 && (r["message"] as? String)?.contains("OOMKilled") == true
        }
        let hog = (try? await bed.replicas("hog")) ?? []
        #expect(killed, "\(hog)")
        let restarted = await Harness.eventually(.seconds(30)) {
            guard let r = try? await bed.replicas("crash").first else { return false }
            return (r["restarts"] as? Int ?? 0) >= 2 && r["exitCode"] as? Int == 3
        }
        let crashing = (try? await bed.replicas("crash")) ?? []
        #expect(restarted, "\(crashing)")
        let crash = try await bed.replicas("crash").first
        #expect((crash?["message"] as? String)?.contains("OOMKilled") != true, "a plain crash is no OOM: \(crash ?? [:])")
    }

    @Test("kill -9 of the agent: the same containers are adopted, none restarted; after a simulated reboot they start again")
    func adoptionAndReboot() async throws {
        try await Self.withContainers("ctr-adopt", Self.adoptionAndRebootBody)
    }

    static func adoptionAndRebootBody(_ bed: FleetTestbed, _ parent: String) async throws {
        try await bed.apply(manifest("ticker"))
        #expect(await Harness.eventually(.seconds(30)) { (try? await bed.running("ticker").count) == 1 })
        let before = try #require(try await bed.running("ticker").first?.pid)
        let agentFlags = ["--cgroup-parent", parent, "--stop-grace", "1"]

        await bed.agents["gw-1"]?.stop(signal: SIGKILL)
        #expect(Harness.isAlive(before), "the container outlives its agent")
        try bed.startAgent("gw-1", labels: "role=gateway", capacity: "cpu=2,memory=1Gi", extra: agentFlags)
        try await Task.sleep(for: .seconds(3))
        #expect(try await bed.running("ticker").map(\.pid) == [before])
        #expect(try await bed.replicas("ticker").first?["restarts"] as? Int == 0)
        #expect(bed.agents["gw-1"]?.log.contains("adopted running replica") == true)
        #expect(bed.agents["gw-1"]?.log.contains("started replica") == false, "\(bed.agents["gw-1"]?.log ?? "")")

        // The power goes: agent, conmon and container die at once; runc's state and the
        // cgroup stay behind, as they would on a disk after a power cut.
        await bed.agents["gw-1"]?.stop(signal: SIGKILL)
        Harness.killProcesses(under: bed.agentDir("gw-1"))
        kill(before, SIGKILL)
        #expect(await Harness.eventually(.seconds(5)) { !Harness.isAlive(before) })
        try bed.startAgent("gw-1", labels: "role=gateway", capacity: "cpu=2,memory=1Gi", extra: agentFlags)
        let again = await Harness.eventually(.seconds(30)) {
            guard let now = try? await bed.running("ticker").first?.pid else { return false }
            return now != before && Harness.isAlive(now)
        }
        let seen = (try? await bed.replicas("ticker")) ?? []
        #expect(again, "\(seen) agent log:\n\(bed.agents["gw-1"]?.log ?? "")")
        #expect(bed.agents["gw-1"]?.log.contains("replica was not running after the agent started") == true)
    }
}

extension ContainerTests {
    @Test("a new revision's image is pulled before the old container stops: while the pull fails, the old one runs on")
    func replacementPulledFirst() async throws {
        try await Self.withContainers("ctr-next", Self.replacementPulledFirstBody)
    }

    static func replacementPulledFirstBody(_ bed: FleetTestbed, _ parent: String) async throws {
        try await bed.apply(manifest("ticker"))
        #expect(await Harness.eventually(.seconds(30)) { (try? await bed.running("ticker").count) == 1 })
        let before = try #require(try await bed.running("ticker").first?.pid)

        // v2 is in the registry but its config blob is not: every pull of it fails.
        let archive = bed.dir + "/v2.tar"
        #expect(try Harness.run(Harness.repoRoot + "/tools/build-image", [archive, "v2", "/bin/sh", "-c", "while :; do echo v2; sleep 0.2; done"]).status == 0)
        #expect(try bed.drover(["image", "push", archive, "ticker:v2"]).status == 0)
        let (_, _, body) = try await bed.api.request("GET", "/v2/ticker/manifests/v2")
        let parsed = try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
        let config = try #require((parsed["config"] as? [String: Any])?["digest"] as? String)
        let blob = bed.dir + "/controller/registry/blobs/sha256/" + config.dropFirst("sha256:".count)
        try FileManager.default.removeItem(atPath: blob)

        try await bed.apply(manifest("ticker").replacingOccurrences(of: "ticker:v1", with: "ticker:v2"))
        let waiting = await Harness.eventually(.seconds(20)) { bed.agents["gw-1"]?.log.contains("cannot get image") == true }
        #expect(waiting, "\(bed.agents["gw-1"]?.log ?? "")")
        try await Task.sleep(for: .seconds(2))
        #expect(Harness.isAlive(before), "the old container runs on while its replacement's image cannot be had")
        #expect(try await bed.running("ticker").map(\.pid) == [before])

        // The blob is back: the image comes, then the old container goes and v2 starts.
        #expect(try bed.drover(["image", "push", archive, "ticker:v2"]).status == 0)
        let replaced = await Harness.eventually(.seconds(40)) {
            guard let now = try? await bed.running("ticker").first?.pid else { return false }
            return now != before
        }
        #expect(replaced)
        #expect(!Harness.isAlive(before))
        let log = bed.agents["gw-1"]?.log ?? ""
        let ready = log.range(of: "image ready", options: .backwards)
        let stopped = log.range(of: "stopped replica", options: .backwards)
        #expect(ready != nil && stopped != nil && ready?.lowerBound ?? log.endIndex < stopped?.lowerBound ?? log.startIndex, "\(log)")
        try await Task.sleep(for: .seconds(1))
        let logs = try bed.drover(["logs", "ticker", "--tail", "1"])
        #expect(logs.output.hasPrefix("v2"), "\(logs.output)")
    }
}

extension ContainerTests {
    @Test("a named volume keeps its data across a new revision of the container; a read-only one cannot be written")
    func volumes() async throws {
        try await Self.withContainers("ctr-vol", Self.volumesBody)
    }

    static func volumeManifest(run: Int) -> String {
        manifest("keeper", command: "echo run \(run) >> /data/runs; touch /conf/x 2>&1 | tail -n 1; cat /data/runs; while :; do sleep 1; done") + """

          env: {RUN: "\(run)"}
          volumes:
            - {name: data, path: /data}
            - {name: conf, path: /conf, readOnly: true}
        """
    }

    static func volumesBody(_ bed: FleetTestbed, _ parent: String) async throws {
        try await bed.apply(volumeManifest(run: 1))
        #expect(await Harness.eventually(.seconds(30)) { (try? await bed.running("keeper").count) == 1 })
        let first = try #require(try await bed.running("keeper").first?.pid)
        try await bed.apply(volumeManifest(run: 2))
        let replaced = await Harness.eventually(.seconds(30)) {
            guard let now = try? await bed.running("keeper").first?.pid else { return false }
            return now != first
        }
        #expect(replaced)
        try await Task.sleep(for: .milliseconds(500))
        let logs = try bed.drover(["logs", "keeper", "--tail", "3"])
        #expect(logs.output.hasSuffix("run 1\nrun 2\n"), "the second container reads what the first wrote: \(logs.output)")
        #expect(logs.output.contains("Read-only file system"), "\(logs.output)")
        let volume = bed.agentDir("gw-1") + "/volumes/keeper/data"
        var st = stat()
        #expect(stat(volume, &st) == 0 && st.st_uid == getpwnam("drover")?.pointee.pw_uid, "the volume belongs to the container's user")

        // A surge: the third run starts as a second container (`keeper-0+1`) beside the second,
        // sharing its volume, and the second stops once the third runs.
        let second = try #require(try await bed.running("keeper").first?.pid)
        try await bed.apply(surging(volumeManifest(run: 3)))
        let surged = await Harness.eventually(.seconds(30)) {
            guard let now = try? await bed.running("keeper"), now.count == 1, let pid = now.first?.pid else { return false }
            return pid != second && !Harness.isAlive(second)
        }
        #expect(surged)
        #expect(!cgroups(parent, "keeper-0+1").isEmpty, "the new container runs in slot 1")
        #expect(await Harness.eventually(.seconds(10)) { cgroups(parent, "keeper-0").isEmpty }, "the old one is gone, cgroup and all")
        try await Task.sleep(for: .milliseconds(500))
        let after = try bed.drover(["logs", "keeper", "--tail", "3"]).output
        #expect(after.hasSuffix("run 1\nrun 2\nrun 3\n"), "\(after)")
    }

    /// With a rollout that starts each new container beside the old one.
    static func surging(_ manifest: String) -> String {
        manifest + "\n  rollout: {maxSurge: 1, maxUnavailable: 0}\n"
    }
}
