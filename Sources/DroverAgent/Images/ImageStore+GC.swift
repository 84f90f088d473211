import DroverCore
import DroverJSON
import Glibc

extension ImageStore {
    /// Removes the unpacked copies of images that `keep` does not name, then frees space past
    /// `budget` bytes: blobs that no kept image uses (the manifests named in
    /// `keep`, with their configs, layers and, for an index, its manifests) go, oldest first,
    /// until the store fits; what a kept image uses always stays. Partial downloads untouched
    /// for a day go too. Returns how many blobs were removed and the bytes freed.
    @discardableResult
    public func collect(keep: Set<String>, budget: Int64, now: Int64 = Int64(time(nil))) -> (removed: Int, freed: Int64) {
        collectUnpacked(keep: keep)
        var kept = Set<String>()
        var queue = Array(keep.compactMap(OCI.hex(ofDigest:)))
        while let hex = queue.popLast() {
            guard kept.insert(hex).inserted, let text = POSIX.readFile(blobPath(hex), limit: 4 << 20),
                let manifest = try? JSON.decode(Manifest.self, from: Array(text.utf8))
            else { continue }
            let named = (manifest.config.map { [$0] } ?? []) + (manifest.layers ?? []) + (manifest.manifests ?? [])
            queue += named.compactMap { OCI.hex(ofDigest: $0.digest) }
        }
        for name in POSIX.listDirectory(root + "/partial") {
            let path = root + "/partial/" + name
            var st = stat()
            if lstat(path, &st) == 0, Int64(st.st_mtim.tv_sec) < now - 86_400 { unlink(path) }
        }
        var blobs: [(hex: String, size: Int64, mtime: Int)] = []
        for hex in POSIX.listDirectory(root + "/blobs/sha256") {
            var st = stat()
            guard lstat(blobPath(hex), &st) == 0 else { continue }
            blobs.append((hex, Int64(st.st_size), st.st_mtim.tv_sec))
        }
        var total = blobs.reduce(0) { $0 + $1.size }
        var removed = 0
        var freed: Int64 = 0
        for blob in blobs.filter({ !kept.contains($0.hex) }).sorted(by: { ($0.mtime, $0.hex) < ($1.mtime, $1.hex) }) where total > budget {
            guard unlink(blobPath(blob.hex)) == 0 else { continue }
            total -= blob.size
            freed += blob.size
            removed += 1
        }
        return (removed, freed)
    }
}
