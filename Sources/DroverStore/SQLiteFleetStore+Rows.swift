import GRDB
import GRDBSQLite

/// Rows written by the thousand (replica rows and desired headers in a large change, device
/// rows in a burst of beats) are bound and stepped through SQLite's C API on GRDB's cached
/// statement, looked up once per batch: GRDB's argument boxing and checks were four fifths of
/// each row's cost, the insert itself one fifth (`perf`, a new 5,000-replica workload at 10k
/// devices).
extension SQLiteFleetStore {
    /// One value to bind.
    enum Bound {
        case text(String)
        /// UTF-8 text as bytes (JSON made by hand).
        case utf8([UInt8])
        case integer(Int64)
    }

    /// A cached statement of `db`, to run once per row.
    struct RowStatement {
        /// Held, so that the handle lives while it is used even if GRDB's cache let it go.
        let statement: Statement
        let db: Database
        var handle: SQLiteStatement { statement.sqliteStatement }

        /// Runs the statement with `values` bound in order (every parameter); it returns no rows.
        func run(_ values: Bound...) throws {
            assert(values.count == Int(sqlite3_bind_parameter_count(handle)), "every parameter is bound")
            try bind(values, from: 0)
            try step()
        }

        /// Binds `values` to the parameters after the first `from`.
        func bind(_ values: [Bound], from: Int) throws {
            for (k, value) in values.enumerated() {
                let index = Int32(from + k + 1)
                let rc: Int32
                switch value {
                case .integer(let n): rc = sqlite3_bind_int64(handle, index, n)
                case .text(var s): rc = s.withUTF8 { sqlite3_bind_text(handle, index, $0.baseAddress, Int32($0.count), RowStatement.transient) }
                case .utf8(let bytes): rc = bytes.withUnsafeBufferPointer { sqlite3_bind_text(handle, index, $0.baseAddress, Int32($0.count), RowStatement.transient) }
                }
                guard rc == SQLITE_OK else {
                    sqlite3_reset(handle)
                    throw error(rc)
                }
            }
        }

        /// Runs the statement bound so far; it returns no rows.
        func step() throws {
            defer { sqlite3_reset(handle) }
            let rc = sqlite3_step(handle)
            guard rc == SQLITE_DONE else { throw error(rc) }
        }

        /// SQLite copies the bytes before the call returns (`SQLITE_TRANSIENT`).
        private static let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

        private func error(_ rc: Int32) -> DatabaseError {
            DatabaseError(resultCode: ResultCode(rawValue: rc), message: db.sqliteConnection.map { String(cString: sqlite3_errmsg($0)) })
        }
    }

    /// Inserts `count` rows of `width` values (`row(i)`, in order) with `insert` + `VALUES` +
    /// `tail`, 32 rows to a statement: SQLite's cost per statement run was about a fifth of
    /// a desired header's.
    func insertRows(_ db: Database, _ insert: String, _ tail: String, width: Int, count: Int, _ row: (Int) -> [Bound]) throws {
        let one = "(" + Array(repeating: "?", count: width).joined(separator: ", ") + ")"
        let many = Self.rowsPerStatement
        var k = 0
        if count >= many {
            let st = try statement(db, insert + " VALUES " + Array(repeating: one, count: many).joined(separator: ", ") + " " + tail)
            while count - k >= many {
                for r in 0..<many {
                    let values = row(k + r)
                    assert(values.count == width, "a row of \(width) values")
                    try st.bind(values, from: r * width)
                }
                try st.step()
                k += many
            }
        }
        guard k < count else { return }
        let st = try statement(db, insert + " VALUES " + one + " " + tail)
        for i in k..<count {
            let values = row(i)
            assert(values.count == width, "a row of \(width) values")
            try st.bind(values, from: 0)
            try st.step()
        }
    }

    static let rowsPerStatement = 32

    func statement(_ db: Database, _ sql: String) throws -> RowStatement {
        RowStatement(statement: try db.cachedStatement(sql: sql), db: db)
    }
}
