import DroverCore
import DroverJSON
import Synchronization

/// What the agent remembers about one replica across its own restarts.
public struct ReplicaRecord: Hashable, Sendable, Codable {
    public var spec: ReplicaSpec
    public var phase: ReplicaPhase
    public var pid: Int32?
    /// The process start time (clock ticks since boot, from /proc): with the pid it tells our
    /// process from an unrelated one that reused the pid.
    public var startTicks: Int64?
    public var exitCode: Int32?
    public var restarts: Int
    public var message: String?
    /// The machine's boot id when the process was started: after a reboot a recorded pid
    /// names some other process, whatever its start time.
    public var bootID: String?
    /// Being stopped: kept on disk until its process is gone, so that an agent that dies in
    /// the middle of a stop finishes it at its next start instead of losing track of it.
    public var stopping: Bool?
    /// Whether its readiness probe passes (nil: it has none, or it has not run yet).
    public var ready: Bool?
    /// Which of the replica's two instance slots it runs in (nil: 0). A surge starts the new
    /// revision in the other slot, beside the old instance: each slot has its own directory
    /// and container name (`instance`).
    public var slot: Int?
    /// The old instance of a surge, running on until the new one is ready.
    public var retiring: Bool?

    /// `ID` or `ID+1`: its directory under `replicas/` and its container's name.
    public var instance: String { Self.instance(spec.id, slot: slot ?? 0) }

    public static func instance(_ id: String, slot: Int) -> String { slot == 0 ? id : "\(id)+\(slot)" }

    /// Its key in `agent.db`: the replica id, or `ID+retiring` for a retiring instance.
    public var storeKey: String { retiring == true ? Self.retiringKey(spec.id) : spec.id }

    public static func retiringKey(_ id: String) -> String { id + "+retiring" }

    public init(
        spec: ReplicaSpec, phase: ReplicaPhase, pid: Int32? = nil, startTicks: Int64? = nil, exitCode: Int32? = nil, restarts: Int = 0,
        message: String? = nil, bootID: String? = nil
    ) {
        self.spec = spec
        self.phase = phase
        self.pid = pid
        self.startTicks = startTicks
        self.exitCode = exitCode
        self.restarts = restarts
        self.message = message
        self.bootID = bootID
    }
}

/// One queued report body, waiting for the broker's acknowledgement.
public struct OutboxEntry: Hashable, Sendable {
    public var seq: Int64
    public var payload: String
}

/// The agent's `agent.db`: desired state, replica records and the outbox of reports, so that
/// the agent runs on through any outage and after its own restart.
public final class AgentStore: Sendable {
    private let db: Mutex<SQLiteDatabase>

    static let migrations: [(name: String, sql: String)] = [
        ("v1-initial", """
        CREATE TABLE desired (id INTEGER PRIMARY KEY CHECK (id = 1), generation INTEGER NOT NULL, payload TEXT NOT NULL);
        CREATE TABLE replicas (id TEXT PRIMARY KEY, record TEXT NOT NULL);
        CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT NOT NULL);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        """),
    ]

    public init(path: String) throws(SQLiteError) {
        let database = try SQLiteDatabase(path: path)
        // A damaged file must be noticed here, not taken for an empty one.
        let check = try database.query("PRAGMA quick_check").first?.first?.text ?? "no answer"
        guard check == "ok" else { throw SQLiteError(code: 11, message: "integrity check failed: \(check)", sql: "PRAGMA quick_check") }
        try database.migrate(Self.migrations)
        // The outbox epoch names this agent.db: a recreated file starts its sequence numbers
        // again at 1, and the new epoch tells the controller to accept them.
        if try database.query("SELECT value FROM meta WHERE key = 'epoch'").isEmpty {
            let epoch = String(UInt64.random(in: 1...UInt64.max), radix: 16)
            try database.execute("INSERT INTO meta (key, value) VALUES ('epoch', ?)", [.text(epoch)])
        }
        epoch = try database.query("SELECT value FROM meta WHERE key = 'epoch'").first?.first?.text ?? ""
        db = Mutex(database)
    }

    /// This agent.db's outbox epoch (see `init`).
    public let epoch: String

    private func withDB<T: Sendable>(_ body: (SQLiteDatabase) throws(SQLiteError) -> T) throws(SQLiteError) -> T {
        try db.withLock { (database: inout SQLiteDatabase) throws(SQLiteError) -> T in try body(database) }
    }

    // MARK: desired state

    /// Stores desired state unless it is older than what is stored: the generation never
    /// goes backwards. Returns whether it was stored.
    public func saveDesired(generation: Generation, payload: String) throws(SQLiteError) -> Bool {
        try withDB { db throws(SQLiteError) in
            try db.transaction { () throws(SQLiteError) -> Bool in
                let current = try db.query("SELECT generation FROM desired WHERE id = 1").first?.first?.int ?? 0
                guard generation > current else { return false }
                try db.execute(
                    "INSERT INTO desired (id, generation, payload) VALUES (1, ?, ?) ON CONFLICT(id) DO UPDATE SET generation = excluded.generation, payload = excluded.payload",
                    [.int(generation), .text(payload)])
                return true
            }
        }
    }

