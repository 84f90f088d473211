#if canImport(Glibc)
import Glibc
#endif
import DroverPOSIX

/// Runs a helper program of the host (tar, runc, conmon) to its end, through the agent's
/// reaper: the agent reaps every child, so a plain `waitpid` here could lose the status.
/// Blocking: call it off Swift's cooperative pool (`OffPool.run`), or where a short wait is fine.
struct HostCommand {
    struct Result {
        var status: ExitStatus?
        /// The last 4 KiB of what it wrote to stdout and stderr.
        var output: String
        var succeeded: Bool { status == .exited(0) }

        /// The output's last non-empty line, for an error message.
        var lastLine: String {
            output.split(separator: "\n").last.map { String($0.prefix(500)) } ?? "no output"
        }
    }

    let reaper: ChildReaper

    /// `outputPath` collects stdout and stderr (truncated first); a run past `timeout` is killed.
    /// `identity`: whom it runs as (nil: as the agent); `searchPath`: a bare name is looked up.
    func run(_ executable: String, _ arguments: [String], outputPath: String, directory: String? = nil,
             environment: [String: String] = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"], timeout: Duration = .seconds(120),
             identity: Spawn.Identity? = nil, searchPath: Bool = false) -> Result {
        POSIX.truncateFile(outputPath)
        var spawn = Spawn(executable: executable, arguments: arguments, environment: environment)
        spawn.outputPath = outputPath
        spawn.directory = directory
        spawn.identity = identity
        spawn.searchPath = searchPath
        // Its own process group: a timeout kills whatever it started too.
        spawn.newProcessGroup = identity != nil
        let pid: pid_t
        do {
            pid = try spawn.run()
        } catch {
            return Result(status: nil, output: error.description)
        }
        let deadline = ContinuousClock.now + timeout
        var status: ExitStatus?
        var pause: UInt32 = 500
        var killed = false
        while status == nil {
            reaper.reap(pid)
            status = reaper.takeStatus(of: pid)
            if status != nil { break }
            // Gone, and its status with it (the reaper's table overflowed): never wait forever,
            // never signal a pid that may be another process's by now.
            if kill(pid, 0) != 0, errno == ESRCH {
                reaper.reap(pid)
                status = reaper.takeStatus(of: pid)
                break
            }
            if !killed, ContinuousClock.now > deadline {
                if identity != nil { kill(-pid, SIGKILL) }
                kill(pid, SIGKILL)
                killed = true
            }
            usleep(pause)
            pause = min(pause * 2, 4000)
        }
        return Result(status: status, output: Self.tail(outputPath))
    }

    static func tail(_ path: String, bytes: Int = 4096) -> String {
        guard let text = POSIX.readFile(path, limit: 1 << 20) else { return "" }
        return String(text.suffix(bytes))
    }
}

/// Runs blocking work (a pull, an unpack, `runc create`) on a thread of its own, so that it
/// never holds one of the few threads of Swift's cooperative pool (two on a small device).
enum OffPool {
    private final class Job: @unchecked Sendable {
        let work: () -> Void
        init(_ work: @escaping () -> Void) { self.work = work }
    }

    static func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
            let job = Job { continuation.resume(returning: body()) }
            let raw = Unmanaged.passRetained(job).toOpaque()
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { argument in
                guard let argument else { return nil }
                Unmanaged<Job>.fromOpaque(argument).takeRetainedValue().work()
                return nil
            }, raw)
            if rc == 0 {
                pthread_detach(thread)
            } else {
                // No thread to be had: do it here rather than not at all.
                Unmanaged<Job>.fromOpaque(raw).takeRetainedValue().work()
            }
        }
    }
}
