#if canImport(Glibc)
import Glibc
#endif
import DroverCore
import DroverPOSIX

/// What both container drivers share: where the agent keeps things, the image store, how
/// helpers are run, the cgroup parent, the workload user and the pids limit.
public struct ContainerHost: Sendable {
    let dataDir: String
    let cgroupParent: String
    let images: ImageStore
    let commands: HostCommand
    let workloadUser: String?
    let volumes: VolumeDirectories
    let pidsLimit: Int64

    public init(dataDir: String, cgroupParent: String, images: ImageStore, reaper: ChildReaper, workloadUser: String?, pidsLimit: Int64 = 1024) {
        self.dataDir = dataDir
        self.cgroupParent = cgroupParent
        self.images = images
        commands = HostCommand(reaper: reaper)
        self.workloadUser = workloadUser
        volumes = VolumeDirectories(root: dataDir + "/volumes")
        self.pidsLimit = pidsLimit
    }

    static func executable(_ path: String) -> Bool { access(path, X_OK) == 0 }
}

/// Named volumes under `<data dir>/volumes/<workload>/<name>`, for both container drivers.
struct VolumeDirectories: Sendable {
    let root: String

    /// The directory of a named volume, made on first use and given to the container's user;
    /// an existing one is left as it is (its owner may have changed it).
    func directory(_ mount: VolumeMount, of workload: String, for user: Spawn.Identity) throws(RuntimeError) -> String {
        let path = root + "/" + workload + "/" + mount.name
        if POSIX.exists(path) { return path }
        POSIX.makeDirectories(root + "/" + workload, mode: 0o711)
        guard mkdir(path, 0o750) == 0 || errno == EEXIST else { throw RuntimeError("cannot make volume \(path): \(POSIX.errorText(errno))") }
        guard lchown(path, user.uid, user.gid) == 0 else { throw RuntimeError("cannot give volume \(path) to uid \(user.uid): \(POSIX.errorText(errno))") }
        return path
    }
}

/// What the kernel logged of OOM kills: podman 4.3 on a cgroup v1 host does not record them
/// (its `OOMKilled` stays false), but the kernel says `Killed process PID (NAME)` in its log.
enum KernelLog {
    /// Whether the kernel's log, as far as its ring still holds it, says `pid` was OOM-killed.
    static func oomKilled(pid: Int32) -> Bool {
        let fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let needle = "Killed process \(pid) ("
        var record = [UInt8](repeating: 0, count: 8192)
        // One record per read; bounded, as the ring is.
        for _ in 0..<100_000 {
            let n = record.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EPIPE { continue }  // records overwritten while reading
            guard n > 0 else { return false }
            if String(decoding: record[0..<n], as: UTF8.self).containsBytes(needle) { return true }
        }
        return false
    }
}
