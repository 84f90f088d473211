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
        let passwd = entries(rootfs + "/etc/passwd")
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
            } else if let group = entries(rootfs + "/etc/group").first(where: { $0[0] == parts[1] }), let g = UInt32(group[2]) {
                gid = g
            } else {
                throw RuntimeError("group '\(parts[1])' is not in the image's /etc/group")
            }
        }
        return Spawn.Identity(uid: uid, gid: gid, groups: [gid])
    }

    /// The colon-separated lines of an /etc/passwd or /etc/group with at least 4 fields. The
    /// file is the image's: read without following a link out of the rootfs.
    static func entries(_ path: String) -> [[String]] {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        close(fd)
        return (POSIX.readFile(path, limit: 1 << 20) ?? "").split(separator: "\n").compactMap { line in
            let fields = line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            return fields.count >= 4 ? fields : nil
        }
    }
}
