/// What a bearer token may do. Each role includes the ones below it.
public enum Role: String, Codable, Sendable, CaseIterable, Comparable {
    /// Read-only: every GET and `POST /v1/plan` (a dry run).
    case viewer
    /// Changes workloads and devices' schedulability: apply, delete, scale, cordon, drain.
    case `operator`
    /// Everything, including tokens, enrollment and revocation.
    case admin

    private var rank: Int {
        switch self {
        case .viewer: 0
        case .operator: 1
        case .admin: 2
        }
    }

    public static func < (a: Role, b: Role) -> Bool { a.rank < b.rank }
}

/// `POST /v1/tokens`.
public struct TokenRequest: Codable, Sendable {
    public var name: String
    public var role: Role

    public init(name: String, role: Role) {
        self.name = name
        self.role = role
    }
}

/// A token as `GET /v1/tokens` lists it: never its secret.
public struct TokenView: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var role: Role
    /// Milliseconds since the epoch.
    public var created: Int64
    public var revoked: Int64?

    public init(id: String, name: String, role: Role, created: Int64, revoked: Int64? = nil) {
        self.id = id
        self.name = name
        self.role = role
        self.created = created
        self.revoked = revoked
    }
}

/// The answer to `POST /v1/tokens`: the only time the token itself is shown.
public struct TokenCreated: Codable, Sendable {
    public var token: String
    public var info: TokenView

    public init(token: String, info: TokenView) {
        self.token = token
        self.info = info
    }
}
