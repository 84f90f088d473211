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
    ]

    static func refuseOtherMethods(on v1: RouterGroup<BasicRequestContext>) {
        for (path, allowed) in methods {
            let allow = allowed.map(\.rawValue).joined(separator: ", ")
            for method in [HTTPRequest.Method.get, .post, .put, .patch, .delete] where !allowed.contains(method) {
                v1.on(RouterPath(path), method: method) { _, _ in
                    var response = APIJSON.response(APIError.Body(message: "\(method.rawValue) is not allowed on /v1/\(path); use \(allow)", errors: []), status: .methodNotAllowed)
                    response.headers[.allow] = allow
                    return response
                }
            }
        }
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
