#if canImport(Glibc)
import Glibc
#endif
import DroverCore
import DroverJSON
import DroverPOSIX

/// Runs replicas as containers through podman (for devices that have it), with the semantics
/// of the runc driver: the image comes through the agent's own store (verified, resumable) and
/// is handed to podman as an OCI layout; the command, env, user, limits, read-only rootfs,
/// host network and volumes are the same; podman's conmon keeps each container past an agent
/// restart, and `podman inspect` says how it ended (`OOMKilled` from the kernel's log where
/// podman misses it).
///
/// podman keeps its state under `<data dir>/containers/podman/` (its own storage, and a
/// containers.conf: runc as the runtime and explicit ulimits, which podman 4.3
/// needs on these machines); containers are named `drover-<replica id>`.
public struct PodmanDriver: RuntimeDriver {
    public let kind = RuntimeKind.podman
    public var startsInBackground: Bool { true }
    let podman: String
    let host: ContainerHost
    let base: String
    /// podman's run and tmp dirs: on /run (gone at a reboot, as podman expects), and short,
    /// since podman refuses a run root of more than 50 characters.
    let runRoot: String
    var images: ImageStore { host.images }
    var commands: HostCommand { host.commands }

    public init(podman: String, host: ContainerHost) {
        self.podman = podman
        self.host = host
        base = host.dataDir + "/containers/podman"
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in base.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        runRoot = "/run/drover/podman-" + String(hash, radix: 16)
        POSIX.makeDirectories(base + "/images", mode: 0o700)
        _ = try? OwnerOnlyFile.write(
            "[containers]\ndefault_ulimits = [\"nofile=4096:4096\", \"nproc=4096:4096\"]\n[engine]\nruntime = \"runc\"\n", to: base + "/containers.conf")
    }

    public static func available(_ host: ContainerHost) -> PodmanDriver? {
        guard geteuid() == 0, let podman = ["/usr/bin/podman", "/usr/local/bin/podman"].first(where: ContainerHost.executable) else { return nil }
        return PodmanDriver(podman: podman, host: host)
    }

