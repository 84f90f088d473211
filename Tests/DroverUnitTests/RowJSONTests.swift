import DroverCore
import DroverJSON
@testable import DroverStore
import PropertyBased
import Testing

/// Replica rows written by hand (`RowJSON`) are what the generic encoder writes.
@Suite("Replica rows as JSON")
struct RowJSONTests {
    static func randomRow(_ rng: inout SplitMix64) -> ReplicaRow {
        let text = { (rng: inout SplitMix64) in Bool.random(using: &rng) ? "w-\(Int.random(in: 0...999, using: &rng))" : DroverJSONTests.randomString(&rng) }
        let extremes: [Int] = [0, 1, -1, Int.max, Int.min, Int(Int32.max), 1_000_000]
        var row = ReplicaRow(
            id: text(&rng), workload: text(&rng), ordinal: extremes.randomElement(using: &rng) ?? 0, device: text(&rng),
            phase: ReplicaPhase.allCases.randomElement(using: &rng) ?? .pending, updatedAt: Int64.random(in: Int64.min...Int64.max, using: &rng))
        if Bool.random(using: &rng) { row.pid = Int32.random(in: Int32.min...Int32.max, using: &rng) }
        if Bool.random(using: &rng) { row.exitCode = [Int32.min, -1, 0, 137, Int32.max].randomElement(using: &rng) }
        row.restarts = extremes.randomElement(using: &rng) ?? 0
        if Bool.random(using: &rng) { row.message = DroverJSONTests.randomString(&rng) }
        if Bool.random(using: &rng) { row.ready = Bool.random(using: &rng) }
        if Bool.random(using: &rng) { row.revision = extremes.randomElement(using: &rng) }
        return row
    }

    @Test("byte for byte what the generic encoder writes, and read back the same")
    func sameAsGeneric() async {
        await propertyCheck(count: 2000, input: SchedulerPropertyTests.seeds) { seed in
            var rng = SplitMix64(state: UInt64(truncatingIfNeeded: seed))
            let row = Self.randomRow(&rng)
            let fast = String(decoding: RowJSON.encode(row), as: UTF8.self)
            #expect(fast == (try? JSON.encodeText(row)), "seed \(seed)")
            #expect((try? JSON.decode(ReplicaRow.self, from: fast)) == row, "seed \(seed)")
        }
    }
}
