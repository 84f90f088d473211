import DroverAgent
import DroverAgentStore
import DroverCore
import DroverProtocol
import Foundation
import Testing

/// A replica told to surge: the new revision starts beside the running instance, which stops
/// only once the new one is ready; a rollback before then keeps the old one; an agent restart
/// in the middle adopts both. Real processes and a real `agent.db` (no network).
@Suite("Surge on the device", .serialized)
struct SurgeTests {
    typealias R = SupervisorRecoveryTests

    /// Revision `revision`: ready once its work directory has `ready` (made at once, or after `delay`).
    static func spec(_ revision: Int, readyAfter delay: String? = "0.5", surge: Bool = true) -> ReplicaSpec {
        let touch = (delay.map { "sleep \($0); " } ?? "") + "touch ready; "
        var spec = WorkloadSpec(
            name: "w", command: ["/bin/sh", "-c", "\(touch)exec sleep 1000"], env: ["REVISION": "\(revision)"], restartPolicy: .always,
            probes: Probes(readiness: Probe(action: .exec(command: ["test", "-f", "ready"]), periodSeconds: 1))
        ).replica(ordinal: 0)
        spec.revision = revision
        spec.surge = surge ? true : nil
        return spec
    }

    /// Ticks until `condition` holds or `seconds` pass.
    static func until(_ supervisor: ReplicaSupervisor, seconds: Int = 15, _ condition: () async -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            await supervisor.tick()
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    static func ready(_ supervisor: ReplicaSupervisor, revision: Int) async -> Bool {
        await supervisor.replicaStatuses().contains { $0.id == "w-0" && $0.revision == revision && $0.phase == .running && $0.ready == true }
    }

    /// A supervisor whose replica runs revision 1, ready, then is told to surge to revision 2
    /// (ready after `readyAfter` seconds): its directory, the old instance's pid, and both.
    static func surging(readyAfter: String) async throws -> (dir: String, supervisor: ReplicaSupervisor, old: Set<Int32>, both: Set<Int32>) {
        let dir = try Fixtures.temporaryDirectory()
        let supervisor = try R.supervisor(dir, boot: "boot-a", grace: .seconds(1))
        try await supervisor.recover()
        await supervisor.apply(Desired(device: "gw-1", generation: 1, replicas: [Self.spec(1, readyAfter: nil, surge: false)]))
        let old = await supervisor.trackedPIDs()
        #expect(await Self.until(supervisor) { await Self.ready(supervisor, revision: 1) })
        await supervisor.apply(Desired(device: "gw-1", generation: 2, replicas: [Self.spec(2, readyAfter: readyAfter)]))
        let both = await supervisor.trackedPIDs()
        #expect(both.count == 2 && both.isSuperset(of: old), "the old instance runs beside the new one: \(both)")
        return (dir, supervisor, old, both)
    }

    @Test("the old instance runs until the new one is ready, then stops; the new one runs in its own directory")
    func surgeThenReady() async throws {
        let (dir, supervisor, old, both) = try await Self.surging(readyAfter: "1")
        defer { R.killAndReap(both) }
        // Not ready yet: both run.
        try await Task.sleep(for: .milliseconds(300))
        await supervisor.tick()
        #expect(old.allSatisfy(R.alive))
        #expect(await Self.until(supervisor) { await supervisor.trackedPIDs().count == 1 && !old.contains { R.alive($0) } })
        let left = await supervisor.trackedPIDs()
        #expect(left.isDisjoint(with: old) && left.count == 1)
        #expect(await Self.ready(supervisor, revision: 2))
        #expect(FileManager.default.fileExists(atPath: dir + "/replicas/w-0+1/work/ready"), "the new instance works in slot 1")
        let phases = try R.reported(dir, "w-0")
        #expect(!phases.contains(.stopped), "the replica never stopped: \(phases)")

        // The next surge goes back to slot 0.
        #expect(await supervisor.apply(Desired(device: "gw-1", generation: 3, replicas: [Self.spec(3, readyAfter: "1")])))
        let third = await supervisor.trackedPIDs()
        #expect(!FileManager.default.fileExists(atPath: dir + "/replicas/w-0/work/ready"), "slot 0 starts clean, without what revision 1 left")
        defer { R.killAndReap(third) }
        let thirdDone = await Self.until(supervisor, seconds: 30) {
            let pids = await supervisor.trackedPIDs()
            return await Self.ready(supervisor, revision: 3) && pids.isDisjoint(with: left) && pids.count == 1
        }
        let statuses = await supervisor.replicaStatuses()
        let pids = await supervisor.trackedPIDs()
        #expect(thirdDone, "the third surge: \(statuses), tracked \(pids), before \(left)")
        #expect(FileManager.default.fileExists(atPath: dir + "/replicas/w-0/work/ready"))
        await supervisor.apply(Desired(device: "gw-1", generation: 4, replicas: []))
        #expect(await supervisor.trackedPIDs().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: dir + "/replicas/w-0+1") && !FileManager.default.fileExists(atPath: dir + "/replicas/w-0"))
    }

    @Test("a rollback before the new instance is ready: the old one is the replica again, the same process, and the new one stops")
    func rollbackKeepsOld() async throws {
        let (_, supervisor, old, both) = try await Self.surging(readyAfter: "1000")
        defer { R.killAndReap(both) }
        await supervisor.apply(Desired(device: "gw-1", generation: 3, replicas: [Self.spec(1, readyAfter: nil, surge: false)]))
        #expect(await Self.until(supervisor) { await supervisor.trackedPIDs() == old })
        #expect(await supervisor.runningGroups()["w-0"] == old.first)
        #expect(await supervisor.replicaStatuses().first?.revision == 1)
        #expect(both.subtracting(old).allSatisfy { !R.alive($0) }, "the new instance is gone")
    }

    @Test("an agent restarted in the middle of a surge adopts both instances, and finishes the surge")
    func restartMidSurge() async throws {
        let (dir, _, old, both) = try await Self.surging(readyAfter: "2")
        defer { R.killAndReap(both) }

        // The agent dies (its processes run on) and starts again.
        let second = try R.supervisor(dir, boot: "boot-a", grace: .seconds(1))
        try await second.recover()
        #expect(await second.trackedPIDs() == both, "both instances adopted")
        #expect(await Self.until(second) { await second.trackedPIDs() == both.subtracting(old) })
        #expect(old.allSatisfy { !R.alive($0) })
        #expect(await Self.ready(second, revision: 2))
    }

    @Test("an agent that went down right after moving the old instance aside (only its record left) keeps it, and starts the new one in the other slot")
    func crashAfterRetire() async throws {
        let (dir, _, old, both) = try await Self.surging(readyAfter: "1000")
        defer { R.killAndReap(both) }
        // As if the agent died before the new instance's record was written.
        try AgentStore(path: dir + "/agent.db").deleteReplica(id: "w-0")
        R.killAndReap(both.subtracting(old))

        let second = try R.supervisor(dir, boot: "boot-a", grace: .seconds(1))
        try await second.recover()
        let now = await second.trackedPIDs()
        defer { R.killAndReap(now) }
        #expect(now.count == 2 && now.isSuperset(of: old), "the old instance kept, a new one started: \(now)")
        #expect(old.allSatisfy(R.alive))
        #expect(FileManager.default.fileExists(atPath: dir + "/replicas/w-0+1/work"), "in the other slot")
    }
}
