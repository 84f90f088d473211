/// `POST /v1/devices/{id}/enroll` (admin): a one-time enrollment token for a device.
public struct EnrollRequest: Codable, Sendable {
    /// Labels the controller gives the device; they win over what its agent says.
    public var labels: [String: String]?
    /// How long the token stays good: 60 s to 30 days; default 24 h.
    public var ttlSeconds: Int?

    public init(labels: [String: String]? = nil, ttlSeconds: Int? = nil) {
        self.labels = labels
        self.ttlSeconds = ttlSeconds
    }

    public static let ttlRange = 60...(30 * 86_400)
    public static let defaultTTL = 86_400
}

/// The answer: the token, shown once.
public struct EnrollmentIssued: Codable, Sendable {
    public var device: String
    /// `dre_<id>_<secret>_<CA SPKI SHA-256, hex>`.
    public var token: String
    /// Milliseconds since the epoch.
    public var expires: Int64
    public var caFingerprint: String

    public init(device: String, token: String, expires: Int64, caFingerprint: String) {
        self.device = device
        self.token = token
        self.expires = expires
        self.caFingerprint = caFingerprint
    }
}

/// `GET /v1/enroll/ca` (no token): the controller's CA certificate, for an agent to compare
/// with the fingerprint in its enrollment token before it sends the token.
public struct CAInfo: Codable, Sendable {
    public var certificate: String
    public var fingerprint: String

    public init(certificate: String, fingerprint: String) {
        self.certificate = certificate
        self.fingerprint = fingerprint
    }
}

/// `POST /v1/enroll` (the enrollment token is the credential).
public struct EnrollExchange: Codable, Sendable {
    public var token: String
    /// The device id the agent was started with, if any: a token for another device is then
    /// refused without being spent.
    public var device: String?

    public init(token: String, device: String? = nil) {
        self.token = token
        self.device = device
    }
}

/// What an agent gets for its token: its MQTT credentials and the CA to verify the broker.
public struct DeviceCredentials: Codable, Sendable, Equatable {
    public var device: String
    /// `mqtt://HOST:PORT`, or `mqtts://HOST:PORT` for TLS.
    public var broker: String
    public var username: String
    public var password: String
    public var labels: [String: String]
    public var ca: String
    /// The controller's API URL, as the agent enrolled with it (kept by the agent, not sent).
    public var controller: String?

    public init(device: String, broker: String, username: String, password: String, labels: [String: String], ca: String, controller: String? = nil) {
        self.controller = controller
        self.device = device
        self.broker = broker
        self.username = username
        self.password = password
        self.labels = labels
        self.ca = ca
    }
}

/// An enrollment token's parts. It reads `dre_<id>_<secret>_<fingerprint>`: the id finds the
/// record, the secret proves it, the fingerprint is the controller CA's.
public struct EnrollmentToken: Sendable, Equatable {
    public var id: String
    public var secret: String
    public var caFingerprint: String

    public static let prefix = "dre_"

    public init(id: String, secret: String, caFingerprint: String) {
        self.id = id
        self.secret = secret
        self.caFingerprint = caFingerprint
    }

    /// nil unless the text has the token's shape (hex parts of the right lengths).
    public init?(parsing text: String) {
        let trimmed = String(text.filter { !$0.isWhitespace })
        guard trimmed.hasPrefix(Self.prefix) else { return nil }
        let parts = trimmed.dropFirst(Self.prefix.count).split(separator: "_", omittingEmptySubsequences: false).map(String.init)
        let isHex = { (s: String, n: Int) in s.count == n && s.allSatisfy { $0.isHexDigit && !$0.isUppercase } }
        guard parts.count == 3, isHex(parts[0], 12), isHex(parts[1], 64), isHex(parts[2], 64) else { return nil }
        (id, secret, caFingerprint) = (parts[0], parts[1], parts[2])
    }

    public var text: String { Self.prefix + id + "_" + secret + "_" + caFingerprint }
}
