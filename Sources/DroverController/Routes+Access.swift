import DroverAPI
import DroverCore
import DroverStore
import Foundation
import Hummingbird

extension API {
    /// Enrollment: tokens made by an admin, traded by agents (no bearer token: the
    /// enrollment token is the credential), and revocation.
    static func enrollmentRoutes(open: RouterGroup<BasicRequestContext>, admin: RouterGroup<BasicRequestContext>, access: AccessControl, fleet: Fleet) {
        open.get("enroll/ca") { _, _ in
            let enrollment = try await access.requireEnrollment()
            return APIJSON.response(CAInfo(certificate: enrollment.ca.certificatePEM, fingerprint: enrollment.ca.fingerprint))
        }
        open.post("enroll") { request, _ in
            let text = try await bodyText(request)
            guard let body = try? JSONDecoder().decode(EnrollExchange.self, from: Data(text.utf8)) else {
                throw APIError(.badRequest, "body must be JSON {\"token\": \"dre_...\"}", errors: [FieldError(path: "token", reason: "is required")])
            }
            return APIJSON.response(try await access.exchange(body.token, device: body.device, now: Fleet.nowMillis()))
        }
        admin.post("devices/:id/enroll") { request, context in
            let id = try context.parameters.require("id")
            let text = try await bodyText(request)
            let body: EnrollRequest
            if text.allSatisfy(\.isWhitespace) {
                body = EnrollRequest()
            } else {
                do { body = try JSONDecoder().decode(EnrollRequest.self, from: Data(text.utf8)) } catch {
                    throw APIError(.badRequest, "body must be empty or JSON {\"labels\": {...}, \"ttlSeconds\": N}", errors: [
                        FieldError(path: "labels", reason: "must be an object of strings"), FieldError(path: "ttlSeconds", reason: "must be a whole number"),
                    ])
                }
            }
            return APIJSON.response(try await access.enroll(device: id, request: body, now: Fleet.nowMillis()), status: .created)
        }
        admin.post("devices/:id/revoke") { _, context in
            let id = try context.parameters.require("id")
            try await access.revokeDevice(id, now: Fleet.nowMillis())
            // Its replicas move elsewhere; a device that is not in the fleet yet has none.
            try? await fleet.revoked(id)
            return APIJSON.response(["device": id, "status": "revoked"])
        }
    }

    /// `/v1/tokens`: create, list and revoke API tokens (admin only).
    static func tokenRoutes(_ admin: RouterGroup<BasicRequestContext>, access: AccessControl) {
        admin.get("tokens") { _, _ in APIJSON.response(await access.tokenList()) }
        admin.post("tokens") { request, _ in
            let text = try await bodyText(request)
            let body: TokenRequest
            do { body = try JSONDecoder().decode(TokenRequest.self, from: Data(text.utf8)) } catch {
                throw APIError(.badRequest, "body must be JSON {\"name\": NAME, \"role\": \"admin\" | \"operator\" | \"viewer\"}", errors: [
                    FieldError(path: "role", reason: "must be admin, operator or viewer"), FieldError(path: "name", reason: "is required"),
                ])
            }
            return APIJSON.response(try await access.createToken(name: body.name, role: body.role, now: Fleet.nowMillis()), status: .created)
        }
        admin.delete("tokens/:id") { _, context in
            let id = try context.parameters.require("id")
            return APIJSON.response(try await access.revokeToken(id, now: Fleet.nowMillis()))
        }
    }
}

/// Lets a request through only with a bearer token whose role is at least `needs`:
/// none or an unknown one is a 401 with a hint, too small a role a 403.
struct Authorization: RouterMiddleware {
    typealias Context = BasicRequestContext
    let access: AccessControl
    let needs: Role
    /// Also let enrolled devices in with their MQTT credentials (HTTP Basic), as viewers.
    var devices = false

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if devices, needs == .viewer, await access.authorizeDevice(request.headers[.authorization]) != nil {
            return try await next(request, context)
        }
        switch await access.authorize(request.headers[.authorization], needs: needs) {
        case .success: return try await next(request, context)
        case .failure(let denial): return Self.response(denial, request: request, needs: needs)
        }
    }

    static let hint = "send 'Authorization: Bearer <token>' (drover: --token, DROVER_TOKEN or a context in ~/.config/drover/config.yaml; the first admin token is admin.token in the controller's data dir)"

    static func response(_ denial: AccessControl.Denial, request: Request, needs: Role) -> Response {
        let (status, message): (HTTPResponse.Status, String)
        switch denial {
        case .missing: (status, message) = (.unauthorized, "this API needs a bearer token: \(hint)")
        case .malformed: (status, message) = (.unauthorized, "the Authorization header is not 'Bearer drv_...': \(hint)")
        case .unknown: (status, message) = (.unauthorized, "the token is not known to this controller: \(hint)")
        case .revoked(let name): (status, message) = (.unauthorized, "token '\(name)' was revoked; ask an admin for a new one")
        case .forbidden(let name, let role):
            (status, message) = (.forbidden, "token '\(name)' has role \(role.rawValue); \(request.method.rawValue) \(request.uri.path) needs \(needs.rawValue)")
        }
        var response = APIJSON.response(APIError.Body(message: message, errors: []), status: status)
        if status == .unauthorized { response.headers[.wwwAuthenticate] = "Bearer realm=\"drover\"" }
        return response
    }
}
