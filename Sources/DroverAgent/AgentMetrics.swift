#if canImport(Glibc)
import Glibc
#endif
import DroverAgentStore
import DroverCore
import DroverProtocol
import CDroverSys
import Logging
import ServiceLifecycle
import Synchronization

/// `--metrics-listen PORT`: the agent's own metrics in Prometheus's text format, served on
/// 127.0.0.1 only, and only when asked (a small device rarely has a scraper). Written by hand:
/// the agent links no metrics library. One scrape at a time, each bounded by a 2 s timeout.
final class AgentMetricsService: Service, Sendable {
    let port: UInt16
    let render: @Sendable () async -> String
    let logger: Logger

    init(port: UInt16, render: @escaping @Sendable () async -> String, logger: Logger) {
        self.port = port
        self.render = render
        self.logger = logger
    }

    /// The connection being served, so that a stop can cut it short too.
    private let serving = Mutex<Int32>(-1)

    func run() async throws {
        let fd: Int32
        do {
            fd = try Self.listen(port: port)
        } catch {
            // Metrics are optional: a taken port is logged, and the agent runs on without them.
            logger.error("\(error); the agent runs without metrics")
            try? await gracefulShutdown()
            return
        }
        logger.info("metrics at http://127.0.0.1:\(port)/metrics")
        // A listening socket shut down makes a blocked accept return (EINVAL): that is how it
        // stops, on a graceful shutdown or a cancellation; the connection being served, if
        // any, is cut short with it.
        let stop: @Sendable () -> Void = { [self] in
            shutdown(fd, Int32(SHUT_RDWR))
            serving.withLock { if $0 >= 0 { shutdown($0, Int32(SHUT_RDWR)) } }
        }
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler { await serve(fd) } onGracefulShutdown: { stop() }
        } onCancel: {
            stop()
        }
        close(fd)
    }

    private func serve(_ fd: Int32) async {
        while true {
            let (client, error) = await OffPool.run { () -> (Int32, Int32) in
                // Close-on-exec: a replica started meanwhile must not inherit the connection.
                let client = drover_accept_cloexec(fd)
                return (client, errno)
            }
            guard client >= 0 else {
                if error == EINVAL || error == EBADF { return }
                // Out of descriptors or memory for a moment: the daemon goes on, scrapes wait.
                try? await Task.sleep(for: .milliseconds(100))
                continue
            }
            serving.withLock { $0 = client }
            defer { serving.withLock { $0 = -1 } }
            let request = await OffPool.run { Self.readRequest(client) }
            let response: String
            if request.hasPrefix("GET /metrics ") || request.hasPrefix("GET /metrics?") {
                let body = await render()
                response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
            } else {
                response = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 19\r\nConnection: close\r\n\r\nonly GET /metrics\r\n"
            }
            await OffPool.run {
                Self.writeAll(client, Array(response.utf8))
                close(client)
            }
        }
    }

    struct ListenError: Error, CustomStringConvertible {
        var description: String
    }

    static func listen(port: UInt16) throws(ListenError) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ListenError(description: "--metrics-listen: socket: \(String(cString: strerror(errno)))") }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, 8) == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw ListenError(description: "--metrics-listen: cannot listen on 127.0.0.1:\(port): \(why)")
        }
        return fd
    }

    /// The request's head, at most 4 KiB, waiting at most 2 s for all of it (a client that
    /// trickles bytes gets no more); a response gets 2 s to be taken.
    static func readRequest(_ fd: Int32) -> String {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let deadline = ContinuousClock.now + .seconds(2)
        var head: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1024)
        while head.count < 4096 {
            let left = (deadline - ContinuousClock.now).components
            guard left.seconds >= 0, left.seconds > 0 || left.attoseconds > 0 else { break }
            var wait = timeval(tv_sec: Int(left.seconds), tv_usec: max(1, Int(left.attoseconds / 1_000_000_000_000)))
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
            let n = recv(fd, &chunk, chunk.count, 0)
            guard n > 0 else { break }
            head += chunk[0..<n]
            if head.count >= 4, head.suffix(4) == [13, 10, 13, 10] { break }
        }
        return String(decoding: head, as: UTF8.self)
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return }
            sent += n
        }
    }
}

/// The text of the agent's metrics: lines of `name{label="value"} number`, each family with
/// its `# HELP` and `# TYPE`.
struct MetricsText {
    private(set) var text = ""

    mutating func family(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: Double)]) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        for s in samples {
            let value = s.value == s.value.rounded() && abs(s.value) < 1e15 ? String(Int64(s.value)) : String(s.value)
            text += name + (s.labels.isEmpty ? "" : "{\(s.labels)}") + " " + value + "\n"
        }
    }

    mutating func single(_ name: String, _ type: String, _ help: String, _ value: Double) {
        family(name, type, help, [("", value)])
    }
}
