import CDroverTLS
import DroverJSON
import DroverPOSIX

/// One HTTP/1.1 request and its answer, over TCP or TLS through the system's OpenSSL
/// (`CDroverTLS`): all the agent needs to talk to the controller's API once, to enroll.
struct HTTPExchange {
    struct Endpoint: Equatable {
        var tls: Bool
        var host: String
        var port: Int
        var basePath: String

        /// `http://HOST[:PORT][/base]` or `https://...`; IPv6 hosts in brackets.
        init(url: String) throws(EnrollmentError) {
            let scheme: Bool
            if url.hasPrefix("https://") { scheme = true } else if url.hasPrefix("http://") { scheme = false } else {
                throw .invalid("--controller: '\(url)' must start with http:// or https://")
            }
            let rest = url.dropFirst(scheme ? 8 : 7)
            let authority = rest.prefix { $0 != "/" }
            var base = String(rest.dropFirst(authority.count))
            while base.hasSuffix("/") { base.removeLast() }
            var host = String(authority), port = scheme ? 443 : 80
            if host.hasPrefix("[") {
                guard let close = host.firstIndex(of: "]") else { throw .invalid("--controller: '\(url)' has an unclosed [") }
                let after = host[host.index(after: close)...]
                if after.hasPrefix(":") {
                    guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { throw .invalid("--controller: port must be 1-65535") }
                    port = p
                }
                host = String(host[host.index(after: host.startIndex)..<close])
            } else if let colon = host.lastIndex(of: ":") {
                guard let p = Int(host[host.index(after: colon)...]), (1...65535).contains(p) else { throw .invalid("--controller: port must be 1-65535") }
                port = p
                host = String(host[..<colon])
            }
            guard !host.isEmpty else { throw .invalid("--controller: '\(url)' has no host") }
            (self.tls, self.host, self.port, self.basePath) = (scheme, host, port, base)
        }

        /// 127.0.0.0/8, ::1 or localhost.
        var isLoopback: Bool { isLoopbackHost(host) }
    }

    struct Response {
        var status: Int
        var headers: [String: String] = [:]
        var body: [UInt8]
    }

    let endpoint: Endpoint
    /// The CA the server's certificate must lead to; nil with `verify` false: not checked.
    var caPEM: String?
    var verify = true

    static let maxResponse = 1 << 20

    var hostHeader: String { endpoint.host.containsBytes(":") ? "[\(endpoint.host)]:\(endpoint.port)" : "\(endpoint.host):\(endpoint.port)" }

    /// The request head, with `Connection: close` (the answer ends with the connection).
    func head(_ method: String, _ path: String, headers: [(String, String)]) -> String {
        var head = "\(method) \(endpoint.basePath)\(path) HTTP/1.1\r\nHost: \(hostHeader)\r\nConnection: close\r\nUser-Agent: drover-agent\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        return head
    }

    func send(_ method: String, _ path: String, json body: [UInt8]? = nil, headers: [(String, String)] = [("Accept", "application/json")]) throws(EnrollmentError) -> Response {
        var head = head(method, path, headers: headers)
        if let body { head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n" }
        let request = Array((head + "\r\n").utf8) + (body ?? [])
        var response: UnsafeMutablePointer<CChar>?
        var length = 0
        var error = [CChar](repeating: 0, count: 512)
        let rc = request.withUnsafeBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { chars in
                drover_tls_exchange(
                    endpoint.host, Int32(endpoint.port), endpoint.tls ? 1 : 0, caPEM, verify ? 1 : 0, chars.baseAddress, chars.count,
                    Self.maxResponse, 15, &response, &length, &error, error.count)
            }
        }
        defer { drover_tls_free(response) }
        guard rc == 0, let response else {
            throw .unreachable("\(method) \(endpoint.tls ? "https" : "http")://\(hostHeader)\(endpoint.basePath)\(path): \(String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")
        }
        let bytes = UnsafeRawBufferPointer(start: response, count: length)
        return try Self.parse(Array(bytes))
    }

    /// Status line, headers, and a body framed by Content-Length, chunked encoding or the
    /// end of the connection.
    /// A download straight into `fd`: the answer's status and headers, and how many body
    /// bytes reached the file (also when the transfer broke, to resume from there).
    func download(_ path: String, headers: [(String, String)], into fd: Int32, atMost limit: Int64) -> (response: Response?, written: Int64, error: String?) {
        let request = Array((head("GET", path, headers: headers) + "\r\n").utf8)
        var head = [CChar](repeating: 0, count: 16_384)
        var headLength = 0
        var written: Int64 = 0
        var error = [CChar](repeating: 0, count: 512)
        let rc = request.withUnsafeBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { chars in
                drover_tls_download(
                    endpoint.host, Int32(endpoint.port), endpoint.tls ? 1 : 0, caPEM, verify ? 1 : 0, chars.baseAddress, chars.count, 30,
                    &head, head.count, &headLength, fd, limit, &written, &error, error.count)
            }
        }
        let message = rc == 0 ? nil : String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let response = try? Self.parse(head.prefix(headLength).map { UInt8(bitPattern: $0) }, withBody: false)
        return (response, written, message)
    }

    static func parse(_ bytes: [UInt8], withBody: Bool = true) throws(EnrollmentError) -> Response {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = bytes.indices.first(where: { bytes[$0...].starts(with: separator) }) else {
            throw .protocolError("the controller's answer has no complete HTTP header")
        }
        let head = String(decoding: bytes[..<end], as: UTF8.self).split(separator: "\r\n").map(String.init)
        let statusParts = head.first?.split(separator: " ") ?? []
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/1."), let status = Int(statusParts[1]) else {
            throw .protocolError("the controller's answer does not start with an HTTP status line")
        }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmedSpaces
        }
        guard withBody else { return Response(status: status, headers: headers, body: []) }
        var body = Array(bytes[(end + 4)...])
        if headers["transfer-encoding"]?.lowercased().containsBytes("chunked") == true {
            body = try dechunk(body)
        } else if let text = headers["content-length"] {
            guard let length = Int(text), length >= 0, length <= body.count else { throw .protocolError("the controller's answer was cut short") }
            body = Array(body.prefix(length))
        }
        return Response(status: status, headers: headers, body: body)
    }

    static func dechunk(_ bytes: [UInt8]) throws(EnrollmentError) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        while true {
            guard let lineEnd = (i..<max(i, bytes.count - 1)).first(where: { bytes[$0] == 13 && bytes[$0 + 1] == 10 }) else {
                throw .protocolError("the controller's chunked answer was cut short")
            }
            let sizeText = String(decoding: bytes[i..<lineEnd], as: UTF8.self).split(separator: ";").first.map(String.init) ?? ""
            guard let size = Int(sizeText.trimmedSpaces, radix: 16), size >= 0 else { throw .protocolError("bad chunk size in the controller's answer") }
            let start = lineEnd + 2
            if size == 0 { return out }
            guard size <= bytes.count - start - 2 else { throw .protocolError("the controller's chunked answer was cut short") }
            out += bytes[start..<(start + size)]
            i = start + size + 2
        }
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs.
    var trimmedSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
