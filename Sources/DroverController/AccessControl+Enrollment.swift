import DroverAPI
import DroverCore
import DroverStore
import Foundation

/// Devices join with a one-time enrollment token an admin made for their id, and get MQTT
/// credentials of their own; a revoked device is disconnected and refused from then on.
extension AccessControl {
    /// What enrollment needs from the rest of the controller.
    public struct Enrollment: Sendable {
        public var ca: CertificateAuthority
        /// The broker URL handed to devices.
        public var brokerURL: String
        /// Called with every device's credentials after each change, to rewrite the broker's
        /// files and have it reload them.
        public var credentialsChanged: @Sendable ([DeviceCredentialRecord]) throws -> Void

        public init(ca: CertificateAuthority, brokerURL: String, credentialsChanged: @escaping @Sendable ([DeviceCredentialRecord]) throws -> Void) {
            self.ca = ca
            self.brokerURL = brokerURL
            self.credentialsChanged = credentialsChanged
        }
    }

    public func setEnrollment(_ enrollment: Enrollment) throws {
        self.enrollment = enrollment
        try enrollment.credentialsChanged(security.credentials)
    }

    func requireEnrollment() throws -> Enrollment {
        guard let enrollment else { throw APIError(.serviceUnavailable, "enrollment is not set up on this controller") }
        return enrollment
    }

    /// A new enrollment token for `device`, good once until `ttl` seconds from now.
    public func enroll(device: String, request: EnrollRequest, now: Int64) throws -> EnrollmentIssued {
        let enrollment = try requireEnrollment()
        var errors: [FieldError] = []
        if !Names.isValidDeviceID(device) { errors.append(FieldError(path: "id", reason: "must be 1-64 letters, digits, '.', '_' or '-'")) }
        let ttl = request.ttlSeconds ?? EnrollRequest.defaultTTL
        if !EnrollRequest.ttlRange.contains(ttl) { errors.append(FieldError(path: "ttlSeconds", reason: "must be 60-2592000 (30 days)")) }
        let labels = request.labels ?? [:]
        if labels.count > 64 { errors.append(FieldError(path: "labels", reason: "at most 64 labels")) }
        for (key, value) in labels.sorted(by: { $0.key < $1.key }) where !Names.isValidLabelKey(key) || !Names.isValidLabelValue(value) {
            errors.append(FieldError(path: "labels.\(key.prefix(64))", reason: "is not a valid label key and value"))
        }
        guard errors.isEmpty else { throw APIError(.badRequest, "enrollment request is invalid", errors: errors) }
        var id = Secrets.randomHex(bytes: 6)
        while security.enrollments.contains(where: { $0.id == id }) { id = Secrets.randomHex(bytes: 6) }
        let secret = Secrets.randomHex(bytes: 32)
        let record = EnrollmentRecord(id: id, device: device, hash: Secrets.sha256Hex(secret), labels: labels, created: now, expires: now + Int64(ttl) * 1000)
        try save(SecurityBatch(enrollments: [record]))
        security.enrollments.append(record)
        // Spent and expired tokens are kept a day, for the refusal to say why; then dropped.
        security.enrollments.removeAll { ($0.used ?? $0.expires) < now - 86_400_000 }
        logger.notice("enrollment token made", metadata: ["device": "\(device)", "expires": "\(record.expires)"])
        let token = EnrollmentToken(id: id, secret: secret, caFingerprint: enrollment.ca.fingerprint)
        return EnrollmentIssued(device: device, token: token.text, expires: record.expires, caFingerprint: enrollment.ca.fingerprint)
    }

