import DroverCore
import DroverJSON
import DroverPOSIX

/// The parts of an image config (OCI image spec, `config` object) a container starts from.
struct ImageConfig: Decodable, Sendable {
    struct Config: Decodable, Sendable {
        var User: String?
        var Env: [String]?
        var Entrypoint: [String]?
        var Cmd: [String]?
        var WorkingDir: String?
    }
    var config: Config?
}

/// An OCI runtime config (`config.json` of a bundle), as much of the runtime spec as Drover
/// sets. Built from the image config and the workload:
/// - the process: the workload's `command` replaces the image's entrypoint and cmd together;
///   the image's env, then the workload's; its working directory; the user (see `ContainerUser`);
///   no new privileges, and Docker's default capabilities only for a root process;
/// - limits: `resources.cpu` → a CFS quota, `resources.memory` → the memory limit (swap
///   included, so no swap), a pids limit;
/// - a read-only rootfs with a private /tmp and the workload's named volumes; no devices but
///   runc's defaults; a seccomp denylist (`seccomp(arch:)`); the host's network (no network namespace) with
///   its `/etc/resolv.conf` and `/etc/hosts`; own pid, ipc and mount namespaces.
struct OCIRuntimeConfig: Encodable {
    struct User: Encodable { var uid: UInt32; var gid: UInt32; var additionalGids: [UInt32]? }
    struct Capabilities: Encodable { var bounding, effective, permitted, inheritable, ambient: [String] }
    struct RLimit: Encodable { var type: String; var hard: UInt64; var soft: UInt64 }
    struct Process: Encodable {
        var terminal = false
        var user: User
        var args: [String]
        var env: [String]
        var cwd: String
        var capabilities: Capabilities
        var rlimits: [RLimit]
        var noNewPrivileges = true
    }
    struct Root: Encodable { var path: String; var readonly: Bool }
    struct Mount: Encodable { var destination: String; var type: String; var source: String; var options: [String] }
    struct Namespace: Encodable { var type: String }
    struct Memory: Encodable { var limit: Int64; var swap: Int64 }
    struct CPU: Encodable { var quota: Int64; var period: UInt64 }
    struct Pids: Encodable { var limit: Int64 }
    struct DeviceRule: Encodable { var allow: Bool; var access: String }
    struct Resources: Encodable {
        var memory: Memory?
        var cpu: CPU?
        var pids: Pids
        /// Deny every device; runc then allows only its defaults (null, zero, random, tty, ...).
        var devices = [DeviceRule(allow: false, access: "rwm")]
    }
    struct SyscallArg: Encodable { var index: Int; var value: UInt64; var valueTwo: UInt64; var op: String }
    struct SyscallRule: Encodable { var names: [String]; var action: String; var errnoRet: Int; var args: [SyscallArg]? }
    struct Seccomp: Encodable { var defaultAction: String; var architectures: [String]; var syscalls: [SyscallRule] }
    struct Linux: Encodable {
        var namespaces: [Namespace]
        var cgroupsPath: String
        var resources: Resources
        var maskedPaths: [String]
        var readonlyPaths: [String]
        var seccomp: Seccomp
    }

    var ociVersion = "1.0.2"
    var process: Process
    var root: Root
    var hostname: String?
    var mounts: [Mount]
    var linux: Linux

