import DroverCore
import DroverJSON
import DroverProtocol
import GRDB

/// Desired state is kept one row per replica (`desired_replicas`), beside one row per device
/// with its generation (`desired`): a change writes the replicas that changed.
extension SQLiteFleetStore {
    func writeDesired(_ write: DesiredWrite, _ db: Database) throws {
        let d = write.record
        // (The same JSON as the record's Codable form, its replicas in their own rows.)
        let header = String(decoding: DesiredJSON.encode(device: d.device, generation: d.generation, replicas: [], version: nil), as: UTF8.self)
        try db.cachedStatement(sql: "INSERT OR REPLACE INTO desired (device, generation, record) VALUES (?, ?, ?)").execute(arguments: [d.device, d.generation, header])
        if write.replacesAll {
            try db.cachedStatement(sql: "DELETE FROM desired_replicas WHERE device = ?").execute(arguments: [d.device])
        }
        for id in write.removed {
            try db.cachedStatement(sql: "DELETE FROM desired_replicas WHERE device = ? AND id = ?").execute(arguments: [d.device, id])
        }
        for r in write.upserted {
            let spec = String(decoding: DesiredJSON.encode(replica: r), as: UTF8.self)
            try db.cachedStatement(sql: "INSERT OR REPLACE INTO desired_replicas (device, id, spec) VALUES (?, ?, ?)").execute(arguments: [d.device, r.id, spec])
        }
    }

    /// Every device's desired state, its replicas in id order (as the controller sorts them).
    func loadDesired(_ db: Database) throws -> [DesiredRecord] {
        var replicas: [String: [ReplicaSpec]] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT device, spec FROM desired_replicas") {
            let spec = try JSON.decode(ReplicaSpec.self, from: row["spec"] as String)
            replicas[row["device"] as String, default: []].append(spec)
        }
        return try Row.fetchAll(db, sql: "SELECT device, generation FROM desired ORDER BY device").map { row in
            let device: String = row["device"]
            return DesiredRecord(device: device, generation: row["generation"], replicas: (replicas[device] ?? []).sorted { $0.id < $1.id })
        }
    }
}
