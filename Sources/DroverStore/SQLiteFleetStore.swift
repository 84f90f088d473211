import DroverCore
import DroverJSON
import DroverProtocol
import Foundation
import GRDB

/// `controller.db`: SQLite in WAL mode through GRDB. Rows hold the indexed keys as columns
/// and the rest of each record as JSON, so that a new field needs no migration.
public final class SQLiteFleetStore: FleetStore {
    let queue: DatabaseQueue
    public let location: String
    let checkpointer: Checkpointer

    public init(path: String) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        queue = try DatabaseQueue(path: path, configuration: configuration)
        location = path
        checkpointer = Checkpointer(path: path)
        try queue.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA journal_mode=WAL")
            try db.execute(sql: "PRAGMA synchronous=FULL")
        }
        try Self.migrator.migrate(queue)
        queue.inDatabase { checkpointer.install(on: $0) }
    }

    deinit {
        queue.inDatabase { checkpointer.uninstall(from: $0) }
        checkpointer.drain()
    }

    /// Checkpoints of the write-ahead log run off the write path so far, and in commits.
    public var checkpoints: (background: Int, inline: Int, failed: Int) {
        checkpointer.drain()
        return checkpointer.counts
    }

    /// Append-only: a shipped migration is never edited, and none refers to app types.
    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1-initial") { db in
            try db.execute(sql: """
                CREATE TABLE devices (id TEXT PRIMARY KEY, record TEXT NOT NULL);
                CREATE TABLE workloads (name TEXT PRIMARY KEY, record TEXT NOT NULL);
                CREATE TABLE replicas (id TEXT PRIMARY KEY, workload TEXT NOT NULL, device TEXT NOT NULL, record TEXT NOT NULL);
                CREATE INDEX replicas_workload ON replicas(workload);
                CREATE TABLE desired (device TEXT PRIMARY KEY, generation INTEGER NOT NULL, record TEXT NOT NULL);
                CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, kind TEXT NOT NULL,
                                     subject TEXT NOT NULL, message TEXT NOT NULL);
                CREATE INDEX events_subject ON events(subject);
                """)
        }
        m.registerMigration("v2-meta") { db in
            try db.execute(sql: "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        }
        m.registerMigration("v3-events-time") { db in
            try db.execute(sql: "CREATE INDEX events_time ON events(time)")
        }
        m.registerMigration("v4-security") { db in
            try db.execute(sql: """
                CREATE TABLE api_tokens (id TEXT PRIMARY KEY, record TEXT NOT NULL);
                CREATE TABLE enrollments (id TEXT PRIMARY KEY, record TEXT NOT NULL);
                CREATE TABLE credentials (device TEXT PRIMARY KEY, record TEXT NOT NULL);
                """)
        }
        // Desired state one row per replica; `desired.record` keeps the device and generation
        // only (until v6). JSON1 is built into SQLite since 3.38 (Debian 12: 3.40).
        m.registerMigration("v5-desired-replicas") { db in
            try db.execute(sql: """
                CREATE TABLE desired_replicas (id TEXT NOT NULL, device TEXT NOT NULL, spec TEXT NOT NULL, PRIMARY KEY (id, device)) WITHOUT ROWID;
                CREATE INDEX desired_replicas_device ON desired_replicas(device);
                INSERT OR REPLACE INTO desired_replicas (device, id, spec)
                    SELECT d.device, json_extract(r.value, '$.id'), r.value FROM desired d, json_each(d.record, '$.replicas') r
                    WHERE r.type = 'object' AND json_type(r.value, '$.id') = 'text';
                UPDATE desired SET record = json_set(record, '$.replicas', json('[]'));
                """)
        }
        // Desired replicas follow from the replica rows and the workloads: the controller makes
        // them again at start (see `DesiredWrite`). Rows from before carry no digest, so each
        // device is sent its desired state once more, under a new generation.
        m.registerMigration("v6-desired-headers") { db in
            try db.execute(sql: "DROP TABLE desired_replicas")
        }
        // Replica rows and desired headers are written by the thousand in a large change: each
        // is one b-tree keyed by its id (WITHOUT ROWID), not a table and an index of its key,
        // and `replicas_workload` went (no query used it). A fifth less per row.
        m.registerMigration("v7-lean-tables") { db in
            try db.execute(sql: """
                DROP INDEX IF EXISTS replicas_workload;
                CREATE TABLE replicas_v7 (id TEXT PRIMARY KEY, workload TEXT NOT NULL, device TEXT NOT NULL, record TEXT NOT NULL) WITHOUT ROWID;
                INSERT INTO replicas_v7 (id, workload, device, record) SELECT id, workload, device, record FROM replicas;
                DROP TABLE replicas;
                ALTER TABLE replicas_v7 RENAME TO replicas;
                CREATE TABLE desired_v7 (device TEXT PRIMARY KEY, generation INTEGER NOT NULL, record TEXT NOT NULL) WITHOUT ROWID;
                INSERT INTO desired_v7 (device, generation, record) SELECT device, generation, record FROM desired;
                DROP TABLE desired;
                ALTER TABLE desired_v7 RENAME TO desired;
                """)
        }
        return m
    }

    /// What Foundation's `JSONEncoder` with sorted keys writes, in a fraction of its time
    /// (`DroverJSON`): replica rows are written by the thousand in a large change.
    func json<T: Encodable>(_ value: T) throws -> String {
        try JSON.encodeText(value)
    }

    func decode<T: Decodable>(_ type: T.Type, _ rows: [Row]) throws -> [T] {
        try rows.map { row in try JSON.decode(type, from: row["record"] as String) }
    }

    public func load() throws -> FleetSnapshot {
        try queue.read { db in
            var s = FleetSnapshot()
            s.devices = try decode(DeviceRecord.self, Row.fetchAll(db, sql: "SELECT record FROM devices ORDER BY id"))
            s.workloads = try decode(WorkloadRecord.self, Row.fetchAll(db, sql: "SELECT record FROM workloads ORDER BY name"))
            s.replicas = try decode(ReplicaRow.self, Row.fetchAll(db, sql: "SELECT record FROM replicas ORDER BY id"))
            s.desired = try loadDesired(db)
            for row in try Row.fetchAll(db, sql: "SELECT key, value FROM meta") { s.meta[row["key"]] = row["value"] as String }
            return s
        }
    }

    /// One transaction. Anything an operator did (workloads, cordons, revocations) and every
    /// desired state is durable when this returns (fsync). A batch only of what devices said
    /// (`fromDevices`: replica phases, presence, their events) is written without waiting for the disk: a power cut may lose the last of it, never
    /// corrupt it, and devices tell it again (a full snapshot on every reconnect, the digest
    /// in their beats). The next durable write, or a checkpoint, makes it durable too. This
    /// keeps 1,000 reports in a burst from costing 1,000 fsyncs.
    public func write(_ batch: StoreBatch) throws {
        guard !batch.isEmpty else { return }
        let relaxed = batch.fromDevices && batch.desired.isEmpty && batch.workloads.isEmpty && batch.deletedWorkloads.isEmpty
        try queue.inDatabase { db in
            // Set for each write, and FULL again after (the queue is held throughout, so no
            // other write runs in between; the security writes set FULL themselves too).
            try db.execute(sql: relaxed ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL")
            defer { if relaxed { try? db.execute(sql: "PRAGMA synchronous=FULL") } }
            try db.inTransaction {
                try self.writeRows(batch, db)
                return .commit
            }
        }
    }

    /// SQLite's `synchronous` setting between writes (2, FULL).
    public func synchronousMode() throws -> Int {
        try queue.inDatabase { try Int.fetchOne($0, sql: "PRAGMA synchronous") ?? -1 }
    }

    /// Each row's statement is prepared once per connection (GRDB's statement cache): preparing
    /// it for every row cost more than the insert itself in writes of thousands of rows. Those
    /// written by the thousand are bound through SQLite's C API (`RowStatement`), and a row
    /// that exists is updated in place (an upsert), not deleted and inserted again with its
    /// index entries (`INSERT OR REPLACE`).
    private func writeRows(_ batch: StoreBatch, _ db: Database) throws {
        if !batch.devices.isEmpty {
            let upsert = try statement(db, "INSERT INTO devices (id, record) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET record = excluded.record")
            for d in batch.devices { try upsert.run(.text(d.id), .text(json(d))) }
        }
        for name in batch.deletedWorkloads {
            try db.cachedStatement(sql: "DELETE FROM workloads WHERE name = ?").execute(arguments: [name])
        }
        for w in batch.workloads {
            try db.cachedStatement(sql: "INSERT OR REPLACE INTO workloads (name, record) VALUES (?, ?)").execute(arguments: [w.spec.name, json(w)])
        }
        if !batch.deletedReplicas.isEmpty {
            let delete = try statement(db, "DELETE FROM replicas WHERE id = ?")
            for id in batch.deletedReplicas { try delete.run(.text(id)) }
        }
        if !batch.replicas.isEmpty {
            let rows = batch.replicas
            try insertRows(db, "INSERT INTO replicas (id, workload, device, record)", "ON CONFLICT (id) DO UPDATE SET workload = excluded.workload, device = excluded.device, record = excluded.record", width: 4, count: rows.count) { i in
                [.text(rows[i].id), .text(rows[i].workload), .text(rows[i].device), .utf8(RowJSON.encode(rows[i]))]
            }
        }
        try writeDesired(batch.desired, db)
        for (key, value) in batch.meta {
            try db.cachedStatement(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)").execute(arguments: [key, value])
        }
        for e in batch.events {
            try db.cachedStatement(sql: "INSERT INTO events (time, kind, subject, message) VALUES (?, ?, ?, ?)").execute(arguments: [e.time, e.kind, e.subject, e.message])
        }
        // Keep the event log bounded: the newest 100,000, none older than 30 days.
        if let newest = batch.events.last {
            // (Cached: prepared for every batch, these were a sixth of the store's CPU over
            // 10,000 joins.)
            try statement(db, "DELETE FROM events WHERE id <= (SELECT max(id) FROM events) - ?").run(.integer(Int64(Self.eventsKept)))
            try statement(db, "DELETE FROM events WHERE time < ?").run(.integer(newest.time - Self.eventsMaxAge))
        }
    }

    public static let eventsKept = 100_000
    public static let eventsMaxAge: Int64 = 30 * 86_400_000

    public func events(limit: Int, subject: String?) throws -> [EventRecord] {
        try queue.read { db in
            let rows: [Row]
            if let subject {
                rows = try Row.fetchAll(
                    db, sql: "SELECT * FROM events WHERE subject = ? ORDER BY id DESC LIMIT ?", arguments: [subject, limit])
            } else {
                rows = try Row.fetchAll(db, sql: "SELECT * FROM events ORDER BY id DESC LIMIT ?", arguments: [limit])
            }
            return rows.reversed().map {
                EventRecord(id: $0["id"], time: $0["time"], kind: $0["kind"], subject: $0["subject"], message: $0["message"])
            }
        }
    }
}
