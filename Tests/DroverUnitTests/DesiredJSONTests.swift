import DroverCore
import Foundation
import PropertyBased
import Testing

@testable import DroverProtocol

/// Desired state spliced from replica templates must be byte for byte what JSONEncoder writes.
@Suite("Desired state JSON")
struct DesiredJSONTests {
    static let texts = ["", "a", "x/y", "é", "quote\"d", "back\\slash", "\u{1}", "tab\there", "😀", "web-1", "A.B_c"]

    static func randomSpec(_ rng: inout SplitMix64) -> ReplicaSpec {
        var w = WorkloadSpec(name: ["web", "cam-reader", "x.y"].randomElement(using: &rng) ?? "w", replicas: 3, resources: Resources(cpuMillis: Int.random(in: 0...4000, using: &rng), memoryBytes: 64 << 20), command: ["/bin/sh", "-c", texts.randomElement(using: &rng) ?? ""])
        for _ in 0..<Int.random(in: 0...3, using: &rng) { w.env[texts.randomElement(using: &rng) ?? "K"] = texts.randomElement(using: &rng) ?? "" }
        if Bool.random(using: &rng) { w.user = "1000:1000" }
        var spec = w.replica(id: Bool.random(using: &rng) ? "\(w.name)-\(Int.random(in: 0...99, using: &rng))" : (texts.randomElement(using: &rng) ?? "id"))
        if Bool.random(using: &rng) { spec.revision = Int.random(in: 1...9, using: &rng) }
        if Bool.random(using: &rng) { spec.surge = true }
        return spec
    }

    static func sorted<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array(try encoder.encode(value))
    }

    @Test("the wire message and the stored record are what JSONEncoder writes, for any device, ids, env and revisions")
    func sameBytes() async {
        await propertyCheck(count: 300, input: SchedulerPropertyTests.seeds) { seed in
            var rng = SplitMix64(state: UInt64(truncatingIfNeeded: seed))
            let replicas = (0..<Int.random(in: 0...12, using: &rng)).map { _ in Self.randomSpec(&rng) }
            let device = Self.texts.randomElement(using: &rng) ?? "gw"
            let message = Desired(device: device, generation: Int64.random(in: 1...Int64.max, using: &rng), replicas: replicas)
            let record = DesiredRecord(device: device, generation: message.generation, replicas: replicas)
            #expect(WireCodec.encode(message) == (try? Self.sorted(message)), "seed \(seed): the wire message")
            let stored = DesiredJSON.encode(device: device, generation: record.generation, replicas: replicas, version: nil)
            #expect(stored == (try? Self.sorted(record)), "seed \(seed): the stored record")
        }
        #expect(DesiredJSON.templateCount > 0, "templates are used, not only the fallback")
    }

    @Test("a workload deleted and made again with the same text in another Unicode form gets its own bytes")
    func forgetOnDelete() throws {
        var w = WorkloadSpec(name: "unicode-forms", replicas: 1, resources: Resources(cpuMillis: 100, memoryBytes: 1 << 20), command: ["/bin/true"])
        w.env["X"] = "caf\u{E9}"
        let composed = w.replica(id: "unicode-forms-0")
        w.env["X"] = "cafe\u{301}"
        let decomposed = w.replica(id: "unicode-forms-0")
        #expect(composed == decomposed, "Swift calls them equal: the reason for forget")
        #expect(DesiredJSON.encode(device: "gw", generation: 1, replicas: [composed], version: nil) == (try Self.sorted(DesiredRecord(device: "gw", generation: 1, replicas: [composed]))))
        DesiredJSON.forget(workload: "unicode-forms")
        #expect(DesiredJSON.encode(device: "gw", generation: 1, replicas: [decomposed], version: nil) == (try Self.sorted(DesiredRecord(device: "gw", generation: 1, replicas: [decomposed]))))
    }
}
