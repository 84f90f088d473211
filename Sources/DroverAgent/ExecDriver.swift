#if canImport(Glibc)
import Glibc
#endif
import DroverPOSIX
import DroverCore

/// Runs a replica as a plain process in its own process group, with stdout and stderr
/// appended to its log file and a clean environment.
public struct ExecDriver: RuntimeDriver {
    public let kind = RuntimeKind.exec
    let reaper: ChildReaper
    /// Whom replicas without `user` run as, when the agent is root; nil: as the agent.
    let workloadUser: String?

    public init(reaper: ChildReaper, workloadUser: String? = nil) {
        self.reaper = reaper
        self.workloadUser = workloadUser
    }

    static let basePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// The replica works in `<directory>/work`, which is its own (and its HOME); its log
    /// stays in `directory`, which is the agent's: a replica cannot put a link where the
    /// agent, as root, writes, copies or truncates.
    func environment(_ spec: ReplicaSpec, work: String) -> [String: String] {
        var environment = ["PATH": Self.basePath, "HOME": work, "DROVER_REPLICA": spec.id, "DROVER_WORKLOAD": spec.workload]
        for (k, v) in spec.env { environment[k] = v }
        return environment
    }

    /// An agent that is not root runs replicas as itself; a root one as the workload user,
    /// and as root only when the manifest says so.
    func identity(_ spec: ReplicaSpec) throws(RuntimeError) -> Spawn.Identity? {
        try RunAs.identity(spec.user ?? (geteuid() == 0 ? workloadUser : nil))
    }

    public func probe(_ command: [String], in process: RuntimeProcess, spec: ReplicaSpec, timeout: Duration) -> ProbeCheck.Outcome {
        guard let directory = process.directory, let program = command.first else { return ProbeCheck.Outcome(ok: false, detail: "no command") }
        let identity: Spawn.Identity?
        do { identity = try self.identity(spec) } catch { return ProbeCheck.Outcome(ok: false, detail: error.message) }
        let result = HostCommand(reaper: reaper).run(
            program, Array(command.dropFirst()), outputPath: directory + "/probe.log", directory: directory + "/work",
            environment: environment(spec, work: directory + "/work"), timeout: timeout, identity: identity, searchPath: true)
        return ProbeCheck.outcome(command, result)
    }

    public func start(_ spec: ReplicaSpec, name: String, directory: String, logPath: String) throws(RuntimeError) -> RuntimeProcess {
        guard let program = spec.command.first, !program.isEmpty else { throw RuntimeError("command is empty") }
        let work = directory + "/work"
        let environment = environment(spec, work: work)
        let identity = try identity(spec)
        if mkdir(work, 0o750) != 0, errno != EEXIST {
            throw RuntimeError("cannot make \(work): \(String(cString: strerror(errno)))")
        }
        if let identity, lchown(work, identity.uid, identity.gid) != 0 {
            throw RuntimeError("cannot give \(work) to uid \(identity.uid): \(String(cString: strerror(errno)))")
        }
        var spawn = Spawn(executable: program, arguments: Array(spec.command.dropFirst()), environment: environment)
        spawn.identity = identity
        spawn.outputPath = logPath
        spawn.directory = work
        // Own process group (pgid = pid), so that stopping the replica reaches all it started.
        spawn.newProcessGroup = true
        // A bare program name is looked up in the agent's PATH.
        spawn.searchPath = true
        let pid: pid_t
        do {
            pid = try spawn.run()
        } catch {
            throw RuntimeError(error.description)
        }
        return RuntimeProcess(pid: pid, startTicks: POSIX.startTicks(pid))
    }

    public func state(of process: RuntimeProcess) -> ProcessState {
        reaper.reap(process.pid)
        if let status = reaper.takeStatus(of: process.pid) { return .ended(status, reason: nil) }
        return POSIX.isAlive(pid: process.pid, startTicks: process.startTicks) ? .running : .ended(nil, reason: nil)
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
