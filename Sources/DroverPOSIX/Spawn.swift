#if canImport(Glibc)
import Glibc
#endif
import CDroverSys

/// The one way Drover starts a process (replicas, the managed broker, test daemons).
///
/// The child always gets default signal dispositions and an empty signal mask: signals the
/// parent ignores or blocks (a service handling SIGTERM itself, a test runner) would otherwise
/// be inherited, and SIGTERM would not stop the child. It inherits no descriptor beyond
/// stdin/stdout/stderr, so it never holds the parent's broker socket open.
public struct Spawn: Sendable {
    public var executable: String
    public var arguments: [String]
    /// The child's whole environment.
    public var environment: [String: String]
    public var stdinPath = "/dev/null"
    /// stdout and stderr go to this file, appended to.
    public var outputPath = "/dev/null"
    public var directory: String?
    /// Put the child in a session and process group of its own (pgid = pid), so the whole
    /// group can be signalled at once.
    public var newProcessGroup = false
    /// Search PATH for a bare executable name.
    public var searchPath = false
    /// Run as this user instead of this process's (needs root).
    public var identity: Identity?

    /// A user to run as: its ids and supplementary groups.
    public struct Identity: Sendable, Equatable {
        public var uid: uid_t
        public var gid: gid_t
        public var groups: [gid_t]

        public init(uid: uid_t, gid: gid_t, groups: [gid_t]) {
            self.uid = uid
            self.gid = gid
            self.groups = groups
        }
    }

    public init(executable: String, arguments: [String] = [], environment: [String: String]) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
    }

    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var executable: String
        public var code: Int32
        public var description: String { "cannot start \(executable): \(String(cString: strerror(code)))" }
    }

    public func run() throws(Failure) -> pid_t {
        if let identity { return try run(as: identity) }
        // Every setup call is checked: a half-configured child (stdout nowhere, the
        // parent's signal mask) is worse than no child.
        func check(_ rc: Int32) throws(Failure) {
            guard rc == 0 else { throw Failure(executable: executable, code: rc) }
        }
        var actions = posix_spawn_file_actions_t()
        try check(posix_spawn_file_actions_init(&actions))
        defer { posix_spawn_file_actions_destroy(&actions) }
        try check(posix_spawn_file_actions_addopen(&actions, 0, stdinPath, O_RDONLY, 0))
        try check(posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_APPEND, 0o640))
        try check(posix_spawn_file_actions_adddup2(&actions, 1, 2))
        try check(drover_spawn_addclosefrom(&actions, 3))
        if let directory { try check(drover_spawn_addchdir(&actions, directory)) }

        var attributes = posix_spawnattr_t()
        try check(posix_spawnattr_init(&attributes))
        defer { posix_spawnattr_destroy(&attributes) }
        var all = sigset_t()
        sigfillset(&all)
        var none = sigset_t()
        sigemptyset(&none)
        try check(posix_spawnattr_setsigdefault(&attributes, &all))
        try check(posix_spawnattr_setsigmask(&attributes, &none))
        var flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK
        // A session of its own, and so a process group (pgid = pid) that can be signalled
        // at once; no terminal of this process's is reachable from it.
        if newProcessGroup { flags |= Int32(drover_spawn_setsid_flag()) }
        try check(posix_spawnattr_setflags(&attributes, Int16(flags)))

        let (argv, envp) = cArrays()
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let rc = searchPath
            ? posix_spawnp(&pid, executable, &actions, &attributes, argv, envp)
            : posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard rc == 0 else { throw Failure(executable: executable, code: rc) }
        return pid
    }

    /// Forks and drops to `identity` in the child (posix_spawn cannot change users).
    private func run(as identity: Identity) throws(Failure) -> pid_t {
        let path = searchPath ? Self.resolve(executable) : executable
        let (argv, envp) = cArrays()
        defer { (argv + envp).forEach { free($0) } }
        // Struct fields do not bridge Swift strings: C copies that live until the fork returns.
        let texts: [String] = [path, stdinPath, outputPath, directory ?? ""]
        let strings = texts.map { strdup($0) }
        defer { strings.forEach { free($0) } }
        let pid = identity.groups.withUnsafeBufferPointer { groups in
            argv.withUnsafeBufferPointer { argv in
                envp.withUnsafeBufferPointer { envp in
                    var request = drover_spawn_as_request(
                        path: strings[0], argv: argv.baseAddress, envp: envp.baseAddress, stdin_path: strings[1], output: strings[2],
                        directory: directory == nil ? nil : strings[3], new_process_group: newProcessGroup ? 1 : 0,
                        uid: identity.uid, gid: identity.gid, groups: groups.baseAddress, group_count: Int32(groups.count))
                    return withUnsafePointer(to: &request) { drover_spawn_as($0) }
                }
            }
        }
        guard pid > 0 else { throw Failure(executable: executable, code: errno) }
        return pid
    }

    /// A bare name found in this process's PATH, as posix_spawnp would; anything with a
    /// slash, or not found, as it is.
    static func resolve(_ name: String) -> String {
        guard !name.contains("/") else { return name }
        let path = Spawn.currentEnvironment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") where access("\(dir)/\(name)", X_OK) == 0 { return "\(dir)/\(name)" }
        return name
    }

    /// Like `run()`, for a helper that must not outlive this process (the managed broker):
    /// the child receives `deathSignal` when this process dies, however it dies, even by
    /// SIGKILL. `directory`, `newProcessGroup` and `searchPath` do not apply.
    public func runTied(deathSignal: Int32) throws(Failure) -> pid_t {
        let (argv, envp) = cArrays()
        defer { (argv + envp).forEach { free($0) } }
        let pid = drover_spawn_tied(executable, argv, envp, outputPath, deathSignal)
        guard pid > 0 else { throw Failure(executable: executable, code: errno) }
        return pid
    }

    /// argv and envp as NULL-terminated C arrays; the caller frees every element.
    private func cArrays() -> (argv: [UnsafeMutablePointer<CChar>?], envp: [UnsafeMutablePointer<CChar>?]) {
        (([executable] + arguments).map { strdup($0) } + [nil],
         environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil])
    }

    /// This process's environment, for a child that should inherit it.
    public static var currentEnvironment: [String: String] {
        var result: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let text = String(cString: entry)
            if let eq = text.firstIndex(of: "=") { result[String(text[..<eq])] = String(text[text.index(after: eq)...]) }
            p += 1
        }
        return result
    }
}

/// A TCP socket bound to a free port on 127.0.0.1 (port 0, then asked which); the caller owns
/// the descriptor.
public func bindLoopbackSocket() -> (fd: Int32, port: Int)? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    guard bound else {
        close(fd)
        return nil
    }
    return (fd, Int(UInt16(bigEndian: addr.sin_port)))
}

/// A free TCP port on 127.0.0.1.
public func freeLoopbackPort() -> Int? {
    guard let (fd, port) = bindLoopbackSocket() else { return nil }
    close(fd)
    return port
}
