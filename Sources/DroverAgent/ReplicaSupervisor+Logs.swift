import DroverCore
import DroverProtocol
import Glibc

extension ReplicaSupervisor {
    /// The manifest digests of the images this device's replicas are meant to run.
    public func desiredImages() -> Set<String> {
        Set((records.values.map(\.spec) + desired.values).compactMap { $0.image.flatMap(ImageReference.init(parsing:))?.digest })
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
        var all = text.split(separator: "\n", omittingEmptySubsequences: false)
        if all.last == "" { all.removeLast() }
        // A container's log is conmon's (runc's or podman's): `TIME STREAM F|P TEXT`, P for a line cut in parts.
        let kept = records[id]?.spec.runtime.isContainer == true ? Self.k8sLogText(all) : all
        var result = kept.suffix(lines).joined(separator: "\n")
        while result.utf8.count > CommandReply.maxOutput { result.removeFirst() }
        return result.isEmpty ? "" : result + "\n"
    }

    /// The text of k8s-file log lines, partial lines joined; a line not in that format as it is.
    static func k8sLogText(_ lines: [Substring]) -> [Substring] {
        var out: [Substring] = []
        var partial = ""
        for line in lines {
            let fields = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
            guard fields.count >= 3, fields[1] == "stdout" || fields[1] == "stderr" else {
                out.append(line)
                continue
            }
            let text = fields.count == 4 ? fields[3] : ""
            if fields[2] == "P" {
                partial += text
            } else {
                out.append(Substring(partial + text))
                partial = ""
            }
        }
        if !partial.isEmpty { out.append(Substring(partial)) }
        return out
    }
}
