#if canImport(Glibc)
import Glibc
#endif
import DroverCore
import DroverJSON
import DroverPOSIX

/// Runs replicas as OCI containers under runc, each watched by its own `conmon`: conmon runs
/// `runc create`, holds the container's stdio (written to the replica's log) and, when the
/// container ends, writes its exit code and whether the kernel's OOM killer struck. conmon is
/// not the agent's child and outlives it, so an agent restart or upgrade neither stops a
/// container nor loses how it ended.
///
/// Per replica, in `replicas/<id>/`: `bundle/config.json` (the rootfs is the image's, shared
/// read-only), `state/` (conmon's pid files, `exit`, `oom`, runc's own log) and `output.log`
/// (conmon's k8s-file format: `TIME STREAM F|P TEXT`). runc's state lives under
/// `<data dir>/containers/runc`; the cgroup is `<cgroupParent>/<replica id>`.
public struct RuncDriver: RuntimeDriver {
    public let kind = RuntimeKind.runc
    public var startsInBackground: Bool { true }
    let runc: String
    let conmon: String
    let runcRoot: String
    let host: ContainerHost
    var images: ImageStore { host.images }
    var commands: HostCommand { host.commands }

    public init(runc: String, conmon: String, host: ContainerHost) {
        self.runc = runc
        self.conmon = conmon
        self.host = host
        runcRoot = host.dataDir + "/containers/runc"
        POSIX.makeDirectories(runcRoot, mode: 0o700)
    }

    /// runc and conmon as this machine has them, or nil; only root can run containers here
    /// (no user namespaces).
    public static func available(_ host: ContainerHost) -> RuncDriver? {
        guard geteuid() == 0, ContainerHost.executable("/bin/tar"),
            let runc = ["/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc"].first(where: ContainerHost.executable),
            let conmon = ["/usr/bin/conmon", "/usr/libexec/podman/conmon", "/usr/local/bin/conmon"].first(where: ContainerHost.executable)
        else { return nil }
        return RuncDriver(runc: runc, conmon: conmon, host: host)
    }

    public func isReady(_ spec: ReplicaSpec) -> Bool {
        spec.image.flatMap(ImageReference.init(parsing:))?.digest.flatMap(images.unpackedPath) != nil
    }

    /// Pulls the replica's image (resuming, verifying) and unpacks it, off the cooperative pool.
    public func prepare(_ spec: ReplicaSpec) async throws(RuntimeError) {
        guard let image = spec.image, let digest = ImageReference(parsing: image)?.digest else {
            throw RuntimeError("a runc replica needs an image pinned to a digest")
        }
        let (images, commands) = (images, commands)
        let failure: String? = await OffPool.run {
            do throws(ImageStore.PullError) {
                let pulled = try images.pull(image)
                _ = try images.unpack(pulled, as: digest, commands: commands)
                return nil
            } catch {
                return error.description
            }
        }
        if let failure { throw RuntimeError("image \(image): \(failure)") }
    }

    func paths(_ directory: String) -> (bundle: String, state: String) { (directory + "/bundle", directory + "/state") }

    public func start(_ spec: ReplicaSpec, name: String, directory: String, logPath: String) throws(RuntimeError) -> RuntimeProcess {
        guard let digest = spec.image.flatMap(ImageReference.init(parsing:))?.digest, let unpacked = images.unpackedPath(digest) else {
            throw RuntimeError("the image \(spec.image ?? "(none)") is not on this device yet")
        }
        let imageConfig = POSIX.readFile(unpacked + "/config.json", limit: 4 << 20).flatMap { try? JSON.decode(ImageConfig.self, from: Array($0.utf8)) }
        guard let imageConfig else { throw RuntimeError("the image config of \(digest) is unreadable") }
        let rootfs = unpacked + "/rootfs"
        let user = try ContainerUser.resolve(spec: spec.user, image: imageConfig.config?.User, workloadUser: host.workloadUser, rootfs: rootfs)
        let mounts = try spec.volumes.map { mount throws(RuntimeError) in (source: try host.volumes.directory(mount, of: spec.workload, for: user), mount: mount) }
        let config = try OCIRuntimeConfig(
            spec: spec, image: imageConfig.config ?? ImageConfig.Config(), user: user, rootfs: rootfs, volumes: mounts,
            cgroupsPath: host.cgroupParent + "/" + name, pidsLimit: host.pidsLimit)

        let (bundle, state) = paths(directory)
        // Whatever an earlier run left (a reboot, a crash mid-start) goes first.
        if POSIX.exists(runcRoot + "/" + name) {
            _ = commands.run(runc, ["--root", runcRoot, "delete", "--force", name], outputPath: directory + "/runc-delete.log", timeout: .seconds(10))
        }
        POSIX.removeTree(state)
        POSIX.makeDirectories(bundle, mode: 0o700)
        POSIX.makeDirectories(state, mode: 0o700)
        do {
            try OwnerOnlyFile.write(try config.encoded(), to: bundle + "/config.json")
        } catch {
            throw RuntimeError("cannot write the bundle: \(error)")
        }
        let launched = commands.run(
            conmon,
            [
                "--api-version", "1", "-c", name, "-u", name, "-n", name, "-r", runc, "-b", bundle,
                "-p", state + "/container.pid", "-P", state + "/conmon.pid", "-l", "k8s-file:" + logPath,
                "--log-size-max", "\(16 << 20)", "--exit-dir", state, "-0", state, "--socket-dir-path", state,
                "--runtime-arg", "--root=" + runcRoot, "--runtime-arg", "--log=" + state + "/runc.log",
            ], outputPath: state + "/conmon.log", directory: state, timeout: .seconds(30))
        guard launched.succeeded else { throw RuntimeError("conmon did not start: \(launched.lastLine)") }

        // conmon runs `runc create` in the background; the container's pid file marks its end.
        let deadline = ContinuousClock.now + .seconds(30)
        var created: Int32?
        while created == nil {
            created = POSIX.readFile(state + "/container.pid").flatMap { Int32($0.filter(\.isNumber)) }
            if created != nil { break }
            // conmon gone without a container: `runc create` failed, and runc's log says why.
            let monitorGone = POSIX.exists(state + "/conmon.pid") && !monitorAlive(state) && !POSIX.exists(state + "/container.pid")
            if monitorGone || ContinuousClock.now > deadline {
                _ = commands.run(runc, ["--root", runcRoot, "delete", "--force", name], outputPath: state + "/runc-delete.log", timeout: .seconds(10))
                throw RuntimeError("runc create failed: \(monitorGone ? runcError(state) : "no container after 30 s")")
            }
            usleep(2000)
        }
        guard let pid = created else { throw RuntimeError("runc create failed: \(runcError(state))") }
        let started = commands.run(runc, ["--root", runcRoot, "--log", state + "/runc.log", "start", name], outputPath: state + "/runc-start.log", timeout: .seconds(30))
        guard started.succeeded else {
            _ = commands.run(runc, ["--root", runcRoot, "delete", "--force", name], outputPath: state + "/runc-delete.log", timeout: .seconds(10))
            throw RuntimeError("runc start failed: \(runcError(state))")
        }
        // A pid already gone gets start ticks no process has: it never passes for a live one.
        return RuntimeProcess(pid: pid, startTicks: POSIX.startTicks(pid) ?? -1, replica: name, directory: directory)
    }