    /// Trades a token for the device's MQTT credentials; the token is spent by this.
    public func exchange(_ text: String, device expected: String? = nil, now: Int64) throws -> DeviceCredentials {
        let enrollment = try requireEnrollment()
        guard let token = EnrollmentToken(parsing: text) else {
            throw APIError(.unauthorized, "not an enrollment token (they read dre_...; make one with drover devices enroll ID)")
        }
        guard let index = security.enrollments.firstIndex(where: { $0.id == token.id }),
            Secrets.constantTimeEqual(security.enrollments[index].hash, Secrets.sha256Hex(token.secret))
        else { throw APIError(.unauthorized, "enrollment token unknown to this controller") }
        var record = security.enrollments[index]
        guard record.used == nil else { throw APIError(.unauthorized, "enrollment token for '\(record.device)' was already used; make a new one") }
        guard now < record.expires else { throw APIError(.unauthorized, "enrollment token for '\(record.device)' expired; make a new one") }
        if let expected, expected != record.device {
            throw APIError(.conflict, "this enrollment token is for device '\(record.device)', not '\(expected.prefix(64))'; it is not spent")
        }
        guard Secrets.constantTimeEqual(token.caFingerprint, enrollment.ca.fingerprint) else {
            throw APIError(.unauthorized, "enrollment token names another CA than this controller's")
        }
        record.used = now
        let password = Secrets.randomHex(bytes: 32)
        let credential = DeviceCredentialRecord(device: record.device, passwordHash: try BrokerCredentials.mosquittoHash(password: password), issued: now, labels: record.labels)
        var credentials = security.credentials.filter { $0.device != record.device }
        credentials.append(credential)
        // The broker's files first: if they cannot be written, the token is not spent.
        try publishCredentials(enrollment, credentials)
        do {
            try save(SecurityBatch(enrollments: [record], credentials: [credential]))
        } catch {
            try? publishCredentials(enrollment, security.credentials)
            throw error
        }
        security.enrollments[index] = record
        security.credentials = credentials
        revoked.set(record.device, revoked: false)
        logger.notice("device enrolled", metadata: ["device": "\(record.device)"])
        return DeviceCredentials(
            device: record.device, broker: enrollment.brokerURL, username: record.device, password: password, labels: record.labels, ca: enrollment.ca.certificatePEM)
    }

    /// Refuses the device from now on: its credentials leave the broker's password file and
    /// the broker, reloaded, disconnects it. Enrolling it again gives it new credentials.
    public func revokeDevice(_ device: String, now: Int64) throws {
        let enrollment = try requireEnrollment()
        // Tokens not yet used for it go too: a revoked device must not come back through one,
        // nor a device that never enrolled through a token that leaked.
        let pending = security.enrollments.filter { $0.device == device && $0.used == nil }.map { var e = $0; e.used = now; return e }
        let index = security.credentials.firstIndex { $0.device == device }
        guard index != nil || !pending.isEmpty else {
            throw APIError(.notFound, "device '\(device.prefix(64))' has no credentials and no enrollment token")
        }
        var credentials = security.credentials
        var changed: [DeviceCredentialRecord] = []
        if let index, credentials[index].revoked == nil {
            credentials[index].revoked = now
            changed.append(credentials[index])
        }
        try save(SecurityBatch(enrollments: pending, credentials: changed))
        security.credentials = credentials
        for e in pending { if let i = security.enrollments.firstIndex(where: { $0.id == e.id }) { security.enrollments[i] = e } }
        if index != nil {
            // Also when it was revoked before: a broker file that could not be written then is now.
            revoked.set(device, revoked: true)
            try publishCredentials(enrollment, credentials)
        }
        logger.notice("device revoked", metadata: ["device": "\(device)", "pendingTokens": "\(pending.count)"])
    }

    /// Enrolled labels of a device that is not revoked; they win over its agent's.
    public func enrolledLabels(_ device: String) -> [String: String]? {
        security.credentials.first { $0.device == device && $0.revoked == nil }?.labels
    }

    public func isRevoked(_ device: String) -> Bool { revoked.contains(device) }

    /// `Authorization: Basic base64(<device id>:<password>)` with a device's own MQTT
    /// credentials, not revoked: how agents pull images from the controller's registry.
    func authorizeDevice(_ header: String?) -> String? {
        guard let header, header.lowercased().hasPrefix("basic "), header.count < 1024,
            let decoded = Data(base64Encoded: String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
            let text = String(data: decoded, encoding: .utf8), let colon = text.firstIndex(of: ":")
        else { return nil }
        let device = String(text[..<colon]), password = String(text[text.index(after: colon)...])
        guard let record = security.credentials.first(where: { $0.device == device && $0.revoked == nil }),
            BrokerCredentials.verify(password: password, against: record.passwordHash)
        else { return nil }
        return device
    }

    private func publishCredentials(_ enrollment: Enrollment, _ credentials: [DeviceCredentialRecord]) throws {
        do { try enrollment.credentialsChanged(credentials) } catch {
            throw APIError(.internalServerError, "cannot update the broker's password file: \(error)")
        }
    }
}