    func run(_ arguments: [String], log: String, timeout: Duration = .seconds(120)) -> HostCommand.Result {
        commands.run(
            podman, ["--root", base + "/root", "--runroot", runRoot + "/run", "--tmpdir", runRoot + "/tmp", "--cgroup-manager", "cgroupfs", "--events-backend", "none"] + arguments,
            // In podman's own directory: its conmon writes files (`oom`) where it was started.
            outputPath: log, directory: base, environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CONTAINERS_CONF": base + "/containers.conf"], timeout: timeout)
    }

    /// The image id podman gave an image, by the digest the workload names; nil until loaded.
    func loadedImage(_ digest: String) -> String? {
        guard let hex = OCI.hex(ofDigest: digest) else { return nil }
        return POSIX.readFile(base + "/images/" + hex).map { $0.filter(\.isHexDigit) }.flatMap { $0.isEmpty ? nil : $0 }
    }

    public func isReady(_ spec: ReplicaSpec) -> Bool {
        spec.image.flatMap(ImageReference.init(parsing:))?.digest.flatMap(loadedImage) != nil
    }

    /// Pulls into the agent's store, then loads the image into podman from an OCI layout.
    public func prepare(_ spec: ReplicaSpec) async throws(RuntimeError) {
        guard let image = spec.image, let digest = ImageReference(parsing: image)?.digest, let hex = OCI.hex(ofDigest: digest) else {
            throw RuntimeError("a podman replica needs an image pinned to a digest")
        }
        let driver = self
        let failure: String? = await OffPool.run {
            do throws(ImageStore.PullError) {
                let pulled = try driver.images.pull(image)
                return driver.load(pulled, as: hex)
            } catch {
                return error.description
            }
        }
        if let failure { throw RuntimeError("image \(image): \(failure)") }
    }

    func load(_ pulled: ImageStore.Pulled, as hex: String) -> String? {
        guard let manifestHex = OCI.hex(ofDigest: pulled.manifest), let configHex = OCI.hex(ofDigest: pulled.config),
            let manifest = POSIX.readFile(images.blobPath(manifestHex), limit: 4 << 20)
        else { return "the pulled manifest is not in the store" }
        // podman names the image after the layout's path, which must be lowercase: under the
        // run root, which is. The blobs are links to the store's.
        let layout = runRoot + "/layout-\(hex)"
        POSIX.removeTree(layout)
        defer { POSIX.removeTree(layout) }
        POSIX.makeDirectories(layout + "/blobs/sha256", mode: 0o700)
        for blob in [manifestHex, configHex] + pulled.layers.compactMap(OCI.hex(ofDigest:)) {
            if symlink(images.blobPath(blob), layout + "/blobs/sha256/" + blob) != 0 { return "cannot link \(blob) into the layout: \(POSIX.errorText(errno))" }
        }
        let mediaType = (try? JSON.decode(MediaTyped.self, from: Array(manifest.utf8)))?.mediaType ?? "application/vnd.oci.image.manifest.v1+json"
        let index = LayoutIndex(manifests: [.init(mediaType: mediaType, digest: pulled.manifest, size: manifest.utf8.count, annotations: ["org.opencontainers.image.ref.name": "drover"])])
        do {
            try OwnerOnlyFile.write(#"{"imageLayoutVersion":"1.0.0"}"#, to: layout + "/oci-layout")
            try OwnerOnlyFile.write(JSON.encode(index), to: layout + "/index.json")
        } catch {
            return "\(error)"
        }
        let loaded = run(["pull", "--quiet", "oci:" + layout + ":drover"], log: base + "/pull-\(hex).log")
        unlink(base + "/pull-\(hex).log")
        guard loaded.succeeded else { return "podman cannot load it: \(loaded.lastLine)" }
        do {
            try OwnerOnlyFile.write(configHex + "\n", to: base + "/images/" + hex)
        } catch {
            return "\(error)"
        }
        return nil
    }

    struct MediaTyped: Decodable { var mediaType: String? }
    struct LayoutIndex: Encodable {
        struct Entry: Encodable { var mediaType: String; var digest: String; var size: Int; var annotations: [String: String] }
        var schemaVersion = 2
        var manifests: [Entry]
    }

    /// `drover-ID`, and `drover1-ID` for the instance `ID+1` (podman names take no `+`).
    static func name(_ instance: String) -> String {
        guard let plus = instance.lastIndex(of: "+") else { return "drover-" + instance }
        return "drover" + instance[instance.index(after: plus)...] + "-" + instance[..<plus]
    }

    public func start(_ spec: ReplicaSpec, name: String, directory: String, logPath: String) throws(RuntimeError) -> RuntimeProcess {
        guard let digest = spec.image.flatMap(ImageReference.init(parsing:))?.digest, let imageID = loadedImage(digest) else {
            throw RuntimeError("the image \(spec.image ?? "(none)") is not on this device yet")
        }
        // The user is resolved as for runc: names from the device (podman reads the image's own).
        let user = try ContainerUser.resolve(spec: spec.user, image: nil, workloadUser: host.workloadUser, rootfs: "/nonexistent")
        var arguments = [
            "run", "--detach", "--replace", "--pull", "never", "--image-volume", "ignore", "--name", Self.name(name), "--network", "host", "--read-only",
            "--user", "\(user.uid):\(user.gid)", "--security-opt", "no-new-privileges", "--pids-limit", "\(host.pidsLimit)",
            "--cgroup-parent", host.cgroupParent, "--log-driver", "k8s-file", "--log-opt", "path=" + logPath, "--pidfile", directory + "/container.pid",
            "--env", "DROVER_REPLICA=" + spec.id, "--env", "DROVER_WORKLOAD=" + spec.workload,
        ]
        if user.uid != 0 { arguments += ["--cap-drop", "all"] }
        if spec.resources.memoryBytes > 0 { arguments += ["--memory", "\(spec.resources.memoryBytes)", "--memory-swap", "\(spec.resources.memoryBytes)"] }
        if spec.resources.cpuMillis > 0 {
            arguments += ["--cpu-period", "\(OCIRuntimeConfig.cfsPeriod)", "--cpu-quota", "\(Int64(spec.resources.cpuMillis) * Int64(OCIRuntimeConfig.cfsPeriod) / 1000)"]
        }
        for (k, v) in spec.env.sorted(by: { $0.key < $1.key }) { arguments += ["--env", "\(k)=\(v)"] }
        for mount in spec.volumes {
            let source = try host.volumes.directory(mount, of: spec.workload, for: user)
            arguments += ["--volume", "\(source):\(mount.path):\(mount.readOnly ? "ro" : "rw")"]
        }
        if let program = spec.command.first {
            arguments += ["--entrypoint", program, imageID] + spec.command.dropFirst()
        } else {
            arguments.append(imageID)
        }
        POSIX.makeDirectories(directory, mode: 0o755)
        unlink(directory + "/container.pid")
        let started = run(arguments, log: directory + "/podman.log", timeout: .seconds(60))
        guard started.succeeded else {
            _ = run(["rm", "--force", "--volumes", "--ignore", Self.name(name)], log: directory + "/podman.log")
            throw RuntimeError("podman run failed: \(started.lastLine)")
        }
        // The pid file stays when the container is gone already (killed at once): `state` then
        // finds it ended and asks podman (and the kernel's log) how.
        guard let pid = POSIX.readFile(directory + "/container.pid").flatMap({ Int32($0.filter(\.isNumber)) }), pid > 0 else {
            _ = run(["rm", "--force", "--volumes", "--ignore", Self.name(name)], log: directory + "/podman.log")
            throw RuntimeError("podman started \(Self.name(name)) but wrote no pid")
        }
        // A pid already gone gets start ticks no process has: it never passes for a live one.
        return RuntimeProcess(pid: pid, startTicks: POSIX.startTicks(pid) ?? -1, replica: name, directory: directory)
    }

    public func state(of process: RuntimeProcess) -> ProcessState {
        if POSIX.isAlive(pid: process.pid, startTicks: process.startTicks) { return .running }
        guard let id = process.replica else { return .ended(nil, reason: nil) }
        let log = (process.directory ?? base) + "/podman.log"
        let inspected = run(["inspect", "--format", "{{.State.Status}} {{.State.ExitCode}} {{.State.OOMKilled}}", Self.name(id)], log: log)
        let fields = inspected.output.split(whereSeparator: \.isWhitespace)
        // Ended, and podman's conmon is writing down how: a moment more.
        if inspected.succeeded, fields.first == "running" || fields.first == "stopping" { return .running }
        let code = inspected.succeeded && fields.count >= 3 ? Int32(fields[1]) : nil
        let oom = inspected.succeeded && fields.count >= 3 && fields[2] == "true" || code == 137 && KernelLog.oomKilled(pid: process.pid)
        _ = run(["rm", "--force", "--volumes", "--ignore", Self.name(id)], log: log)
        return .ended(code.map { .exited($0) }, reason: oom ? "OOMKilled" : nil)
    }

    public func probe(_ command: [String], in process: RuntimeProcess, spec: ReplicaSpec, timeout: Duration) -> ProbeCheck.Outcome {
        ProbeCheck.outcome(command, run(["exec", Self.name(process.replica ?? spec.id)] + command, log: (process.directory ?? base) + "/probe.log", timeout: timeout))
    }

    public func stop(_ process: RuntimeProcess, grace: Duration) async {
        guard let id = process.replica else { return }
        let log = (process.directory ?? base) + "/podman.log"
        let seconds = max(0, Int(grace.components.seconds))
        let driver = self
        await OffPool.run {
            _ = driver.run(["stop", "--ignore", "--time", "\(seconds)", Self.name(id)], log: log, timeout: .seconds(Int64(seconds) + 30))
            _ = driver.run(["rm", "--force", "--volumes", "--ignore", Self.name(id)], log: log)
        }
    }
}
