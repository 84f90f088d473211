import Foundation
import Testing

@Suite("Revisions through the CLI", .serialized)
struct RolloutCLITests {
    @Test("drover rollout history lists revisions with cause and outcome; drover rollout undo brings the old template back, and the device runs it")
    func historyAndUndo() async throws {
        try await AgentTests.withFleet("rollout-cli", Self.body)
    }

    static func body(_ bed: FleetTestbed) async throws {
        try await bed.apply(AgentTests.manifest("steady", command: "echo one; exec sleep 1000"))
        #expect(await Harness.eventually { (try? await bed.running("steady").count) == 1 })
        try await bed.apply(AgentTests.manifest("steady", command: "echo two; exec sleep 1000"))
        try await bed.apply(AgentTests.manifest("steady", command: "echo two; exec sleep 1000", replicas: 1))
        let history = try bed.drover(["rollout", "history", "steady"])
        let lines = history.output.split(separator: "\n")
        #expect(history.status == 0 && lines.count == 3, "\(history.output)")
        #expect(lines.count == 3 && lines[1].contains("apply") && lines[1].contains("superseded by 2") && lines[2].contains("current"), "\(history.output)")

        let undo = try bed.drover(["rollout", "undo", "steady"])
        #expect(undo.status == 0 && undo.output.contains("now revision 3"), "\(undo.output)")
        let back = await Harness.eventually(.seconds(20)) {
            guard (try? await bed.running("steady").count) == 1 else { return false }
            return (try? bed.drover(["logs", "steady", "--tail", "1"]))?.output == "one\n"
        }
        #expect(back, "the device runs revision 1's command again")
        let reports = await Harness.eventually(.seconds(10)) { (try? await bed.replicas("steady").first?["revision"] as? Int) == 3 }
        let rows = (try? await bed.replicas("steady")) ?? []
        #expect(reports, "the device reports the revision it runs: \(rows)")
        let after = try bed.drover(["rollout", "history", "steady"]).output
        #expect(after.contains("undo to revision 1"), "\(after)")
        let missing = try bed.drover(["rollout", "undo", "steady", "--to-revision", "9"])
        #expect(missing.status != 0 && missing.output.contains("has no revision 9"), "\(missing.output)")
    }
}
