#if canImport(Glibc)
import Glibc
#endif
import DroverCore

/// Images unpacked for containers, under `<store>/unpacked/<hex of the reference's digest>/`:
/// `rootfs/` (the layers applied in order, whiteouts honoured) and `config.json` (the image
/// config). Containers share it read-only. A directory there is complete: it is built under
/// a staging name and renamed into place.
///
/// Each layer is extracted by the system's GNU tar into an empty directory of its own (tar
/// keeps links that point outside, absolute or through `..`, as placeholders until its end,
/// so nothing in one archive writes outside it), then moved onto the rootfs here, entry by
/// entry, descending only into real directories: a link left by a lower layer is replaced,
/// never followed, so no layer can write outside the rootfs.
extension ImageStore {
    public func unpackedPath(_ digest: String) -> String? {
        guard let hex = OCI.hex(ofDigest: digest) else { return nil }
        let path = root + "/unpacked/" + hex
        return POSIX.exists(path + "/config.json") ? path : nil
    }

    /// Unpacks a pulled image as `digest` (the digest the workload names, which may be an
    /// index's); returns its directory. One unpack of a digest at a time (a lock file per
    /// digest), each in a staging directory of its own. Blocking: run it off the cooperative pool.
    func unpack(_ pulled: Pulled, as digest: String, commands: HostCommand) throws(PullError) -> String {
        guard let hex = OCI.hex(ofDigest: digest), let configHex = OCI.hex(ofDigest: pulled.config) else {
            throw .reference("\(digest) is not a sha256 digest")
        }
        if let done = unpackedPath(digest) { return done }
        let base = root + "/unpacked"
        mkdir(base, 0o700)
        let lock = open(base + "/.lock-" + hex, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard lock >= 0, flock(lock, LOCK_EX) == 0 else {
            if lock >= 0 { close(lock) }
            throw .storage("cannot lock the unpack of \(digest): \(POSIX.errorText(errno))")
        }
        defer {
            unlink(base + "/.lock-" + hex)
            close(lock)
        }
        // Another unpack may have finished while this one waited for the lock.
        if let done = unpackedPath(digest) { return done }
        var template = Array((base + "/.staging-\(hex)-XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer -> Bool in
            guard let start = buffer.baseAddress else { return false }
            return mkdtemp(start) != nil
        }
        guard made else { throw .storage("cannot make a staging directory in \(base): \(POSIX.errorText(errno))") }
        let staging = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        defer { POSIX.removeTree(staging) }
        guard mkdir(staging + "/rootfs", 0o755) == 0 else { throw .storage("cannot make \(staging)/rootfs: \(POSIX.errorText(errno))") }
        for (index, layer) in pulled.layers.enumerated() {
            guard let layerHex = OCI.hex(ofDigest: layer) else { throw .registry("layer \(index) has no sha256 digest") }
            let extracted = staging + "/layer"
            POSIX.removeTree(extracted)
            mkdir(extracted, 0o755)
            let result = commands.run(
                "/bin/tar", ["--extract", "--file", blobPath(layerHex), "--directory", extracted, "--numeric-owner", "--same-owner", "--preserve-permissions", "--warning=no-timestamp"],
                outputPath: staging + "/tar.log")
            guard result.succeeded else { throw .storage("layer \(index + 1) of \(pulled.layers.count) (\(layer)) does not unpack: \(result.lastLine)") }
            if let problem = Self.apply(layer: extracted, onto: staging + "/rootfs", depth: 0) {
                throw .storage("layer \(index + 1) of \(pulled.layers.count) (\(layer)): \(problem)")
            }
        }
        POSIX.removeTree(staging + "/layer")
        unlink(staging + "/tar.log")
        POSIX.copyFile(blobPath(configHex), to: staging + "/config.json")
        guard rename(staging, base + "/" + hex) == 0 else {
            throw .storage("cannot move the unpacked image into place: \(POSIX.errorText(errno))")
        }
        return base + "/" + hex
    }

    /// As deep as `POSIX.removeTree` reaches: what is unpacked can always be removed.
    static let maxDepth = 60

    /// Moves the entries of `layer` onto `target` (both real directories, which nothing else
    /// changes meanwhile: one unpack per digest, in its own staging directory): `.wh.NAME`
    /// removes NAME below, `.wh..wh..opq` empties the directory first; a directory over a
    /// directory is merged, a file or link replaces what was there. Device nodes, FIFOs and
    /// sockets are left out (a container gets its own /dev). Returns what went wrong, if anything.
    static func apply(layer: String, onto target: String, depth: Int) -> String? {
        guard depth < maxDepth else { return "directories nest deeper than \(maxDepth)" }
        let names = POSIX.listDirectory(layer)
        if names.contains(".wh..wh..opq") {
            for old in POSIX.listDirectory(target) { POSIX.removeTree(target + "/" + old) }
        }
        for name in names.sorted() {
            let source = layer + "/" + name
            if name.hasPrefix(".wh.") {
                let hidden = String(name.dropFirst(4))
                if name != ".wh..wh..opq", !hidden.isEmpty, hidden != ".", hidden != ".." { POSIX.removeTree(target + "/" + hidden) }
                continue
            }
            let destination = target + "/" + name
            var from = stat()
            var to = stat()
            guard lstat(source, &from) == 0 else { continue }
            let kind = from.st_mode & S_IFMT
            let exists = lstat(destination, &to) == 0
            if kind == S_IFDIR {
                if exists, (to.st_mode & S_IFMT) != S_IFDIR { POSIX.removeTree(destination) }
                if !exists || (to.st_mode & S_IFMT) != S_IFDIR {
                    guard mkdir(destination, 0o700) == 0 else { return "cannot make \(name): \(POSIX.errorText(errno))" }
                }
                if let problem = apply(layer: source, onto: destination, depth: depth + 1) { return problem }
                // The upper layer's owner and mode win; set after the contents, as tar does.
                // `destination` is a real directory made or checked just above.
                lchown(destination, from.st_uid, from.st_gid)
                chmod(destination, from.st_mode & 0o7777)
            } else if kind == S_IFREG || kind == S_IFLNK {
                if exists { POSIX.removeTree(destination) }
                guard rename(source, destination) == 0 else { return "cannot place \(name): \(POSIX.errorText(errno))" }
            }
        }
        return nil
    }

    /// Removes unpacked images that no kept image names (and stale staging directories).
    func collectUnpacked(keep: Set<String>) {
        let kept = Set(keep.compactMap(OCI.hex(ofDigest:)))
        for name in POSIX.listDirectory(root + "/unpacked") where !kept.contains(name) && !name.hasPrefix(".lock-") {
            // A staging directory of a running unpack is young; one a day old was left by a crash.
            if name.hasPrefix(".staging-") {
                var st = stat()
                guard lstat(root + "/unpacked/" + name, &st) == 0, Int(st.st_mtim.tv_sec) < time(nil) - 86_400 else { continue }
            }
            POSIX.removeTree(root + "/unpacked/" + name)
        }
    }
}
