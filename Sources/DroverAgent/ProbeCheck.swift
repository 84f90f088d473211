#if canImport(Glibc)
import Glibc
#endif

/// The network checks of a probe, on the device's loopback (replicas share its network):
/// a TCP connect, or an HTTP/1.0 GET whose status must be 200-399. Blocking, bounded by
/// `timeout`; run off the cooperative pool.
public enum ProbeCheck {
    public struct Outcome: Sendable {
        public var ok: Bool
        public var detail: String
        public init(ok: Bool, detail: String) {
            self.ok = ok
            self.detail = detail
        }
    }

    /// A probe command's outcome: passes on exit code 0; says how it failed otherwise.
    static func outcome(_ command: [String], _ result: HostCommand.Result) -> Outcome {
        if result.succeeded { return Outcome(ok: true, detail: "exit 0") }
        let how = result.status.map { "exit code \($0.code)" } ?? "did not finish in time"
        let said = result.output.split(separator: "\n").last.map { ": " + $0.prefix(200) } ?? ""
        return Outcome(ok: false, detail: "\(command.first ?? "") \(how)\(said)")
    }

    static func tcp(port: Int, timeout: Duration) -> Outcome {
        let deadline = ContinuousClock.now + timeout
        guard let fd = connect(port: port, deadline: deadline) else { return Outcome(ok: false, detail: "nothing accepts on port \(port)") }
        close(fd)
        return Outcome(ok: true, detail: "port \(port) accepts")
    }

    static func http(path: String, port: Int, timeout: Duration) -> Outcome {
        let deadline = ContinuousClock.now + timeout
        guard let fd = connect(port: port, deadline: deadline) else { return Outcome(ok: false, detail: "nothing accepts on port \(port)") }
        defer { close(fd) }
        let request = Array("GET \(path) HTTP/1.0\r\nHost: 127.0.0.1:\(port)\r\nUser-Agent: drover-probe\r\nConnection: close\r\n\r\n".utf8)
        var sent = 0
        while sent < request.count {
            guard wait(fd, for: Int16(POLLOUT), until: deadline) else { return Outcome(ok: false, detail: "GET \(path): timed out sending") }
            let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return Outcome(ok: false, detail: "GET \(path): \(String(cString: strerror(errno)))") }
            sent += n
        }
        // The status line is all that counts: "HTTP/1.x NNN ...".
        var head: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 512)
        while head.count < 512, !head.contains(UInt8(ascii: "\n")) {
            guard wait(fd, for: Int16(POLLIN), until: deadline) else { return Outcome(ok: false, detail: "GET \(path): no answer in time") }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { break }
            head += buffer[0..<n]
        }
        let line = String(decoding: head.prefix { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        let fields = line.split(separator: " ")
        guard fields.count >= 2, fields[0].hasPrefix("HTTP/"), let status = Int(fields[1]) else {
            return Outcome(ok: false, detail: "GET \(path): not an HTTP answer")
        }
        return Outcome(ok: (200...399).contains(status), detail: "GET \(path): \(status)")
    }

    /// A connected socket to 127.0.0.1:`port`, or nil when refused or out of time.
    static func connect(port: Int, deadline: ContinuousClock.Instant) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(clamping: port)).bigEndian
        address.sin_addr.s_addr = in_addr_t(0x7F00_0001).bigEndian
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 {
            guard errno == EINPROGRESS, wait(fd, for: Int16(POLLOUT), until: deadline) else {
                close(fd)
                return nil
            }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0, error == 0 else {
                close(fd)
                return nil
            }
        }
        return fd
    }

    static func wait(_ fd: Int32, for events: Int16, until deadline: ContinuousClock.Instant) -> Bool {
        while true {
            let left = deadline - ContinuousClock.now
            let millis = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)
            guard millis > 0 else { return false }
            var entry = pollfd(fd: fd, events: events, revents: 0)
            let n = poll(&entry, 1, millis)
            if n < 0, errno == EINTR { continue }
            return n > 0 && entry.revents & events != 0
        }
    }
}
