#if canImport(Glibc)
import Glibc
#endif
import CDroverSys
import DroverCore

/// Runs a replica as a plain process in its own process group, with stdout and stderr
/// appended to its log file and a clean environment.
public struct ExecDriver: RuntimeDriver {
    public let kind = RuntimeKind.exec
    let reaper: ChildReaper

    public init(reaper: ChildReaper) {
        self.reaper = reaper
    }

    static let basePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    public func start(_ spec: ReplicaSpec, directory: String, logPath: String) throws(RuntimeError) -> RuntimeProcess {
        guard let program = spec.command.first, !program.isEmpty else { throw RuntimeError("command is empty") }
        var environment = ["PATH": Self.basePath, "HOME": directory, "DROVER_REPLICA": spec.id, "DROVER_WORKLOAD": spec.workload]
        for (k, v) in spec.env { environment[k] = v }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o640)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        drover_spawn_addclosefrom(&actions, 3)
        drover_spawn_addchdir(&actions, directory)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Own process group (pgid = pid) so that stopping the replica reaches all it started;
        // default dispositions and an empty mask, because signals the agent ignores or
        // blocks would otherwise be ignored by the replica too.
        var all = sigset_t()
        sigfillset(&all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = spec.command.map { strdup($0) } + [nil]
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        // posix_spawnp searches the agent's PATH for a bare program name.
        let rc = posix_spawnp(&pid, program, &actions, &attributes, argv, envp)
        guard rc == 0 else { throw RuntimeError("cannot start \(program): \(POSIX.errorText(rc))") }
        return RuntimeProcess(pid: pid, startTicks: POSIX.startTicks(pid))
    }

    public func state(of process: RuntimeProcess) -> ProcessState {
        reaper.reap(process.pid)
        if let status = reaper.takeStatus(of: process.pid) { return .ended(status) }
        return POSIX.isAlive(pid: process.pid, startTicks: process.startTicks) ? .running : .ended(nil)
    }

    public func stop(_ process: RuntimeProcess, grace: Duration) async {
        let group = -process.pid
        // Only signal the group while its leader is provably ours: a recycled pid must not be hit.
        guard POSIX.isAlive(pid: process.pid, startTicks: process.startTicks) else {
            kill(group, SIGKILL)  // stragglers of an already dead leader; ESRCH when none
            reaper.reap(process.pid)
            return
        }
        kill(group, SIGTERM)
        let deadline = ContinuousClock.now + grace
        while ContinuousClock.now < deadline {
            reaper.reap(process.pid)
            if !POSIX.isAlive(pid: process.pid, startTicks: process.startTicks) { break }
            try? await Task.sleep(for: .milliseconds(50))
        }
        // Whatever is left of the group, leader or children that ignored SIGTERM.
        kill(group, SIGKILL)
        for _ in 0..<40 {
            reaper.reap(process.pid)
            if !POSIX.isAlive(pid: process.pid, startTicks: process.startTicks) { break }
            try? await Task.sleep(for: .milliseconds(25))
        }
        _ = reaper.takeStatus(of: process.pid)
    }
}
