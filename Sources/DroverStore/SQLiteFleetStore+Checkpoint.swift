import Dispatch
import GRDB
import GRDBSQLite
import Synchronization

/// Moves the write-ahead log into the database file off the write path. SQLite's own
/// checkpoint runs inside the commit that crosses 1,000 pages of log, and syncs the database
/// file there: one large change in three took 8 ms longer (a new 5,000-replica workload at
/// 10,000 devices), and the fleet actor waited through it. Here a commit that leaves 1,000
/// pages or more only asks a thread of its own to checkpoint, on a connection of its own
/// (a passive checkpoint waits for no writer). A log that still reaches 20,000 pages, as when
/// a reader holds it, is checkpointed in the commit as before.
final class Checkpointer: Sendable {
    static let pages: Int32 = 1000
    static let inlinePages: Int32 = 20_000

    private let path: String
    private let queue = DispatchQueue(label: "drover.store.checkpoint")
    private struct State {
        var connection: DatabaseQueue?
        var asked = false
        var done = 0
        var inline = 0
        var failed = 0
    }
    private let state = Mutex(State())

    init(path: String) { self.path = path }

    /// Checkpoints run off the write path so far, and in commits (the log grew past `inlinePages`).
    var counts: (background: Int, inline: Int, failed: Int) { state.withLock { ($0.done, $0.inline, $0.failed) } }

    /// Installs the commit hook on `db`, the store's connection, in place of SQLite's own.
    func install(on db: Database) {
        guard let connection = db.sqliteConnection else { return }
        sqlite3_wal_hook(connection, { context, connection, _, pages in
            guard let context else { return SQLITE_OK }
            let checkpointer = Unmanaged<Checkpointer>.fromOpaque(context).takeUnretainedValue()
            if pages >= Checkpointer.inlinePages {
                checkpointer.state.withLock { $0.inline += 1 }
                sqlite3_wal_checkpoint_v2(connection, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
            } else if pages >= Checkpointer.pages {
                checkpointer.ask()
            }
            return SQLITE_OK
        }, Unmanaged.passUnretained(self).toOpaque())
    }

    /// Removes the hook (before the store lets go of this).
    func uninstall(from db: Database) {
        guard let connection = db.sqliteConnection else { return }
        sqlite3_wal_hook(connection, nil, nil)
    }

    private func ask() {
        let first = state.withLock { s in
            defer { s.asked = true }
            return !s.asked
        }
        guard first else { return }
        queue.async { self.run() }
    }

    private func run() {
        state.withLock { $0.asked = false }
        do {
            // (Opened outside the lock, which commits take: only this queue runs `run`.)
            var opened = state.withLock { $0.connection }
            if opened == nil {
                var configuration = Configuration()
                configuration.busyMode = .timeout(5)
                let c = try DatabaseQueue(path: path, configuration: configuration)
                state.withLock { $0.connection = c }
                opened = c
            }
            guard let connection = opened else { return }
            _ = try connection.writeWithoutTransaction { try $0.checkpoint(.passive) }
            state.withLock { $0.done += 1 }
        } catch {
            // The log keeps growing until a checkpoint succeeds (the next commit asks again).
            state.withLock { $0.failed += 1 }
        }
    }

    /// Waits until no checkpoint is under way (tests, and before the store closes).
    func drain() { queue.sync {} }
}
