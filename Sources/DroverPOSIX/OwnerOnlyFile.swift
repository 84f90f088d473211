#if canImport(Glibc)
import Glibc
#endif

/// Files that hold secrets (tokens, credentials, keys, configs with tokens): written to a
/// temporary file created 0600, synced, and renamed over the old one, so that they are never
/// readable by others, not even for a moment, and never half-written.
public enum OwnerOnlyFile {
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var path: String
        public var code: Int32
        public var description: String { "cannot write \(path): \(String(cString: strerror(code)))" }
    }

    public static func write(_ bytes: [UInt8], to path: String) throws(Failure) {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw Failure(path: path, code: errno) }
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { break }
            written += n
        }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == bytes.count, synced, chmod(temporary, 0o600) == 0, rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw Failure(path: path, code: code)
        }
    }

    public static func write(_ text: String, to path: String) throws(Failure) { try write(Array(text.utf8), to: path) }
}

/// 127.0.0.0/8 (as four decimal parts), ::1 or localhost: where plain HTTP is allowed.
public func isLoopbackHost(_ host: String) -> Bool {
    let parts = host.split(separator: ".", omittingEmptySubsequences: false)
    return host == "localhost" || host == "::1" || host == "[::1]"
        || (parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil })
}

