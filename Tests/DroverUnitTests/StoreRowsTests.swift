import DroverCore
@testable import DroverController
import DroverProtocol
@testable import DroverStore
import Foundation
import GRDB
import Testing

/// How `controller.db` writes rows by the thousand: many rows to a statement, tables keyed by
/// their id alone, and the write-ahead log checkpointed off the write path.
@Suite("Store rows")
struct StoreRowsTests {
    static func row(_ k: Int, device: String, phase: ReplicaPhase = .pending) -> ReplicaRow {
        ReplicaRow(id: "w-\(k)", workload: "w", ordinal: k, device: device, phase: phase, updatedAt: Int64(k))
    }

    static func header(_ device: String, _ generation: Int64) -> DesiredWrite {
        DesiredWrite(DesiredRecord(device: device, generation: generation, replicas: [], digest: UInt64(generation) &* 0x9E37_79B9_7F4A_7C15))
    }

    @Test("any number of rows in a batch (32 go in one statement) is stored as written; a row that exists, or comes twice, ends as written last")
    func manyToAStatement() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try SQLiteFleetStore(path: dir + "/controller.db")
        var rows: [String: ReplicaRow] = [:]
        var headers: [String: DesiredWrite] = [:]
        var generation: Int64 = 0
        for count in [0, 1, 31, 32, 33, 64, 100, 7] {
            generation += 1
            var batch = StoreBatch()
            // Half the ids are new, half were written before; the last few come twice.
            batch.replicas = (0..<count).map { Self.row($0 * 2 + count % 2, device: "gw-\(generation)") }
            batch.replicas += batch.replicas.suffix(3).map { var r = $0; r.phase = .running; return r }
            batch.desired = (0..<count).map { Self.header("gw-\($0)", generation) }
            try store.write(batch)
            for r in batch.replicas { rows[r.id] = r }
            for h in batch.desired { headers[h.record.device] = h }
        }
        let loaded = try store.load()
        #expect(loaded.replicas == rows.values.sorted { $0.id < $1.id })
        #expect(loaded.desired.map { [$0.device, "\($0.generation)", "\($0.digest ?? 0)"] }
            == headers.values.map(\.record).sorted { $0.device < $1.device }.map { [$0.device, "\($0.generation)", "\($0.digest ?? 0)"] })
    }

    @Test("a store from v6 keeps its rows; replica rows and desired headers are then keyed by their id alone, and the unused index is gone")
    func leanTables() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/controller.db"
        let rows = (0..<3).map { Self.row($0, device: "gw-1", phase: .running) }
        do {
            let queue = try DatabaseQueue(path: path)
            try SQLiteFleetStore.migrator.migrate(queue, upTo: "v6-desired-headers")
            try queue.write { db in
                for r in rows {
                    try db.execute(sql: "INSERT INTO replicas (id, workload, device, record) VALUES (?, ?, ?, ?)", arguments: [r.id, r.workload, r.device, String(decoding: RowJSON.encode(r), as: UTF8.self)])
                }
                try db.execute(sql: "INSERT INTO desired (device, generation, record) VALUES (?, ?, ?)", arguments: ["gw-1", 4, #"{"device":"gw-1","digest":"00000000000000ff","generation":4,"replicas":[]}"#])
            }
        }
        let store = try SQLiteFleetStore(path: path)
        let loaded = try store.load()
        #expect(loaded.replicas == rows)
        #expect(loaded.desired == [DesiredRecord(device: "gw-1", generation: 4, replicas: [], digest: 0xff)])
        let schema = try DatabaseQueue(path: path).read { db in
            try Row.fetchAll(db, sql: "SELECT name, sql FROM sqlite_master").map { ($0["name"] as String, ($0["sql"] as String?) ?? "") }
        }
        #expect(schema.first { $0.0 == "replicas" }?.1.contains("WITHOUT ROWID") == true)
        #expect(schema.first { $0.0 == "desired" }?.1.contains("WITHOUT ROWID") == true)
        #expect(!schema.contains { $0.0 == "replicas_workload" })
    }

    @Test("the write-ahead log is checkpointed off the write path, and what was written stays")
    func checkpointsOffTheWritePath() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/controller.db"
        var written: [ReplicaRow] = []
        do {
            let store = try SQLiteFleetStore(path: path)
            // About 8 MiB of log: twice the 1,000 pages that ask for a checkpoint.
            for round in 0..<40 {
                var batch = StoreBatch()
                batch.replicas = (0..<500).map { k in
                    var r = Self.row(round * 500 + k, device: "gw-\(k % 50)")
                    r.message = String(repeating: "m", count: 200)
                    return r
                }
                try store.write(batch)
                written += batch.replicas
            }
            let counts = store.checkpoints
            #expect(counts.background >= 1)
            #expect(counts.inline == 0)
            #expect(counts.failed == 0)
        }
        #expect(try SQLiteFleetStore(path: path).load().replicas == written.sorted { $0.id < $1.id })
    }
}

/// A device's replica ids, kept in order.
@Suite("Sorted ids")
struct SortedIDsTests {
    @Test("inserts, removals and lookups agree with a set, and the ids stay in order without repeats")
    func likeASet() {
        var rng = SplitMix64(state: 7)
        var ids = SortedIDs()
        var reference = Set<String>()
        for _ in 0..<5_000 {
            let id = "w\(Int.random(in: 0..<3, using: &rng))-\(Int.random(in: 0..<40, using: &rng))"
            switch Int.random(in: 0..<3, using: &rng) {
            case 0: #expect(ids.insert(id) == reference.insert(id).inserted)
            case 1: #expect(ids.remove(id) == reference.remove(id))
            default: #expect(ids.contains(id) == reference.contains(id))
            }
        }
        #expect(ids.sorted() == reference.sorted())
        #expect(Array(ids) == reference.sorted())
        #expect(SortedIDs(["b", "a", "c", "a", "b"]).sorted() == ["a", "b", "c"])
        #expect(SortedIDs([]).isEmpty)
    }
}
