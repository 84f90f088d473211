/// One thing wrong with an input, with the path of the field that is wrong
/// (`spec.resources.memory`), so that a user knows where to look.
public struct FieldError: Error, Hashable, Sendable, Codable, CustomStringConvertible {
    public var path: String
    public var reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    public var description: String { path.isEmpty ? reason : "\(path): \(reason)" }
}

/// Everything wrong with an input at once: validation never stops at the first error.
public struct ValidationFailure: Error, Sendable, CustomStringConvertible {
    public var errors: [FieldError]

    public init(_ errors: [FieldError]) { self.errors = errors }

    public var description: String { errors.map(\.description).joined(separator: "; ") }
}
