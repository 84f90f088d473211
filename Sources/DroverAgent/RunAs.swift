#if canImport(Glibc)
import Glibc
#endif
import DroverPOSIX

/// Whom a replica runs as. The agent runs as root (it needs to); its replicas do not, unless
/// a manifest says `user: root`: by default they run as the device's workload user.
public enum RunAs {
    /// Refuses a workload user that is root under another name (`00`, `0:0`, a name with
    /// uid 0); a user missing on this machine is refused only when a replica needs it.
    public static func checkUnprivileged(_ user: String) throws(RuntimeError) {
        guard let wanted = try? resolve(user) else { return }
        if wanted.uid == 0 { throw RuntimeError("--workload-user \(user) is root (uid 0); root only per workload, with spec.user: root") }
    }

    /// The identity to switch to for `user` (`root`, a name, or `UID[:GID]`); nil when the
    /// replica runs as the agent itself: `user` is nil on an agent that is not root (it could
    /// not switch), or names the agent's own user.
    static func identity(_ user: String?) throws(RuntimeError) -> Spawn.Identity? {
        let agentUID = geteuid()
        guard let user else { return nil }
        let wanted = try resolve(user)
        // Root is asked for by name: the controller lets only admins apply `user: root`.
        if wanted.uid == 0, user != "root", user.split(separator: ":").first.flatMap({ UInt32($0) }) == nil {
            throw RuntimeError("user '\(user)' is root (uid 0) under another name; a workload runs as root only with user: root")
        }
        if wanted.uid == agentUID, wanted.gid == getegid() { return nil }
        guard agentUID == 0 else {
            throw RuntimeError("this agent runs as uid \(agentUID), not root, so it cannot run replicas as '\(user)'")
        }
        return wanted
    }

    static func resolve(_ user: String) throws(RuntimeError) -> Spawn.Identity {
        let parts = user.split(separator: ":", omittingEmptySubsequences: false)
        if let uid = UInt32(parts[0]) {
            let gid = parts.count > 1 ? UInt32(parts[1]) : nil
            let entry = lookup { getpwuid_r(uid, &$0, $1, $2, &$3) }
            let primary = gid ?? entry?.gid ?? uid
            return Spawn.Identity(uid: uid, gid: primary, groups: entry.map { groups(of: $0.name, primary: primary) } ?? [primary])
        }
        guard let entry = lookup({ getpwnam_r(user, &$0, $1, $2, &$3) }) else {
            throw RuntimeError("user '\(user)' does not exist on this device: create it (tools/setup makes 'drover': useradd --system drover) or set spec.user")
        }
        return Spawn.Identity(uid: entry.uid, gid: entry.gid, groups: groups(of: entry.name, primary: entry.gid))
    }

    private static func lookup(
        _ call: (inout passwd, UnsafeMutablePointer<CChar>, Int, inout UnsafeMutablePointer<passwd>?) -> Int32
    ) -> (name: String, uid: uid_t, gid: gid_t)? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        let rc = buffer.withUnsafeMutableBufferPointer { b -> Int32 in
            guard let base = b.baseAddress else { return ERANGE }
            return call(&entry, base, b.count, &result)
        }
        guard rc == 0, result != nil, let name = entry.pw_name else { return nil }
        return (String(cString: name), entry.pw_uid, entry.pw_gid)
    }

    /// The user's supplementary groups from /etc/group, its primary one first.
    private static func groups(of name: String, primary: gid_t) -> [gid_t] {
        var count: Int32 = 64
        var list = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(name, primary, &list, &count) < 0 {
            list = [gid_t](repeating: 0, count: Int(count))
            guard getgrouplist(name, primary, &list, &count) >= 0 else { return [primary] }
        }
        return Array(list.prefix(Int(count)))
    }
}
