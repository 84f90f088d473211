import DroverCore
import DroverController
import DroverProtocol
import DroverStore
import Testing

/// The controller's view of replicas converges on the devices' truth after any loss.
@Suite("Fleet convergence")
struct FleetConvergenceTests {
    static func status(_ id: String, _ phase: ReplicaPhase, pid: Int32? = nil, restarts: Int = 0) -> ReplicaStatus {
        ReplicaStatus(id: id, workload: "w", phase: phase, generation: 1, pid: pid, restarts: restarts, time: 1)
    }

    static func beat(_ device: String, generation: Int64, seq: Int64, truth: [ReplicaStatus]) -> Beat {
        var b = Beat(device: device, time: 1, usage: Usage(cpuPercent: 1, memoryUsedBytes: 1, memoryTotalBytes: 2, diskUsedBytes: 1, diskTotalBytes: 2), phases: [:])
        b.generation = generation
        b.reportSeq = seq
        b.digest = ReplicaDigest.compute(truth.map(\.digestEntry))
        return b
    }

    @Test("a recreated agent.db (new outbox epoch) has its reports accepted from seq 1")
    func epoch() async throws {
        let (fleet, _, _) = try await FleetFixture.fleet()
        await fleet.hello(FleetFixture.hello("a"))
        _ = try await fleet.apply(FleetFixture.workload("w", replicas: 1))
        await fleet.report(Report(device: "a", seq: 50, replicas: [Self.status("w-0", .running, pid: 10)], epoch: "old"))
        await fleet.report(Report(device: "a", seq: 1, replicas: [Self.status("w-0", .exited)], epoch: "old"))
        #expect(try await fleet.workload("w").replicas[0].pid == 10, "a resend of the same epoch is ignored")
        await fleet.report(Report(device: "a", seq: 1, replicas: [Self.status("w-0", .running, pid: 20)], epoch: "new"))
        #expect(try await fleet.workload("w").replicas[0].pid == 20)
        #expect(try await fleet.device("a").record.reportEpoch == "new")
        await fleet.report(Report(device: "a", seq: 1, replicas: [Self.status("w-0", .exited)], epoch: "new"))
        #expect(try await fleet.workload("w").replicas[0].pid == 20)
    }

    @Test("a lost report shows in the digest and brings one snapshot request; the snapshot sets the view right")
    func digestBringsSnapshot() async throws {
        let (fleet, _, _) = try await FleetFixture.fleet()
        await fleet.hello(FleetFixture.hello("a"))
        _ = try await fleet.apply(FleetFixture.workload("w", replicas: 1))
        await fleet.report(Report(device: "a", seq: 1, replicas: [Self.status("w-0", .running, pid: 10)]))
        let inSync = [Self.status("w-0", .running, pid: 10)]
        #expect(await fleet.beat(Self.beat("a", generation: 1, seq: 1, truth: inSync)) == false)
        // The device restarted the replica (seq 2); that report was lost after the broker took it.
        let truth = [Self.status("w-0", .running, pid: 11, restarts: 1)]
        #expect(await fleet.beat(Self.beat("a", generation: 1, seq: 2, truth: truth)) == false, "seq 2 not applied yet: it may still come")
        await fleet.report(Report(device: "a", seq: 3, replicas: []))
        #expect(await fleet.beat(Self.beat("a", generation: 1, seq: 3, truth: truth)) == true)
        #expect(await fleet.beat(Self.beat("a", generation: 1, seq: 3, truth: truth)) == false, "asked once per interval")
        #expect(await fleet.beat(Self.beat("a", generation: 0, seq: 3, truth: truth)) == false, "not while desired state is in flight")
        await fleet.report(Report(device: "a", seq: 4, replicas: truth, full: true))
        let row = try await fleet.workload("w").replicas[0]
        #expect(row.pid == 11 && row.restarts == 1)
        #expect(await fleet.beat(Self.beat("a", generation: 1, seq: 4, truth: truth)) == false)
    }

    @Test("a full snapshot that does not list a placed replica marks it pending")
    func snapshotResetsUnlisted() async throws {
        let (fleet, _, _) = try await FleetFixture.fleet()
        await fleet.hello(FleetFixture.hello("a"))
        _ = try await fleet.apply(FleetFixture.workload("w", replicas: 1))
        await fleet.report(Report(device: "a", seq: 1, replicas: [Self.status("w-0", .running, pid: 10)]))
        await fleet.report(Report(device: "a", seq: 2, replicas: [], full: true))
        let row = try await fleet.workload("w").replicas[0]
        #expect(row.phase == .pending && row.pid == nil)
    }
}
