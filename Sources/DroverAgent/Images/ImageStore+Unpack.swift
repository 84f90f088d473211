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
    /// index's); returns its directory. Blocking: run it off the cooperative pool.
    func unpack(_ pulled: Pulled, as digest: String, commands: HostCommand) throws(PullError) -> String {
        guard let hex = OCI.hex(ofDigest: digest), let configHex = OCI.hex(ofDigest: pulled.config) else {
            throw .reference("\(digest) is not a sha256 digest")
        }
        if let done = unpackedPath(digest) { return done }
        let base = root + "/unpacked"
        mkdir(base, 0o700)
        let staging = base + "/.staging-\(hex)-\(getpid())"
        POSIX.removeTree(staging)
        defer { POSIX.removeTree(staging) }
        guard mkdir(staging, 0o700) == 0, mkdir(staging + "/rootfs", 0o755) == 0 else {
            throw .storage("cannot make \(staging): \(POSIX.errorText(errno))")
        }
        for (index, layer) in pulled.layers.enumerated() {
            guard let layerHex = OCI.hex(ofDigest: layer) else { throw .registry("layer \(index) has no sha256 digest") }
            let extracted = staging + "/layer"
            POSIX.removeTree(extracted)
            mkdir(extracted, 0o755)
            let result = commands.run(
                "/bin/tar", ["--extract", "--file", blobPath(layerHex), "--directory", extracted, "--numeric-owner", "--same-owner", "--preserve-permissions", "--warning=no-timestamp"],
                outputPath: staging + "/tar.log")
            guard result.succeeded else { throw .storage("layer \(index + 1) of \(pulled.layers.count) (\(layer)) does not unpack: \(result.lastLine)") }
            Self.apply(layer: extracted, onto: staging + "/rootfs", depth: 0)
        }
        POSIX.removeTree(staging + "/layer")
        unlink(staging + "/tar.log")
        POSIX.copyFile(blobPath(configHex), to: staging + "/config.json")
        guard rename(staging, base + "/" + hex) == 0 || unpackedPath(digest) != nil else {
            throw .storage("cannot move the unpacked image into place: \(POSIX.errorText(errno))")
        }
        return base + "/" + hex
    }

    /// Moves the entries of `layer` onto `target` (both real directories): `.wh.NAME` removes
    /// NAME below, `.wh..wh..opq` empties the directory first; a directory over a directory
    /// is merged, anything else replaces what was there.
    static func apply(layer: String, onto target: String, depth: Int) {
        guard depth < 128 else { return }
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
            let isDirectory = (from.st_mode & S_IFMT) == S_IFDIR
            let exists = lstat(destination, &to) == 0
            if isDirectory {
                if exists, (to.st_mode & S_IFMT) != S_IFDIR { POSIX.removeTree(destination) }
                if !exists || (to.st_mode & S_IFMT) != S_IFDIR { mkdir(destination, 0o700) }
                apply(layer: source, onto: destination, depth: depth + 1)
                // The upper layer's owner and mode win; set after the contents, as tar does.
                lchown(destination, from.st_uid, from.st_gid)
                chmod(destination, from.st_mode & 0o7777)
            } else {
                if exists { POSIX.removeTree(destination) }
                rename(source, destination)
            }
        }
    }

    /// Removes unpacked images that no kept image names (and stale staging directories).
    func collectUnpacked(keep: Set<String>) {
        let kept = Set(keep.compactMap(OCI.hex(ofDigest:)))
        for name in POSIX.listDirectory(root + "/unpacked") where !kept.contains(name) {
            if name.hasPrefix(".staging-"), name.hasSuffix("-\(getpid())") { continue }
            POSIX.removeTree(root + "/unpacked/" + name)
        }
    }
}
