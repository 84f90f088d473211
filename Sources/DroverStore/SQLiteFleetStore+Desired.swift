import DroverCore
import DroverJSON
import DroverProtocol
import GRDB

/// Desired state is kept one row per device (`desired`): its generation and the digest of its
/// replicas (see `DesiredWrite`).
extension SQLiteFleetStore {
    func writeDesired(_ writes: [DesiredWrite], _ db: Database) throws {
        guard !writes.isEmpty else { return }
        try insertRows(db, "INSERT INTO desired (device, generation, record)", "ON CONFLICT (device) DO UPDATE SET generation = excluded.generation, record = excluded.record", width: 3, count: writes.count) { i in
            let d = writes[i].record
            return [.text(d.device), .integer(d.generation), .utf8(DesiredJSON.header(device: d.device, generation: d.generation, digest: d.digest))]
        }
    }

    /// Every device's stored generation and digest (nil when the row has none, as rows from
    /// before the digest), in device order; the replicas are left empty.
    func loadDesired(_ db: Database) throws -> [DesiredRecord] {
        try Row.fetchAll(db, sql: "SELECT device, generation, json_extract(record, '$.digest') AS digest FROM desired ORDER BY device").map { row in
            let digest = (row["digest"] as String?).flatMap { $0.utf8.count == 16 ? UInt64($0, radix: 16) : nil }
            return DesiredRecord(device: row["device"], generation: row["generation"], replicas: [], digest: digest)
        }
    }
}
