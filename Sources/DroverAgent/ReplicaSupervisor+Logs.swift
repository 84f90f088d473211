import DroverCore
import DroverProtocol
import Glibc

extension ReplicaSupervisor {
    /// The manifest digests of the images this device's replicas are meant to run.
    public func desiredImages() -> Set<String> {
        Set(records.values.compactMap { $0.spec.image.flatMap(ImageReference.init(parsing:))?.digest })
    }

    /// The last `lines` lines of a replica's log, at most `CommandReply.maxOutput` bytes (the
    /// newest); nil when the replica is not this device's.
    public func logTail(_ id: String, lines: Int) -> String? {
        guard records[id] != nil else { return nil }
        let path = replicasDir + "/" + id + "/output.log"
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        let size = lseek(fd, 0, SEEK_END)
        let start = max(0, size - off_t(CommandReply.maxOutput))
        lseek(fd, start, SEEK_SET)
        var bytes = [UInt8](repeating: 0, count: Int(size - start))
        var read = 0
        while read < bytes.count {
            let n = bytes[read...].withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            read += n
        }
        var text = String(decoding: bytes.prefix(read), as: UTF8.self)
        // A cut at the start of the window leaves half a line: drop it.
        if start > 0, let newline = text.firstIndex(of: "\n") { text = String(text[text.index(after: newline)...]) }
        let all = text.split(separator: "\n", omittingEmptySubsequences: false)
        let kept = all.last == "" ? all.dropLast() : all[...]
        var result = kept.suffix(lines).joined(separator: "\n")
        while result.utf8.count > CommandReply.maxOutput { result.removeFirst() }
        return result.isEmpty ? "" : result + "\n"
    }
}
