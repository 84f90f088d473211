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

/// A burst of reports costs one transaction, and what an operator changed stays durable.
@Suite("Report batches")
struct ReportBatchTests {
    @Test("reports that arrive together are applied in order, in one transaction")
    func oneTransaction() async throws {
        let (fleet, _, _) = try await FleetFixture.fleet()
        await fleet.hello(FleetFixture.hello("a"))
        _ = try await fleet.apply(FleetFixture.workload("w", replicas: 1))
        let series = "drover_store_write_duration_seconds_count{outcome=\"ok\"}"
        func writes() async -> Double {
            let line = await fleet.metricsText().split(separator: "\n").first { $0.hasPrefix(series + " ") }
            return line.flatMap { Double($0.dropFirst(series.count + 1)) } ?? -1
        }
        let before = await writes()
        await fleet.reports([
            Report(device: "a", seq: 1, replicas: [FleetConvergenceTests.status("w-0", .running, pid: 10)]),
            Report(device: "a", seq: 2, replicas: [FleetConvergenceTests.status("w-0", .exited)]),
            Report(device: "a", seq: 2, replicas: [FleetConvergenceTests.status("w-0", .running, pid: 99)]),
        ])
        let row = try await fleet.workload("w").replicas[0]
        #expect(row.phase == .exited && row.pid == nil, "in order, and the resend of seq 2 ignored")
        #expect(await writes() == before + 1)
    }

    @Test("a write of what devices said leaves the store fully synchronous for the next one")
    func durability() throws {
        let dir = try Fixtures.temporaryDirectory()
        let store = try SQLiteFleetStore(path: dir + "/controller.db")
        var batch = StoreBatch()
        batch.events = [EventRecord(time: 1, kind: "Test", subject: "a", message: "m")]
        batch.fromDevices = true
        try store.write(batch)
        #expect(try store.synchronousMode() == 2, "FULL again after a relaxed write")
    }

    @Test("merged batches keep the order of a write and a delete of the same replica")
    func mergeOrder() {
        let row = ReplicaRow(id: "w-0", workload: "w", ordinal: 0, device: "a", phase: .running, updatedAt: 1)
        var written = StoreBatch()
        written.replicas = [row]
        var deleted = StoreBatch()
        deleted.deletedReplicas = ["w-0"]
        var first = written
        first.merge(deleted)
        #expect(first.replicas.isEmpty && first.deletedReplicas == ["w-0"], "written, then deleted: gone")
        var second = deleted
        second.merge(written)
        #expect(second.replicas.map(\.id) == ["w-0"] && second.deletedReplicas.isEmpty, "deleted, then written: there")
    }
}
