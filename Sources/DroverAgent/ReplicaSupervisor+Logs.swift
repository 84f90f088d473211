import DroverCore
import DroverProtocol
import Glibc

extension ReplicaSupervisor {
    /// The manifest digests of the images this device's replicas are meant to run.
    public func desiredImages() -> Set<String> {
        Set((records.values.map(\.spec) + retiring.values.map(\.record.spec) + desired.values).compactMap { $0.image.flatMap(ImageReference.init(parsing:))?.digest })
    }

    /// The last `lines` lines of a replica's log, at most `CommandReply.maxOutput` bytes (the
    /// newest), and the log's size (to follow it from there); nil when the replica is not
    /// this device's.
    public func logTail(_ id: String, lines: Int) -> (text: String, offset: Int64)? {
        guard let record = records[id] else { return nil }
        let (bytes, start, size) = Self.readLog(replicasDir + "/" + record.instance + "/output.log", from: nil)
        var text = String(decoding: bytes, as: UTF8.self)
        // A cut at the start of the window leaves half a line: drop it.
        if start > 0, let newline = text.firstIndex(of: "\n") { text = String(text[text.index(after: newline)...]) }
        var result = Self.lines(text, container: record.spec.runtime.isContainer).suffix(lines).joined(separator: "\n")
        result = Self.newest(result, bytes: CommandReply.maxOutput)
        return (result.isEmpty ? "" : result + "\n", size)
    }

    /// What was written to a replica's log from byte `offset` on, in whole lines, at most
    /// `CommandReply.maxOutput` bytes, and the offset to ask from next. A log that was rotated
    /// meanwhile (now shorter than `offset`) is read from its start.
    public func logSince(_ id: String, offset: Int64) -> (text: String, offset: Int64)? {
        guard let record = records[id] else { return nil }
        let path = replicasDir + "/" + record.instance + "/output.log"
        var from = offset
        if let size = POSIX.fileSize(path), size < offset { from = 0 }
        // A third of the reply's room: bytes that are not UTF-8 come out three times larger.
        let (bytes, start, _) = Self.readLog(path, from: from, limit: CommandReply.maxOutput / 3)
        // Only whole lines: the rest comes next time (unless one line fills the whole window).
        guard let last = bytes.lastIndex(of: UInt8(ascii: "\n")) ?? (bytes.count == CommandReply.maxOutput / 3 ? bytes.count - 1 : nil) else { return ("", start) }
        let text = String(decoding: bytes[...last], as: UTF8.self)
        let result = Self.lines(text, container: record.spec.runtime.isContainer).joined(separator: "\n")
        return (result.isEmpty ? "" : result + "\n", start + Int64(last) + 1)
    }

    /// Up to `CommandReply.maxOutput` bytes of a log: from `offset`, or the newest. Returns the
    /// bytes, where they start, and the file's size.
    static func readLog(_ path: String, from offset: Int64?, limit: Int = CommandReply.maxOutput) -> (bytes: [UInt8], start: Int64, size: Int64) {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return ([], 0, 0) }
        defer { close(fd) }
        let size = Int64(lseek(fd, 0, SEEK_END))
        let start = min(size, offset ?? max(0, size - Int64(limit)))
        lseek(fd, off_t(start), SEEK_SET)
        var bytes = [UInt8](repeating: 0, count: Int(min(size - start, Int64(limit))))
        var read = 0
        while read < bytes.count {
            let n = bytes[read...].withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            read += n
        }
        return (Array(bytes.prefix(read)), start, size)
    }

    /// The last `bytes` bytes of `text` at most, cut at a character boundary.
    static func newest(_ text: String, bytes: Int) -> String {
        guard text.utf8.count > bytes else { return text }
        var tail = text.utf8.suffix(bytes)
        while let first = tail.first, first & 0xC0 == 0x80 { tail = tail.dropFirst() }
        return String(decoding: tail, as: UTF8.self)
    }

    /// A log's lines; a container's in conmon's format are turned into their text.
    static func lines(_ text: String, container: Bool) -> [Substring] {
        var all = text.split(separator: "\n", omittingEmptySubsequences: false)
        if all.last == "" { all.removeLast() }
        // A container's log is conmon's (runc's or podman's): `TIME STREAM F|P TEXT`.
        return container ? k8sLogText(all) : all
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
