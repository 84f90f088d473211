import GRDB

extension SQLiteFleetStore: SecurityStore {
    public func loadSecurity() throws -> SecuritySnapshot {
        try queue.read { db in
            var s = SecuritySnapshot()
            s.tokens = try decode(APITokenRecord.self, Row.fetchAll(db, sql: "SELECT record FROM api_tokens ORDER BY id"))
            s.enrollments = try decode(EnrollmentRecord.self, Row.fetchAll(db, sql: "SELECT record FROM enrollments ORDER BY id"))
            s.credentials = try decode(DeviceCredentialRecord.self, Row.fetchAll(db, sql: "SELECT record FROM credentials ORDER BY device"))
            return s
        }
    }

    /// Always durable (FULL), whatever the write before it.
    public func write(_ batch: SecurityBatch) throws {
        try queue.inDatabase { try $0.execute(sql: "PRAGMA synchronous=FULL") }
        try queue.write { db in
            for t in batch.tokens {
                try db.execute(sql: "INSERT OR REPLACE INTO api_tokens (id, record) VALUES (?, ?)", arguments: [t.id, json(t)])
            }
            for e in batch.enrollments {
                try db.execute(sql: "INSERT OR REPLACE INTO enrollments (id, record) VALUES (?, ?)", arguments: [e.id, json(e)])
            }
            for c in batch.credentials {
                try db.execute(sql: "INSERT OR REPLACE INTO credentials (device, record) VALUES (?, ?)", arguments: [c.device, json(c)])
            }
        }
    }
}
