import AsyncHTTPClient
import DroverPOSIX
import Foundation
import NIOCore
import NIOSSL

/// The CLI's side of the REST API: one request, one JSON answer, and errors as one line.
/// HTTPS is verified against the system's roots, plus the context's CA when one is set.
struct ControllerClient {
    let connection: Connection
    var base: String { connection.controller }

    struct APIErrorBody: Decodable {
        struct Field: Decodable { var path: String; var reason: String }
        var message: String
        var errors: [Field]?
    }

    var configuration: HTTPClient.Configuration {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let ca = connection.ca {
            do {
                tls.additionalTrustRoots = [.certificates(try NIOSSLCertificate.fromPEMFile(ca))]
            } catch {
                fail("cannot read the CA certificate \(ca): \(error)")
            }
        }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls, redirectConfiguration: .disallow)
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(30))
        return configuration
    }

    /// Sends a request; returns the body of a 2xx answer, or exits with the API's message.
    func send(_ method: String, _ path: String, body: Data? = nil, contentType: String = "application/json") async -> Data {
        let (status, data) = await exchange(method, path, body: body, contentType: contentType)
        guard (200..<300).contains(status) else {
            if let api = try? JSONDecoder().decode(APIErrorBody.self, from: data) {
                let fields = (api.errors ?? []).map { "\($0.path): \($0.reason)" }
                fail(fields.isEmpty || status == 401 || status == 403 ? api.message : fields.joined(separator: "; "))
            }
            fail("controller answered HTTP \(status) for \(method) \(path)")
        }
        return data
    }

    /// One request and its answer, whatever the status; exits only when the controller
    /// cannot be reached.
    func exchange(_ method: String, _ path: String, body: Data? = nil, contentType: String = "application/json", timeout: Int64 = 30) async -> (Int, Data) {
        let url = base.hasSuffix("/") ? String(base.dropLast()) + path : base + path
        guard let parsed = URL(string: url), parsed.host != nil, ["http", "https"].contains(parsed.scheme ?? "") else {
            fail("controller URL '\(base)' is not a valid http:// or https:// URL")
        }
        var request = HTTPClientRequest(url: url)
        request.method = .init(rawValue: method)
        if let body {
            request.body = .bytes(ByteBuffer(bytes: body))
            request.headers.add(name: "Content-Type", value: contentType)
        }
        if let token = connection.token {
            // Over plain HTTP anyone on the way reads the token: only to this machine.
            let host = parsed.host ?? ""
            guard parsed.scheme == "https" || isLoopbackHost(host) else {
                fail("not sending a token over plain HTTP to \(host); use https:// (the controller's --tls)")
            }
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
        }
        let status: Int
        let data: Data
        do {
            (status, data) = try await HTTPClient.withHTTPClient(configuration: configuration) { client in
                let response = try await client.execute(request, timeout: .seconds(timeout))
                let bytes = try await response.body.collect(upTo: 64 << 20)
                return (Int(response.status.code), Data(bytes.readableBytesView))
            }
        } catch {
            fail("cannot reach the controller at \(base): \(Self.describe(error)) (is drover-controller running? set --controller, DROVER_CONTROLLER or a context)")
        }
        return (status, data)
    }

    /// One line for a transport error: NIO's descriptions run long.
    static func describe(_ error: any Error) -> String {
        if let ssl = error as? NIOSSLError { return "TLS: \(ssl)" }
        if let ssl = error as? BoringSSLError { return "TLS: \(ssl)" }
        let text = "\(error)"
        if text.contains("connectionRefused") || text.contains("Connection refused") { return "connection refused" }
        return String(text.prefix(200)).replacingOccurrences(of: "\n", with: " ")
    }

    /// For a loop that goes on (`logs --follow`): the decoded 2xx answer, or nil for any other.
    func tryGet<T: Decodable>(_ path: String, as type: T.Type) async -> T? {
        let (status, data) = await exchange("GET", path)
        guard (200..<300).contains(status) else { return nil }
        return try? JSONDecoder().decode(type, from: data)
    }

    func get<T: Decodable>(_ path: String, as type: T.Type) async -> (T, Data) {
        let data = await send("GET", path)
        do {
            return (try JSONDecoder().decode(type, from: data), data)
        } catch {
            fail("unexpected answer from the controller for \(path): \(error)")
        }
    }
}

extension String {
    /// A path segment with anything outside the URL path alphabet escaped.
    var pathEscaped: String { addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? self }
}