    /// Docker's default set, for a process that runs as root in its container.
    static let rootCapabilities = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID",
        "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
    ]

    static let cfsPeriod: UInt64 = 100_000

    /// `volumes`: each of the spec's volumes with its directory on the device.
    init(
        spec: ReplicaSpec, image: ImageConfig.Config, user: Spawn.Identity, rootfs: String, volumes: [(source: String, mount: VolumeMount)],
        cgroupsPath: String, pidsLimit: Int64
    ) throws(RuntimeError) {
        let args = spec.command.isEmpty ? (image.Entrypoint ?? []) + (image.Cmd ?? []) : spec.command
        guard let program = args.first, !program.isEmpty else {
            throw RuntimeError("the image names no command (entrypoint or cmd) and the workload gives none")
        }
        var env: [String: String] = ["PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        for entry in image.Env ?? [] {
            guard let eq = entry.firstIndex(of: "=") else { continue }
            env[String(entry[..<eq])] = String(entry[entry.index(after: eq)...])
        }
        env["HOME"] = env["HOME"] ?? (user.uid == 0 ? "/root" : "/tmp")
        env["DROVER_REPLICA"] = spec.id
        env["DROVER_WORKLOAD"] = spec.workload
        for (k, v) in spec.env { env[k] = v }
        let caps = user.uid == 0 ? Self.rootCapabilities : []
        process = Process(
            user: User(uid: user.uid, gid: user.gid, additionalGids: user.groups.isEmpty ? nil : user.groups), args: args,
            env: env.keys.sorted().map { "\($0)=\(env[$0] ?? "")" }, cwd: image.WorkingDir.flatMap { $0.hasPrefix("/") ? $0 : nil } ?? "/",
            capabilities: Capabilities(bounding: Self.rootCapabilities, effective: caps, permitted: caps, inheritable: [], ambient: []),
            rlimits: [RLimit(type: "RLIMIT_NOFILE", hard: 4096, soft: 1024)])
        root = Root(path: rootfs, readonly: true)
        mounts = [
            Mount(destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"]),
            Mount(destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"]),
            Mount(destination: "/dev/pts", type: "devpts", source: "devpts", options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]),
            Mount(destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
            Mount(destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"]),
            Mount(destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"]),
            Mount(destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "mode=1777", "size=65536k"]),
            Mount(destination: "/etc/resolv.conf", type: "bind", source: "/etc/resolv.conf", options: ["rbind", "ro", "nosuid", "nodev", "noexec"]),
            Mount(destination: "/etc/hosts", type: "bind", source: "/etc/hosts", options: ["rbind", "ro", "nosuid", "nodev", "noexec"]),
        ] + volumes.map { volume in
            Mount(destination: volume.mount.path, type: "bind", source: volume.source, options: ["rbind", volume.mount.readOnly ? "ro" : "rw", "nosuid", "nodev"])
        }
        let memory = spec.resources.memoryBytes > 0 ? Memory(limit: spec.resources.memoryBytes, swap: spec.resources.memoryBytes) : nil
        // cpuMillis is at most a few thousand (checked at decode); the product cannot overflow.
        let cpu = spec.resources.cpuMillis > 0 ? CPU(quota: Int64(spec.resources.cpuMillis) * Int64(Self.cfsPeriod) / 1000, period: Self.cfsPeriod) : nil
        linux = Linux(
            namespaces: [Namespace(type: "pid"), Namespace(type: "ipc"), Namespace(type: "mount")], cgroupsPath: cgroupsPath,
            resources: Resources(memory: memory, cpu: cpu, pids: Pids(limit: pidsLimit)),
            maskedPaths: [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
            ],
            readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
            seccomp: Self.seccomp(arch: MachineInfo.arch()))
    }

    /// Calls a workload has no business making, refused with EPERM (the rest allowed): new
    /// user or other namespaces (`unshare`, `clone` with CLONE_NEWUSER; `clone3` answers
    /// ENOSYS so that libc falls back to `clone`, whose flags can be checked), keyrings, BPF,
    /// perf, userfaultfd, mounts, modules, kexec, reboot, swap, accounting, the kernel log.
    /// A denylist in the spirit of Docker's default profile, small enough to read.
    static func seccomp(arch: String) -> Seccomp {
        let architectures = arch == "arm64" ? ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"] : ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
        let denied = [
            "unshare", "setns", "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd", "mount", "umount2", "pivot_root",
            "swapon", "swapoff", "reboot", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
            "open_by_handle_at", "name_to_handle_at", "acct", "quotactl", "lookup_dcookie", "syslog",
        ]
        let cloneNewUser: UInt64 = 0x1000_0000
        return Seccomp(
            defaultAction: "SCMP_ACT_ALLOW", architectures: architectures,
            syscalls: [
                SyscallRule(names: denied, action: "SCMP_ACT_ERRNO", errnoRet: 1, args: nil),
                SyscallRule(names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: 38, args: nil),
                SyscallRule(
                    names: ["clone"], action: "SCMP_ACT_ERRNO", errnoRet: 1,
                    args: [SyscallArg(index: arch == "s390x" ? 1 : 0, value: cloneNewUser, valueTwo: cloneNewUser, op: "SCMP_CMP_MASKED_EQ")]),
            ])
    }

    func encoded() throws(RuntimeError) -> [UInt8] {
        do {
            return try JSON.encode(self)
        } catch {
            throw RuntimeError("cannot encode the runtime config: \(error)")
        }
    }
}
