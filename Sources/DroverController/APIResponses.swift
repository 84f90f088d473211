import DroverCore
import Foundation
import Hummingbird

/// The one JSON configuration of the REST API.
enum APIJSON {
    static func encode<T: Encodable>(_ value: T) -> ByteBuffer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return ByteBuffer(bytes: data)
    }

    static func response<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: encode(value)))
    }
}

/// An API error: JSON with a message and, for invalid input, every field at fault.
///
/// `{"message": "manifest is invalid", "errors": [{"path": "spec.replicas", "reason": "must be ..."}]}`
struct APIError: HTTPResponseError {
    struct Body: Codable {
        var message: String
        var errors: [FieldError]
    }

    var status: HTTPResponse.Status
    var body: Body

    init(_ status: HTTPResponse.Status, _ message: String, errors: [FieldError] = []) {
        self.status = status
        self.body = Body(message: message, errors: errors)
    }

    /// Maps the fleet's typed errors; anything else is an internal error.
    init(_ error: any Error) {
        if let api = error as? APIError {
            self = api
            return
        }
        guard let error = error as? FleetError else {
            self.init(.internalServerError, "\(error)")
            return
        }
        switch error {
        case .notFound(let kind, let name): self.init(.notFound, "\(kind) '\(name)' not found")
        case .invalid(let failure): self.init(.unprocessableContent, "invalid input: \(failure)", errors: failure.errors)
        case .storage(let detail): self.init(.internalServerError, "store write failed: \(detail)")
        }
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        APIJSON.response(body, status: status)
    }
}
