import DroverController
import DroverCore
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
