#if canImport(Glibc)
import Glibc
#endif
import DroverPOSIX

/// Whom a container's process runs as:
/// 1. the workload's `user` (`root`, `UID[:GID]`, or a name from the image's /etc/passwd,
///    else from the device's);
/// 2. else the image's `User`, unless that is root: a container runs as root only when the
///    manifest says so, which only an admin may apply;
/// 3. else the device's workload user (`--workload-user`, `drover` by default).
enum ContainerUser {
    static func resolve(spec user: String?, image: String?, workloadUser: String?, rootfs: String) throws(RuntimeError) -> Spawn.Identity {
        if let user {
            let identity = try lookup(user, rootfs: rootfs)
            if identity.uid == 0, user != "root", user.split(separator: ":").first.flatMap({ UInt32($0) }) == nil {
                throw RuntimeError("user '\(user)' is root (uid 0) under another name; a workload runs as root only with user: root")
            }
            return identity
        }
        if let image, !image.isEmpty, let identity = try? lookup(image, rootfs: rootfs), identity.uid != 0 {
            return identity
        }
        guard let workloadUser else { return Spawn.Identity(uid: 65534, gid: 65534, groups: []) }
        return try RunAs.resolve(workloadUser)
    }

    /// `root`, `UID[:GID]`, `NAME[:GROUP]` (the image's /etc/passwd and /etc/group first).
    static func lookup(_ user: String, rootfs: String) throws(RuntimeError) -> Spawn.Identity {
        if user == "root" { return Spawn.Identity(uid: 0, gid: 0, groups: []) }
        let parts = user.split(separator: ":", maxSplits: 1).map(String.init)
        guard let name = parts.first else { throw RuntimeError("user '\(user)' is empty") }
        let passwd = entries(rootfs, "passwd")
        var uid: UInt32
        var gid: UInt32
        if let number = UInt32(name) {
            uid = number
            gid = passwd.first { UInt32($0[2]) == number }.flatMap { UInt32($0[3]) } ?? number
        } else if let entry = passwd.first(where: { $0[0] == name }), let u = UInt32(entry[2]), let g = UInt32(entry[3]) {
            (uid, gid) = (u, g)
        } else {
            let host = try RunAs.resolve(name)
            (uid, gid) = (host.uid, host.gid)
        }
        if parts.count > 1 {
            if let number = UInt32(parts[1]) {
                gid = number
            } else if let group = entries(rootfs, "group").first(where: { $0[0] == parts[1] }), let g = UInt32(group[2]) {
                gid = g
            } else {
                throw RuntimeError("group '\(parts[1])' is not in the image's /etc/group")
            }
        }
        return Spawn.Identity(uid: uid, gid: gid, groups: [gid])
    }

    /// The colon-separated lines (of at least 4 fields) of the image's /etc/passwd or
    /// /etc/group. The image is not trusted: each step is opened without following a link
    /// (so nothing outside the rootfs is read), without blocking (a FIFO there must not
    /// hang the agent), and only a regular file is read, at most 1 MiB.
    static func entries(_ rootfs: String, _ name: String) -> [[String]] {
        let root = open(rootfs, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard root >= 0 else { return [] }
        defer { close(root) }
        let etc = openat(root, "etc", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard etc >= 0 else { return [] }
        defer { close(etc) }
        let fd = openat(etc, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return [] }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16_384)
        while bytes.count < 1 << 20 {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { break }
            bytes += buffer[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap { line in
            let fields = line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            return fields.count >= 4 ? fields : nil
        }
    }
}
