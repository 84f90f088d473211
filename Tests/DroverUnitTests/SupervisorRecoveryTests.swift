import DroverAgent
import DroverAgentStore
import DroverCore
import DroverProtocol
import Foundation
import Logging
import Testing

/// The agent's start after a crash, `kill -9` or a reboot, with real processes and a real
/// `agent.db` (no network).
@Suite("Supervisor recovery", .serialized)
struct SupervisorRecoveryTests {
    static let logger = Logger(label: "test")

    static func spec(_ name: String, _ script: String, restart: RestartPolicy = .always) -> ReplicaSpec {
        WorkloadSpec(name: name, command: ["/bin/sh", "-c", script], restartPolicy: restart).replica(ordinal: 0)
    }

    static func supervisor(_ dir: String, boot: String, grace: Duration = .seconds(5)) throws -> ReplicaSupervisor {
        ReplicaSupervisor(
            deviceID: "gw-1", store: try AgentStore(path: dir + "/agent.db"), drivers: [ExecDriver(reaper: ChildReaper(reapsOrphans: false))],
            dataDir: dir, logger: logger, bootID: boot, stopGrace: grace)
    }

    static func alive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(close, offsetBy: 2)]
        return state != "Z" && state != "X"
    }

    static func killAndReap(_ pids: some Sequence<Int32>) {
        for pid in pids {
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
    }

    /// The phases the outbox holds for `id`, oldest first.
    static func reported(_ dir: String, _ id: String) throws -> [ReplicaPhase] {
        try AgentStore(path: dir + "/agent.db").pending(limit: 1000).flatMap { entry in
            ((try? WireCodec.decodeValue([ReplicaStatus].self, from: entry.payload)) ?? []).filter { $0.id == id }.map(\.phase)
        }
    }

    @Test("a replica recorded running whose process died while the agent was away is started again")
    func restartedAfterReboot() async throws {
        let dir = try Fixtures.temporaryDirectory()
        let first = try Self.supervisor(dir, boot: "boot-a")
        try await first.recover()
        #expect(await first.apply(Desired(device: "gw-1", generation: 1, replicas: [Self.spec("w", "exec sleep 1000")])))
        let before = await first.trackedPIDs()
        #expect(before.count == 1)
        // A power cut: the replica and the agent are gone; agent.db says "running".
        Self.killAndReap(before)

        let second = try Self.supervisor(dir, boot: "boot-b")
        try await second.recover()
        let after = await second.trackedPIDs()
        defer { Self.killAndReap(after) }
        #expect(after.count == 1)
        #expect(after.isDisjoint(with: before))
        #expect(after.allSatisfy(Self.alive))
        #expect(await second.phaseCounts() == ["running": 1])
        #expect(try Self.reported(dir, "w-0").suffix(2) == [.restarting, .running])
    }

    @Test("files of replicas the agent does not know (it died before removing them, or agent.db is new) are removed at its start; its own stay")
    func unknownFilesRemoved() async throws {
        let dir = try Fixtures.temporaryDirectory()
        let first = try Self.supervisor(dir, boot: "boot-a")
        try await first.recover()
        #expect(await first.apply(Desired(device: "gw-1", generation: 1, replicas: [Self.spec("w", "exec sleep 1000")])))
        let pids = await first.trackedPIDs()
        defer { Self.killAndReap(pids) }
        let mine = try FileManager.default.contentsOfDirectory(atPath: dir + "/replicas")
        #expect(mine.count == 1, "\(mine)")
        let own = dir + "/replicas/" + (mine.first ?? "?")
        for orphan in ["gone-0", "gone-0+1"] {
            try FileManager.default.createDirectory(atPath: dir + "/replicas/\(orphan)/sub", withIntermediateDirectories: true)
            try "old log".write(toFile: dir + "/replicas/\(orphan)/output.log", atomically: true, encoding: .utf8)
        }

        let second = try Self.supervisor(dir, boot: "boot-a")
        try await second.recover()
        #expect(await second.trackedPIDs() == pids, "the running replica is adopted")
        #expect(!FileManager.default.fileExists(atPath: dir + "/replicas/gone-0"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/replicas/gone-0+1"))
        #expect(FileManager.default.fileExists(atPath: own), "its own replica's files stay")
    }

    @Test("a live process recorded under another boot id is not adopted: its pid names something else now")
    func bootIDMismatch() async throws {
        let dir = try Fixtures.temporaryDirectory()
        let first = try Self.supervisor(dir, boot: "boot-a")
        try await first.recover()
        await first.apply(Desired(device: "gw-1", generation: 1, replicas: [Self.spec("w", "exec sleep 1000")]))
        let old = await first.trackedPIDs()
        defer { Self.killAndReap(old) }

        let same = try Self.supervisor(dir, boot: "boot-a")
        try await same.recover()
        #expect(await same.trackedPIDs() == old, "same boot, same process: adopted")

        let rebooted = try Self.supervisor(dir, boot: "boot-b")
        try await rebooted.recover()
        let fresh = await rebooted.trackedPIDs()
        defer { Self.killAndReap(fresh) }
        #expect(fresh.count == 1 && fresh.isDisjoint(with: old))
    }

    @Test("under restartPolicy never a replica that died while the agent was away is left exited, code unknown")
    func neverPolicy() async throws {
        let dir = try Fixtures.temporaryDirectory()
        let first = try Self.supervisor(dir, boot: "boot-a")
        try await first.recover()
        await first.apply(Desired(device: "gw-1", generation: 1, replicas: [Self.spec("once", "exec sleep 1000", restart: .never)]))
        Self.killAndReap(await first.trackedPIDs())
        let second = try Self.supervisor(dir, boot: "boot-a")
        try await second.recover()
        #expect(await second.trackedPIDs().isEmpty)
        #expect(await second.phaseCounts() == ["exited": 1])
    }

    @Test("an unreadable agent.db stops the agent loudly instead of running nothing")
    func corruptStore() async throws {
        let dir = try Fixtures.temporaryDirectory()
        try Data(repeating: 0x5a, count: 8192).write(to: URL(fileURLWithPath: dir + "/agent.db"))
        #expect(throws: SQLiteError.self) { _ = try AgentStore(path: dir + "/agent.db") }

        let other = try Fixtures.temporaryDirectory()
        let store = try AgentStore(path: other + "/agent.db")
        try store.saveReplica(ReplicaRecord(spec: Self.spec("w", "true"), phase: .running))
        #expect(try store.saveDesired(generation: 1, payload: "{not json"))
        let supervisor = try Self.supervisor(other, boot: "b")
        await #expect(throws: RecoveryError.self) { try await supervisor.recover() }
    }

    @Test("removing two replicas at once, one ignoring SIGTERM: supervision passes during the stop start nothing, nothing is left running")
    func removalNeverRaces() async throws {
        let dir = try Fixtures.temporaryDirectory()
        let supervisor = try Self.supervisor(dir, boot: "b", grace: .milliseconds(800))
        try await supervisor.recover()
        let stubborn = Self.spec("stubborn", "trap '' TERM; while :; do sleep 0.05; done")
        let polite = Self.spec("polite", "exec sleep 1000")
        await supervisor.apply(Desired(device: "gw-1", generation: 1, replicas: [stubborn, polite]))
        let pids = await supervisor.trackedPIDs()
        #expect(pids.count == 2)
        defer { Self.killAndReap(pids) }
        try await Task.sleep(for: .milliseconds(200))  // the trap is set
        let removal = Task { await supervisor.apply(Desired(device: "gw-1", generation: 2, replicas: [])) }
        // While the stubborn one takes its grace, supervision goes on, as the agent's loop does.
        for _ in 0..<10 {
            await supervisor.tick()
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(await removal.value)
        for _ in 0..<3 { await supervisor.tick() }
        #expect(await supervisor.trackedPIDs().isEmpty)
        #expect(await supervisor.phaseCounts().isEmpty)
        #expect(pids.allSatisfy { !Self.alive($0) }, "every replica process is gone")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: "/proc").compactMap { Int32($0) }.filter { pid in
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd"))?.hasPrefix(dir + "/") == true && Self.alive(pid)
        }
        #expect(leftovers.isEmpty, "processes still running in the replicas' directories: \(leftovers)")
    }

    @Test("an agent that died in the middle of replacing a replica finishes the stop at its next start: never two processes for one id")
    func stopFinishedAfterCrash() async throws {
        let dir = try Fixtures.temporaryDirectory()
        let first = try Self.supervisor(dir, boot: "b", grace: .seconds(30))
        try await first.recover()
        let old = Self.spec("w", "trap '' TERM; while :; do sleep 0.05; done")
        await first.apply(Desired(device: "gw-1", generation: 1, replicas: [old]))
        let oldPIDs = await first.trackedPIDs()
        defer { Self.killAndReap(oldPIDs) }
        try await Task.sleep(for: .milliseconds(200))
        var changed = old
        changed.env = ["VERSION": "2"]
        // The replacement begins; the old process ignores SIGTERM for the 30 s grace...
        let replacing = Task { await first.apply(Desired(device: "gw-1", generation: 2, replicas: [changed])) }
        try await Task.sleep(for: .milliseconds(300))
        // ...and the agent dies here (its successor reads the same agent.db).
        let second = try Self.supervisor(dir, boot: "b", grace: .milliseconds(300))
        try await second.recover()
        let now = await second.trackedPIDs()
        defer { Self.killAndReap(now) }
        #expect(oldPIDs.allSatisfy { !Self.alive($0) }, "the old process was stopped before the new one started")
        #expect(now.count == 1 && now.isDisjoint(with: oldPIDs))
        // The first supervisor stands for an agent that died; it lives on in this test, so
        // whatever it starts once its stop returns is stopped here.
        _ = await replacing.value
        Self.killAndReap(await first.trackedPIDs())
    }
}

