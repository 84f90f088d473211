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

/// An image in the controller's registry, as `GET /v1/images` lists it.
public struct ImageView: Codable, Sendable, Equatable {
    public var name: String
    public var tag: String
    public var digest: String
    /// Bytes of its config and layers.
    public var size: Int64
    /// Workloads whose pinned image is this digest.
    public var usedBy: [String]

    public init(name: String, tag: String, digest: String, size: Int64, usedBy: [String]) {
        self.name = name
        self.tag = tag
        self.digest = digest
        self.size = size
        self.usedBy = usedBy
    }
}

/// One replica's log tail, as `GET /v1/workloads/{name}/logs` answers: its output, or why
/// there is none (the device is away, did not answer, does not know the replica).
public struct LogView: Codable, Sendable, Equatable {
    public var replica: String
    public var device: String
    public var output: String?
    public var error: String?

    public init(replica: String, device: String, output: String? = nil, error: String? = nil) {
        self.replica = replica
        self.device = device
        self.output = output
        self.error = error
    }
}
