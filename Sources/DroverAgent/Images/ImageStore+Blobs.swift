import CDroverTLS
import DroverCore
import DroverJSON
import DroverPOSIX
import Glibc

extension ImageStore {
    func blobPath(_ hex: String) -> String { root + "/blobs/sha256/" + hex }
    func partialPath(_ hex: String) -> String { root + "/partial/" + hex }

    /// The blob in the store, complete and checked: fetched, resumed, or found. Returns the
    /// bytes fetched and the bytes that were already here.
    func ensureBlob(_ source: Source, _ name: String, _ blob: Descriptor, log: (String) -> Void) throws(PullError) -> (Int64, Int64) {
        guard let hex = OCI.hex(ofDigest: blob.digest) else { throw .registry("the manifest names '\(blob.digest.prefix(80))', which is not a sha256 digest") }
        // Every descriptor has a size: it caps the download, so a registry cannot fill the disk.
        guard let expected = blob.size, expected >= 0, expected <= Self.maxBlobBytes else {
            throw .registry("the manifest gives \(blob.digest) no size (or one over \(Self.maxBlobBytes) bytes)")
        }
        if let size = POSIX.fileSize(blobPath(hex)), size == expected { return (0, size) }
        // One pull of a blob at a time: another one would write the same partial file.
        let lock = open(partialPath(hex) + ".lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard lock >= 0, flock(lock, LOCK_EX | LOCK_NB) == 0 else {
            if lock >= 0 { close(lock) }
            throw .storage("another pull is fetching \(blob.digest) right now")
        }
        // The lock file stays: removing it would let a third pull lock a new file while a
        // second still holds the old one. Collection removes it once it is a day old.
        defer { close(lock) }
        var fetched: Int64 = 0
        var reused: Int64 = 0
        for attempt in 1...2 {
            let resumeAt = POSIX.fileSize(partialPath(hex)) ?? 0
            let cut = try download(source, name, hex: hex, from: resumeAt, size: expected)
            fetched += cut.fetched
            if cut.resumed { reused += resumeAt }
            if let error = cut.error {
                throw .registry("downloading \(blob.digest) from \(source.label) stopped after \(resumeAt + cut.fetched) bytes: \(error); the next pull resumes there")
            }
            let size = POSIX.fileSize(partialPath(hex)) ?? 0
            let actual = try Self.sha256(file: partialPath(hex))
            if actual == hex, size == expected {
                guard rename(partialPath(hex), blobPath(hex)) == 0 else { throw .storage("cannot store \(blob.digest): \(String(cString: strerror(errno)))") }
                log("blob \(blob.digest) \(size) bytes: fetched \(cut.fetched)\(cut.resumed ? ", resumed at \(resumeAt)" : "")")
                return (fetched, reused)
            }
            unlink(partialPath(hex))
            log("blob \(blob.digest) from \(source.label) did not match its digest (sha256:\(actual), \(size) bytes)\(attempt == 1 ? "; fetching it again" : "")")
        }
        throw .digestMismatch("\(source.label) serves bytes for \(blob.digest) that do not match it: refused")
    }

    /// One GET of the blob into its partial file, from `offset` on (HTTP Range); a server
    /// that ignores the range starts the file over.
    func download(_ source: Source, _ name: String, hex: String, from offset: Int64, size: Int64) throws(PullError) -> (fetched: Int64, resumed: Bool, error: String?) {
        let path = partialPath(hex)
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw .storage("cannot write \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var headers = source.authorization
        if offset > 0 { headers.append(("Range", "bytes=\(offset)-")) }
        // Where the body goes depends on the answer (206 appends, 200 starts over), which is
        // known only once the head is in: write at the end, and start over after a 200.
        guard lseek(fd, 0, SEEK_END) >= 0 else { throw .storage("cannot seek in \(path)") }
        // A 206 brings the rest, a 200 the whole: at most the whole either way.
        let result = source.exchange.download("/v2/\(name)/blobs/sha256:\(hex)", headers: headers, into: fd, atMost: size)
        guard let response = result.response else {
            return (result.written, offset > 0, result.error ?? "no answer")
        }
        switch response.status {
        case 206 where offset > 0:
            return (result.written, true, result.error)
        case 200:
            if offset > 0 {
                // The whole blob came after the old part: keep only the new bytes.
                try dropPrefix(path, bytes: offset)
            }
            return (result.written, false, result.error)
        case 416 where offset > 0:
            // The range starts at the end: the partial file may be the whole blob.
            _ = ftruncate(fd, off_t(offset))
            return (0, true, nil)
        default:
            // An error (a registry restarting, a 429): what was fetched before stays, for the
            // next pull to resume from; whatever this answer wrote goes.
            _ = ftruncate(fd, off_t(offset))
            return (0, offset > 0, "\(source.label) answered \(response.status)")
        }
    }

    /// Removes the first `bytes` of a file (a full answer that came after a partial one).
    func dropPrefix(_ path: String, bytes: Int64) throws(PullError) {
        let temporary = path + ".tmp"
        let input = open(path, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw .storage("cannot read \(path)") }
        defer { close(input) }
        guard lseek(input, off_t(bytes), SEEK_SET) >= 0 else { throw .storage("cannot seek in \(path)") }
        let output = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard output >= 0 else { throw .storage("cannot write \(temporary)") }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var failed = false
        copy: while true {
            let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            if n < 0 { failed = true }
            if n <= 0 { break }
            var done = 0
            while done < n {
                let w = buffer[done..<n].withUnsafeBytes { Glibc.write(output, $0.baseAddress, $0.count) }
                if w < 0, errno == EINTR { continue }
                if w <= 0 {
                    failed = true
                    break copy
                }
                done += w
            }
        }
        close(output)
        guard !failed, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw .storage("cannot rewrite \(path): \(String(cString: strerror(errno)))")
        }
    }

    func write(_ bytes: [UInt8], toBlob digest: String) throws(PullError) {
        guard let hex = OCI.hex(ofDigest: digest) else { return }
        do { try StoredCredentials.writeOwnerOnly(bytes, to: blobPath(hex)) } catch { throw .storage("\(error)") }
    }

    static func sha256(file path: String) throws(PullError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .storage("cannot read \(path)") }
        defer { close(fd) }
        var digest = [UInt8](repeating: 0, count: 32)
        guard drover_sha256_fd(fd, &digest) == 0 else { throw .storage("cannot hash \(path)") }
        return hex(digest)
    }

    static func sha256(_ bytes: [UInt8]) -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        let rc = bytes.withUnsafeBytes { drover_sha256($0.baseAddress, $0.count, &digest) }
        return rc == 0 ? hex(digest) : ""
    }

    static func hex(_ bytes: [UInt8]) -> String { hexString(bytes) }
}
