import DroverController
import DroverCore
import DroverProtocol
import DroverStore
import Testing

@Suite("Workload revisions")
struct RevisionTests {
    @Test("a new template is a new revision, a new scale is not; undo brings a template back as a new revision with today's scale; history survives a restart")
    func revisions() async throws {
        let (fleet, _, dir) = try await FleetFixture.fleet()
        var spec = FleetFixture.workload("w", replicas: 2)
        _ = try await fleet.apply(spec)
        spec.replicas = 5
        _ = try await fleet.apply(spec)
        #expect(try await fleet.workload("w").revision == 1, "a scale change is no revision")
        spec.env = ["V": "2"]
        _ = try await fleet.apply(spec)
        spec.image = nil
        spec.resources.cpuMillis = 200
        _ = try await fleet.apply(spec)
        #expect(try await fleet.workload("w").revision == 3)
        let history = try await fleet.revisions("w")
        #expect(history.map(\.revision) == [1, 2, 3])
        #expect(history.map(\.outcome) == ["superseded by 2", "superseded by 3", nil])
        #expect(history.first?.spec.replicas == 5, "a revision's record follows scale changes made while it was current")

        _ = try await fleet.scale(workload: "w", replicas: 4)
        let undone = try await fleet.undo(workload: "w", to: 1)
        #expect(undone.revision == 4)
        #expect(undone.spec.env.isEmpty && undone.spec.resources.cpuMillis == 100, "the template of revision 1")
        #expect(undone.spec.replicas == 4, "the scale of now")
        #expect(undone.history.last?.cause == "undo to revision 1")
        // Without a revision: the one before the current.
        #expect(try await fleet.undo(workload: "w", to: nil).spec.resources.cpuMillis == 200)
        await #expect(throws: FleetError.self) { try await fleet.undo(workload: "w", to: 99) }

        // Kept in controller.db: a restarted controller knows them.
        let (again, _, _) = try await FleetFixture.fleet(dir: dir)
        #expect(try await again.revisions("w").map(\.revision) == [1, 2, 3, 4, 5])
        for i in 0..<12 {
            spec.env = ["V": "\(i + 10)"]
            _ = try await again.apply(spec)
        }
        let kept = try await again.revisions("w")
        #expect(kept.count == WorkloadRecord.historyKept && kept.last?.revision == 17)
    }
}

extension RevisionTests {
    @Test("during a rollout each replica runs the revision it was given; after one that failed without a rollback they stay; a new one starts from the last good revision")
    func replicaSpecs() {
        let one = FleetFixture.workload("w", replicas: 3)
        var two = one
        two.env = ["V": "2"]
        var record = WorkloadRecord(spec: one, revision: 1, createdAt: 0, updatedAt: 0, history: [RevisionRecord(revision: 1, spec: one, createdAt: 0, cause: "apply")])
        record.spec = two
        record.addRevision(two, cause: "apply", now: 1)
        var state = RolloutState(from: 1, to: 2, now: 1)
        state.assigned = ["w-0": 2]
        record.rollout = state
        #expect(record.replicaSpec(id: "w-0").revision == 2 && record.replicaSpec(id: "w-0").env == ["V": "2"])
        #expect(record.replicaSpec(id: "w-1").revision == 1 && record.replicaSpec(id: "w-1").env.isEmpty)
        record.rollout?.phase = .failed
        #expect(record.replicaSpec(id: "w-1").revision == 1, "a failed rollout leaves replicas where they are")
        #expect(record.lastGoodRevision == 1)
        record.rollout?.phase = .succeeded
        #expect(record.replicaSpec(id: "w-1").revision == 2 && record.lastGoodRevision == 2)
    }
}

@Suite("Rollouts with surge in the controller")
struct RolloutSurgeFleetTests {
    /// Two devices, one replica each running revision 1; device `b` has no room for a second.
    static func fleet(ports: [Int] = []) async throws -> (Fleet, RecordingPublisher, WorkloadSpec) {
        let (fleet, publisher, _) = try await FleetFixture.fleet()
        await fleet.hello(FleetFixture.hello("a"))
        await fleet.hello(FleetFixture.hello("b", memory: 40 << 20))
        var spec = FleetFixture.workload("w", replicas: 2)
        spec.maxPerDevice = 1
        spec.ports = ports
        spec.rollout = RolloutSpec(maxUnavailable: 1, maxSurge: 2)
        _ = try await fleet.apply(spec)
        for row in try await fleet.workload("w").replicas {
            await fleet.report(Report(device: row.device, seq: 1, replicas: [ReplicaStatus(id: row.id, workload: "w", phase: .running, generation: 1, pid: 9, time: 0, revision: 1)]))
        }
        spec.env = ["V": "2"]
        _ = try await fleet.apply(spec)
        return (fleet, publisher, spec)
    }

    @Test("a replica surges where its device has room for a second instance; elsewhere it is replaced under maxUnavailable")
    func room() async throws {
        let (_, publisher, _) = try await Self.fleet()
        let a = try #require(publisher.last(for: "a")?.replicas.first)
        let b = try #require(publisher.last(for: "b")?.replicas.first)
        #expect(a.revision == 2 && a.surge == true, "a has room")
        #expect(b.revision == 2 && b.surge == nil, "b has none: replaced")
    }

    @Test("a workload that claims host ports never surges: two instances would want one port")
    func ports() async throws {
        let (_, publisher, _) = try await Self.fleet(ports: [8080])
        let told = ["a", "b"].compactMap { publisher.last(for: $0)?.replicas.first }
        #expect(told.allSatisfy { $0.surge == nil }, "\(told)")
        #expect(told.filter { $0.revision == 2 }.count == 1, "one at a time under maxUnavailable")
    }
}