    public func loadDesired() throws(SQLiteError) -> (generation: Generation, payload: String)? {
        try withDB { db throws(SQLiteError) in
            guard let row = try db.query("SELECT generation, payload FROM desired WHERE id = 1").first,
                let gen = row[0].int, let payload = row[1].text
            else { return nil }
            return (gen, payload)
        }
    }

    // MARK: replicas

    public func saveReplica(_ record: ReplicaRecord) throws(SQLiteError) {
        try saveReplicas(deleting: [], saving: [record])
    }

    /// Deletes the records under `keys`, then saves `records`, in one transaction: a replica's
    /// two instances change places without a moment where a crash loses one.
    public func saveReplicas(deleting keys: [String], saving records: [ReplicaRecord]) throws(SQLiteError) {
        try withDB { db throws(SQLiteError) in
            try db.transaction { () throws(SQLiteError) in
                for key in keys { try db.execute("DELETE FROM replicas WHERE id = ?", [.text(key)]) }
                for record in records {
                    try db.execute(
                        "INSERT INTO replicas (id, record) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET record = excluded.record",
                        [.text(record.storeKey), .text(encodeJSON(record))])
                }
            }
        }
    }

    public func deleteReplica(id: String) throws(SQLiteError) {
        try withDB { db throws(SQLiteError) in try db.execute("DELETE FROM replicas WHERE id = ?", [.text(id)]) }
    }

    /// Every replica record; one that cannot be read is an error, not a replica forgotten.
    public func loadReplicas() throws(SQLiteError) -> [ReplicaRecord] {
        let rows = try withDB { db throws(SQLiteError) in try db.query("SELECT id, record FROM replicas ORDER BY id") }
        var records: [ReplicaRecord] = []
        for row in rows {
            guard let text = row.count == 2 ? row[1].text : nil, let record = decodeJSON(ReplicaRecord.self, text) else {
                throw SQLiteError(code: 11, message: "replica record \(row.first?.text ?? "?") is unreadable", sql: "SELECT record FROM replicas")
            }
            records.append(record)
        }
        return records
    }

    // MARK: outbox

    /// Queues a report body; its sequence number is the row id, which never repeats.
    public func enqueue(_ payload: String) throws(SQLiteError) -> Int64 {
        try withDB { db throws(SQLiteError) in
            try db.execute("INSERT INTO outbox (payload) VALUES (?)", [.text(payload)])
            return db.lastInsertRowID
        }
    }

    public func pending(limit: Int = 100) throws(SQLiteError) -> [OutboxEntry] {
        try withDB { db throws(SQLiteError) in
            try db.query("SELECT seq, payload FROM outbox ORDER BY seq LIMIT ?", [.int(Int64(limit))]).compactMap { row in
                guard let seq = row[0].int, let payload = row[1].text else { return nil }
                return OutboxEntry(seq: seq, payload: payload)
            }
        }
    }

    /// The highest sequence number ever queued (0 before the first): the outbox is
    /// AUTOINCREMENT, so SQLite keeps it even when every row was acknowledged.
    public func lastQueuedSeq() throws(SQLiteError) -> Int64 {
        try withDB { db throws(SQLiteError) in
            try db.query("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").first?.first?.int ?? 0
        }
    }

    /// How many reports wait for the broker.
    public func pendingCount() throws(SQLiteError) -> Int {
        try withDB { db throws(SQLiteError) in Int(try db.query("SELECT COUNT(*) FROM outbox").first?.first?.int ?? 0) }
    }

    public func acknowledge(seq: Int64) throws(SQLiteError) {
        try withDB { db throws(SQLiteError) in try db.execute("DELETE FROM outbox WHERE seq = ?", [.int(seq)]) }
    }

    /// Caps the outbox: during a very long outage only the newest reports matter, since each
    /// carries a replica's whole status. Returns how many were dropped.
    public func trimOutbox(keep: Int) throws(SQLiteError) -> Int {
        try withDB { db throws(SQLiteError) in
            let count = try db.query("SELECT count(*) FROM outbox").first?.first?.int ?? 0
            guard count > keep else { return 0 }
            try db.execute("DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)", [.int(count - Int64(keep))])
            return Int(count) - keep
        }
    }

    // MARK: meta

    public func meta(_ key: String) throws(SQLiteError) -> String? {
        try withDB { db throws(SQLiteError) in try db.query("SELECT value FROM meta WHERE key = ?", [.text(key)]).first?.first?.text }
    }

    public func setMeta(_ key: String, _ value: String) throws(SQLiteError) {
        try withDB { db throws(SQLiteError) in
            try db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", [.text(key), .text(value)])
        }
    }
}

func encodeJSON<T: Encodable>(_ value: T) -> String {
    (try? JSON.encodeText(value)) ?? "{}"
}

func decodeJSON<T: Decodable>(_ type: T.Type, _ text: String) -> T? {
    try? JSON.decode(type, from: Array(text.utf8))
}