/// A container-like driver: exec processes, started slowly in the background.
struct SlowDriver: RuntimeDriver {
    let kind = RuntimeKind.runc
    let exec: ExecDriver
    var startsInBackground: Bool { true }
    func start(_ spec: ReplicaSpec, name: String, directory: String, logPath: String) throws(RuntimeError) -> RuntimeProcess {
        usleep(300_000)
        return try exec.start(spec, name: name, directory: directory, logPath: logPath)
    }
    func state(of process: RuntimeProcess) -> ProcessState { exec.state(of: process) }
    func probe(_ command: [String], in process: RuntimeProcess, spec: ReplicaSpec, timeout: Duration) -> ProbeCheck.Outcome {
        exec.probe(command, in: process, spec: spec, timeout: timeout)
    }
    func stop(_ process: RuntimeProcess, grace: Duration) async { await exec.stop(process, grace: grace) }
}

extension SupervisorRecoveryTests {
    @Test("a change that comes while a container starts in the background: the started one is stopped, the new one runs, never both")
    func changeDuringBackgroundStart() async throws {
        let dir = try Fixtures.temporaryDirectory()
        let supervisor = ReplicaSupervisor(
            deviceID: "gw-1", store: try AgentStore(path: dir + "/agent.db"), drivers: [SlowDriver(exec: ExecDriver(reaper: ChildReaper(reapsOrphans: false)))],
            dataDir: dir, logger: Self.logger, bootID: "b", stopGrace: .seconds(1))
        try await supervisor.recover()
        func spec(_ version: String) -> ReplicaSpec {
            var s = WorkloadSpec(name: "w", runtime: .runc, command: ["/bin/sh", "-c", "exec sleep 1000"], env: ["V": version]).replica(ordinal: 0)
            s.image = "x@sha256:" + String(repeating: "a", count: 64)
            return s
        }
        #expect(await supervisor.apply(Desired(device: "gw-1", generation: 1, replicas: [spec("1")])))
        #expect(await supervisor.trackedPIDs().isEmpty, "the start runs in the background")
        #expect(await supervisor.apply(Desired(device: "gw-1", generation: 2, replicas: [spec("2")])))
        var seen = Set<Int32>()
        for _ in 0..<40 {
            try await Task.sleep(for: .milliseconds(50))
            let tracked = await supervisor.trackedPIDs()
            #expect(tracked.count <= 1)
            seen.formUnion(tracked)
        }
        let now = await supervisor.trackedPIDs()
        // Both were started, one after the other (the first may live too briefly to be seen).
        let runs = try Self.reported(dir, "w-0").filter { $0 == .running }.count
        #expect(now.count == 1 && runs == 2, "first v1, then v2: \(seen), \(runs) starts reported")
        let pid = try #require(now.first)
        let environ = (try? String(contentsOfFile: "/proc/\(pid)/environ", encoding: .utf8)) ?? ""
        #expect(environ.split(separator: "\0").contains("V=2"))
        #expect(seen.subtracting(now).allSatisfy { !Self.alive($0) }, "the first one is gone")
        Self.killAndReap(seen)
    }
}
