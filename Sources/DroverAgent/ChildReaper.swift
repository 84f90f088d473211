#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// How a process ended.
public enum ExitStatus: Sendable, Hashable {
    case exited(Int32)
    case signalled(Int32)

    /// The shell convention: 128 + signal number for a signalled process.
    public var code: Int32 {
        switch self {
        case .exited(let c): c
        case .signalled(let s): 128 + s
        }
    }
}

/// Reaps every child of the agent, including orphans of replicas that were reparented to it
/// as a child subreaper, and keeps the exit status of each pid until it is asked for.
public final class ChildReaper: Sendable {
    private let statuses = Mutex<[Int32: ExitStatus]>([:])
    /// Reap any child (the agent as a subreaper), or only the pids asked about (when the
    /// process hosts other code that waits for its own children, as a test runner does).
    let reapsOrphans: Bool

    public init(reapsOrphans: Bool) {
        self.reapsOrphans = reapsOrphans
    }

    /// Collects exited children without blocking: all of them, or just `pid`.
    public func reap(_ pid: Int32) {
        var collected: [(Int32, ExitStatus)] = []
        while true {
            var status: Int32 = 0
            let reaped = waitpid(reapsOrphans ? -1 : pid, &status, WNOHANG)
            guard reaped > 0 else { break }
            collected.append((reaped, Self.decode(status)))
            if !reapsOrphans { break }
        }
        guard !collected.isEmpty else { return }
        statuses.withLock { map in
            for (pid, status) in collected { map[pid] = status }
            // Orphaned grandchildren nobody asks about must not pile up.
            if map.count > 4096 { map.removeAll() }
        }
    }

    /// WIFEXITED / WEXITSTATUS / WTERMSIG are macros; these are their definitions.
    static func decode(_ status: Int32) -> ExitStatus {
        let termSignal = status & 0x7f
        return termSignal == 0 ? .exited((status >> 8) & 0xff) : .signalled(termSignal)
    }

    /// The exit status of `pid` if it has been reaped; taken out of the table.
    public func takeStatus(of pid: Int32) -> ExitStatus? {
        statuses.withLock { $0.removeValue(forKey: pid) }
    }
}
