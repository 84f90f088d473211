/// What the controller keeps to say who may do what: API tokens, one-time enrollment tokens
/// and the MQTT credentials of enrolled devices. Secrets are never stored, only their hashes.
public struct APITokenRecord: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    /// `admin`, `operator` or `viewer`.
    public var role: String
    /// SHA-256 of the token's secret part, hex.
    public var hash: String
    public var created: Int64
    public var revoked: Int64?

    public init(id: String, name: String, role: String, hash: String, created: Int64, revoked: Int64? = nil) {
        self.id = id
        self.name = name
        self.role = role
        self.hash = hash
        self.created = created
        self.revoked = revoked
    }
}

/// A one-time enrollment token for one device id: good until `expires`, once.
public struct EnrollmentRecord: Codable, Sendable, Equatable {
    public var id: String
    public var device: String
    public var hash: String
    public var labels: [String: String]
    public var created: Int64
    public var expires: Int64
    public var used: Int64?

    public init(id: String, device: String, hash: String, labels: [String: String], created: Int64, expires: Int64, used: Int64? = nil) {
        self.id = id
        self.device = device
        self.hash = hash
        self.labels = labels
        self.created = created
        self.expires = expires
        self.used = used
    }
}

/// A device's MQTT credentials: the username is the device id; `passwordHash` is the
/// mosquitto password-file form of its password (`$7$101$salt$hash`).
public struct DeviceCredentialRecord: Codable, Sendable, Equatable {
    public var device: String
    public var passwordHash: String
    public var issued: Int64
    /// Given at enrollment by the admin; they win over the labels its agent announces.
    public var labels: [String: String]
    public var revoked: Int64?

    public init(device: String, passwordHash: String, issued: Int64, labels: [String: String] = [:], revoked: Int64? = nil) {
        self.device = device
        self.passwordHash = passwordHash
        self.issued = issued
        self.labels = labels
        self.revoked = revoked
    }
}

/// Everything security-related, as loaded at start.
public struct SecuritySnapshot: Sendable {
    public var tokens: [APITokenRecord] = []
    public var enrollments: [EnrollmentRecord] = []
    public var credentials: [DeviceCredentialRecord] = []

    public init() {}
}

/// Changes written together in one transaction.
public struct SecurityBatch: Sendable {
    public var tokens: [APITokenRecord] = []
    public var enrollments: [EnrollmentRecord] = []
    public var credentials: [DeviceCredentialRecord] = []

    public init(tokens: [APITokenRecord] = [], enrollments: [EnrollmentRecord] = [], credentials: [DeviceCredentialRecord] = []) {
        self.tokens = tokens
        self.enrollments = enrollments
        self.credentials = credentials
    }
}

public protocol SecurityStore: Sendable {
    func loadSecurity() throws -> SecuritySnapshot
    func write(_ batch: SecurityBatch) throws
}
