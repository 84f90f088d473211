import GRDB
import GRDBSQLite

/// Rows written by the thousand (replica rows and desired headers in a large change, device
/// rows in a burst of beats) are bound and stepped through SQLite's C API on GRDB's cached
/// statement: GRDB's argument boxing and checks were four fifths of each row's cost, the
/// insert itself one fifth (`perf`, a new 5,000-replica workload at 10k devices).
extension SQLiteFleetStore {
    /// One value to bind.
    enum Bound {
        case text(String)
        case integer(Int64)
    }

    /// Runs `sql` (cached) with `values` bound in order; expects no result rows.
    func run(_ db: Database, _ sql: String, _ values: Bound...) throws {
        let statement = try db.cachedStatement(sql: sql).sqliteStatement
        defer { sqlite3_reset(statement) }
        for (k, value) in values.enumerated() {
            let index = Int32(k + 1)
            let rc: Int32
            switch value {
            case .integer(let n): rc = sqlite3_bind_int64(statement, index, n)
            case .text(var s): rc = s.withUTF8 { sqlite3_bind_text(statement, index, $0.baseAddress, Int32($0.count), Self.transient) }
            }
            guard rc == SQLITE_OK else { throw Self.error(rc, db) }
        }
        let rc = sqlite3_step(statement)
        guard rc == SQLITE_DONE else { throw Self.error(rc, db) }
    }

    /// SQLite copies the bytes before the call returns (`SQLITE_TRANSIENT`).
    private static let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

    private static func error(_ rc: Int32, _ db: Database) -> DatabaseError {
        DatabaseError(resultCode: ResultCode(rawValue: rc), message: db.sqliteConnection.map { String(cString: sqlite3_errmsg($0)) })
    }
}
