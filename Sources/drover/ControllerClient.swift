import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The CLI's side of the REST API: one request, one JSON answer, and errors as one line.
struct ControllerClient {
    let base: String

    struct APIErrorBody: Decodable {
        struct Field: Decodable { var path: String; var reason: String }
        var message: String
        var errors: [Field]?
    }

    /// Sends a request; returns the body of a 2xx answer, or exits with the API's message.
    func send(_ method: String, _ path: String, body: Data? = nil, contentType: String = "application/json") async -> Data {
        guard let url = URL(string: base.hasSuffix("/") ? String(base.dropLast()) + path : base + path) else {
            fail("controller URL '\(base)' is not a valid URL")
        }
        var request = URLRequest(url: url, timeoutInterval: 15)
        request.httpMethod = method
        if let body {
            request.httpBody = body
            request.setValue(contentType, forHTTPHeaderField: "Content-Type")
        }
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await URLSession.shared.data(for: request)
        } catch {
            fail("cannot reach the controller at \(base): \(error.localizedDescription) (is drover-controller running? set --controller or DROVER_CONTROLLER)")
        }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard (200..<300).contains(status) else {
            if let api = try? JSONDecoder().decode(APIErrorBody.self, from: data) {
                let fields = (api.errors ?? []).map { "\($0.path): \($0.reason)" }
                fail(fields.isEmpty ? api.message : fields.joined(separator: "; "))
            }
            fail("controller answered HTTP \(status) for \(method) \(path)")
        }
        return data
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
