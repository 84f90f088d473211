import CDroverSys
#if canImport(Glibc)
import Glibc
#endif

/// Small file-system helpers on plain POSIX calls: the agent links no full Foundation, and
/// /proc files report a size of 0, so they are read until EOF.
public enum POSIX {
    /// Unmaps the code and constants (not the data) of the agent and of the libraries it
    /// loaded: what runs afterwards is mapped again from the page cache, so only the code in
    /// use stays mapped, and code used once (start-up, an image pull, OpenSSL's
    /// initialisation) becomes plain page cache the kernel may reclaim.
    /// Not while a debugger traces the agent: its breakpoints are patched copies of code
    /// pages, which unmapping would drop (uprobes, e.g. `perf probe`, are dropped too).
    /// Returns why it did not trim, or nil.
    public static func trimOwnCode() -> String? {
        let status = readFile("/proc/self/status") ?? ""
        if let tracer = status.split(separator: "\n").first(where: { $0.hasPrefix("TracerPid:") }), tracer.split(separator: "\t").last.map({ $0 != "0" }) ?? false {
            return "a debugger traces the agent"
        }
        guard drover_unmap_own_code() >= 0 else { return errno == ENOTSUP ? "the agent's code has text relocations" : "madvise failed (errno \(errno))" }
        return nil
    }

    /// Up to about `limit` bytes (whole reads of 8 KiB), as UTF-8; nil when the file cannot be
    /// opened or read (a directory opens, then fails to read).
    public static func readFile(_ path: String, limit: Int = 1 << 20) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 8192)
        while bytes.count < limit {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n >= 0 else { return nil }
            guard n > 0 else { break }
            bytes.append(contentsOf: buffer[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Creates `path` as an empty 0600 file if it is missing, and makes it 0600 if not, with
    /// the `-wal` and `-shm` files SQLite keeps beside it.
    static func ownerOnly(_ path: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        if fd >= 0 { close(fd) }
        for file in [path, path + "-wal", path + "-shm"] { chmod(file, 0o600) }
    }

    /// Parents are made 0755; the directory itself gets `mode`.
    static func makeDirectories(_ path: String, mode: mode_t = 0o755) {
        var current = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            current += "/" + part
            mkdir(current, 0o755)
        }
        chmod(current, mode)
    }

    static func fileSize(_ path: String) -> Int64? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return Int64(st.st_size)
    }

    /// Copies `source` over `destination` through a fixed 64 KiB buffer.
    static func copyFile(_ source: String, to destination: String) {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { return }
        defer { close(input) }
        // Never through a link: the agent is root, the directory is its own, but it does not bet on that.
        let output = open(destination, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o640)
        guard output >= 0 else { return }
        defer { close(output) }
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return }
            var written = 0
            while written < n {
                let w = buffer[written..<n].withUnsafeBytes { write(output, $0.baseAddress, $0.count) }
                if w < 0, errno == EINTR { continue }
                guard w > 0 else { return }
                written += w
            }
        }
    }

    /// Removes `path` and everything under it, never following a symbolic link out of it:
    /// every step is relative to a directory descriptor opened with O_NOFOLLOW, so a replica
    /// that swaps a directory for a link while this runs only makes the removal stop there.
    static func removeTree(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            unlink(path)
            return
        }
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return }
        removeContents(of: fd, depth: 0)
        close(fd)
        rmdir(path)
    }

    /// Empties the directory `fd` (which it closes via fdopendir's stream only on its own copy).
    private static func removeContents(of fd: Int32, depth: Int) {
        guard depth < 64, let dir = fdopendir(dup(fd)) else { return }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        for name in names {
            let child = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if child >= 0 {
                removeContents(of: child, depth: depth + 1)
                close(child)
                unlinkat(fd, name, AT_REMOVEDIR)
            } else {
                unlinkat(fd, name, 0)
            }
        }
    }

    /// Empties a file without following a link to it.
    static func truncateFile(_ path: String) {
        let fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = ftruncate(fd, 0)
        close(fd)
    }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Fields of /proc/PID/stat after the command name (which may itself hold spaces and
    /// parentheses, so the split happens after its last ')').
    static func procStat(_ pid: Int32) -> [Substring]? {
        guard let text = readFile("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
        return text[text.index(after: close)...].split(separator: " ")
    }

    /// The process's start time in clock ticks since boot (field 22 of /proc/PID/stat).
    static func startTicks(_ pid: Int32) -> Int64? {
        guard let fields = procStat(pid), fields.count > 19 else { return nil }
        return Int64(fields[19])
    }

    /// True when `pid` is a live (not zombie) process that started at `startTicks`.
    static func isAlive(pid: Int32, startTicks: Int64?) -> Bool {
        guard let fields = procStat(pid), let state = fields.first, state != "Z", state != "X" else { return false }
        guard let expected = startTicks else { return true }
        return fields.count > 19 && Int64(fields[19]) == expected
    }

    static func listDirectory(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    static func errorText(_ code: Int32) -> String { String(cString: strerror(code)) }
}

/// Wall-clock milliseconds since the Unix epoch, for timestamps in reports and beats.
func epochMillis() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}
