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