    /// The last error runc logged (its `--log` is JSON-free text: `time=… level=error msg="…"`).
    func runcError(_ state: String) -> String {
        let lines = HostCommand.tail(state + "/runc.log").split(separator: "\n").map(String.init)
        guard let line = lines.last(where: { $0.containsBytes("level=error") }) ?? lines.last else { return "no error logged (see \(state)/conmon.log)" }
        if let range = line.range(ofBytes: "msg=\"") {
            return String(line[range.upperBound...].dropLast(line.hasSuffix("\"") ? 1 : 0)).replacingBytes("\\\"", with: "\"")
        }
        return String(line.prefix(500))
    }

    /// Whether this replica's conmon still runs (it has yet to record the exit).
    func monitorAlive(_ state: String) -> Bool {
        guard let pid = POSIX.readFile(state + "/conmon.pid").flatMap({ Int32($0.filter(\.isNumber)) }), pid > 0 else { return false }
        return POSIX.isAlive(pid: pid, startTicks: nil) && (POSIX.readFile("/proc/\(pid)/comm")?.hasPrefix("conmon") ?? false)
    }

    public func state(of process: RuntimeProcess) -> ProcessState {
        if POSIX.isAlive(pid: process.pid, startTicks: process.startTicks) { return .running }
        guard let directory = process.directory, let id = process.replica else { return .ended(nil, reason: nil) }
        let state = paths(directory).state
        // Ended, and conmon is writing down how: a moment more.
        if monitorAlive(state), !POSIX.exists(state + "/exit") { return .running }
        let code = POSIX.readFile(state + "/exit").flatMap { Int32($0.filter { $0.isNumber || $0 == "-" }) }
        let oom = POSIX.exists(state + "/oom")
        _ = commands.run(runc, ["--root", runcRoot, "delete", "--force", id], outputPath: state + "/runc-delete.log", timeout: .seconds(10))
        return .ended(code.map { .exited($0) }, reason: oom ? "OOMKilled" : nil)
    }

    /// `runc exec`: in the container's namespaces, as its user, with its environment.
    public func probe(_ command: [String], in process: RuntimeProcess, spec: ReplicaSpec, timeout: Duration) -> ProbeCheck.Outcome {
        let log = (process.directory ?? runcRoot) + "/probe.log"
        return ProbeCheck.outcome(command, commands.run(runc, ["--root", runcRoot, "exec", process.replica ?? spec.id] + command, outputPath: log, timeout: timeout))
    }

    public func stop(_ process: RuntimeProcess, grace: Duration) async {
        guard let id = process.replica else { return }
        let state = process.directory.map { paths($0).state } ?? "/dev/null"
        let log = process.directory.map { $0 + "/runc-stop.log" } ?? "/dev/null"
        if POSIX.isAlive(pid: process.pid, startTicks: process.startTicks) {
            _ = commands.run(runc, ["--root", runcRoot, "kill", id, "TERM"], outputPath: log, timeout: .seconds(10))
            let deadline = ContinuousClock.now + grace
            while ContinuousClock.now < deadline, POSIX.isAlive(pid: process.pid, startTicks: process.startTicks) {
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
        // Whatever is left in the container, its first process or others that ignored TERM.
        _ = commands.run(runc, ["--root", runcRoot, "kill", "--all", id, "KILL"], outputPath: log, timeout: .seconds(10))
        for _ in 0..<100 where monitorAlive(state) { try? await Task.sleep(for: .milliseconds(20)) }
        _ = commands.run(runc, ["--root", runcRoot, "delete", "--force", id], outputPath: log, timeout: .seconds(10))
    }
}
