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

    public init() {}

    /// Collects every child that has exited, without blocking.
    public func reap() {
        var collected: [(Int32, ExitStatus)] = []
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            guard pid > 0 else { break }
            // WIFEXITED / WEXITSTATUS / WTERMSIG are macros; these are their definitions.
            let termSignal = status & 0x7f
            collected.append((pid, termSignal == 0 ? .exited((status >> 8) & 0xff) : .signalled(termSignal)))
        }
        guard !collected.isEmpty else { return }
        statuses.withLock { map in
            for (pid, status) in collected { map[pid] = status }
            // Orphaned grandchildren nobody asks about must not pile up.
            if map.count > 4096 { map.removeAll() }
        }
    }

    /// The exit status of `pid` if it has been reaped; taken out of the table.
    public func takeStatus(of pid: Int32) -> ExitStatus? {
        statuses.withLock { $0.removeValue(forKey: pid) }
    }
}
