import DroverCore
import Hummingbird

extension API {
    /// Every path the API serves and its methods: any other method on one of these paths is
    /// answered 405 with an `Allow` header, not 404 (the path exists).
    static let methods: [(path: String, allowed: [HTTPRequest.Method])] = [
        ("status", [.get]), ("openapi.yaml", [.get]), ("devices", [.get]), ("devices/:id", [.get]),
        ("devices/:id/cordon", [.post]), ("devices/:id/uncordon", [.post]), ("devices/:id/drain", [.post]),
        ("workloads", [.get, .post]), ("workloads/:name", [.get, .delete]), ("workloads/:name/scale", [.post]),
        ("plan", [.post]), ("events", [.get]), ("health", [.get]), ("tokens", [.get, .post]), ("tokens/:id", [.delete]),
        ("enroll", [.post]), ("enroll/ca", [.get]), ("devices/:id/enroll", [.post]), ("devices/:id/revoke", [.post]),
        ("images", [.get, .delete]), ("workloads/:name/logs", [.get]), ("workloads/:name/revisions", [.get]), ("workloads/:name/undo", [.post]),
        ("workloads/:name/rollout", [.get]), ("workloads/:name/rollout/pause", [.post]), ("workloads/:name/rollout/resume", [.post]),
        ("workloads/:name/rollout/abort", [.post]),
    ]

    /// The methods of the API path `path` (`/v1/devices/gw-1`) matches, or nil for no path.
    static func allowedMethods(for path: String) -> [HTTPRequest.Method]? {
        if path == "/metrics" { return [.get] }
        guard path.hasPrefix("/v1/") else { return nil }
        let segments = path.dropFirst(4).split(separator: "/", omittingEmptySubsequences: false)
        return methods.first { entry in
            let pattern = entry.path.split(separator: "/")
            return pattern.count == segments.count && zip(pattern, segments).allSatisfy { $0.hasPrefix(":") ? !$1.isEmpty : $0 == $1 }
        }?.allowed
    }
    /// An optional integer query parameter: absent gives nil; present but not a whole number
    /// (`limit=null`, `limit=x`) is a 400 naming it.
    static func integerParameter(_ name: String, in request: Request) throws -> Int? {
        guard let text = request.uri.queryParameters.get(name) else { return nil }
        guard let value = Int(text) else {
            throw APIError(.badRequest, "\(name) must be a whole number", errors: [FieldError(path: name, reason: "must be a whole number, not '\(text.prefix(40))'")])
        }
        return value
    }
}

/// Any method a path does not have, whatever it is (TRACE, OPTIONS, QUERY, ...), is a 405
/// naming the path's methods in `Allow`: the router alone would answer 404, as if the path did
/// not exist.
struct MethodNotAllowed: RouterMiddleware {
    typealias Context = BasicRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            guard let allowed = API.allowedMethods(for: request.uri.path), !allowed.contains(request.method) else { throw error }
            let allow = allowed.map(\.rawValue).joined(separator: ", ")
            var response = APIJSON.response(
                APIError.Body(message: "\(request.method.rawValue) is not allowed on \(request.uri.path.prefix(200)); use \(allow)", errors: []), status: .methodNotAllowed)
            response.headers[.allow] = allow
            return response
        }
    }
}
