import DroverAPI
import DroverCore
import DroverStore
import Foundation
import Logging
import Synchronization

/// Who may use the REST API: bearer tokens with a role, kept hashed in `controller.db`.
/// A token reads `drv_<id>_<secret>`: the id finds the record, the secret is checked against
/// its SHA-256. Revocation takes effect on the next request.
public actor AccessControl {
    private let store: any SecurityStore
    let logger: Logger
    private var tokens: [String: APITokenRecord]
    var security: SecuritySnapshot
    var enrollment: Enrollment?
    /// Read without awaiting by the ingest, for every message.
    public nonisolated let revoked: RevokedDevices

    public init(store: any SecurityStore, logger: Logger) throws {
        self.store = store
        self.logger = logger
        security = try store.loadSecurity()
        tokens = Dictionary(security.tokens.map { ($0.id, $0) }, uniquingKeysWith: { _, b in b })
        revoked = RevokedDevices(Set(security.credentials.filter { $0.revoked != nil }.map(\.device)))
    }

    static let tokenPrefix = "drv_"

    public enum Denial: Error, Equatable {
        case missing
        case malformed
        case unknown
        case revoked(name: String)
        case forbidden(name: String, role: Role)
    }

    /// Checks an `Authorization` header value against the role a route needs.
    public func authorize(_ header: String?, needs needed: Role) -> Result<TokenView, Denial> {
        guard let header, !header.isEmpty else { return .failure(.missing) }
        guard header.lowercased().hasPrefix("bearer ") else { return .failure(.malformed) }
        let token = header.dropFirst(7).trimmingCharacters(in: .whitespaces)
        let parts = token.split(separator: "_", omittingEmptySubsequences: false)
        guard token.hasPrefix(Self.tokenPrefix), parts.count == 3 else { return .failure(.malformed) }
        guard let record = tokens[String(parts[1])], Secrets.constantTimeEqual(record.hash, Secrets.sha256Hex(String(parts[2]))),
            let role = Role(rawValue: record.role)
        else { return .failure(.unknown) }
        guard record.revoked == nil else { return .failure(.revoked(name: record.name)) }
        guard role >= needed else { return .failure(.forbidden(name: record.name, role: role)) }
        return .success(Self.view(record))
    }

    /// A new token; its secret is returned here and never again.
    public func createToken(name: String, role: Role, now: Int64) throws -> TokenCreated {
        // A name never looks like an id (12 hex digits), so that revoking by either is unambiguous.
        guard Names.isValidDeviceID(name), !(name.count == 12 && name.allSatisfy(\.isHexDigit)) else {
            throw APIError(.badRequest, "token name '\(name.prefix(64))' is invalid", errors: [
                FieldError(path: "name", reason: "must be 1-64 letters, digits, '.', '_' or '-', and not 12 hex digits (that is what ids look like)"),
            ])
        }
        guard !tokens.values.contains(where: { $0.name == name && $0.revoked == nil }) else {
            throw APIError(.conflict, "a token named '\(name)' exists; revoke it first or pick another name", errors: [FieldError(path: "name", reason: "is taken")])
        }
        var id = Secrets.randomHex(bytes: 6)
        while tokens[id] != nil { id = Secrets.randomHex(bytes: 6) }
        let secret = Secrets.randomHex(bytes: 32)
        let record = APITokenRecord(id: id, name: name, role: role.rawValue, hash: Secrets.sha256Hex(secret), created: now)
        try save(SecurityBatch(tokens: [record]))
        tokens[id] = record
        logger.notice("API token created", metadata: ["id": "\(id)", "name": "\(name)", "role": "\(role.rawValue)"])
        return TokenCreated(token: Self.tokenPrefix + id + "_" + secret, info: Self.view(record))
    }

    public func tokenList() -> [TokenView] {
        tokens.values.sorted { ($0.created, $0.id) < ($1.created, $1.id) }.map(Self.view)
    }

    /// Revokes by id or by name. The last admin token that is not revoked stays: without it
    /// nobody could create tokens again.
    public func revokeToken(_ key: String, now: Int64) throws -> TokenView {
        guard var record = tokens[key] ?? tokens.values.first(where: { $0.name == key && $0.revoked == nil }) else {
            throw APIError(.notFound, "token '\(key.prefix(64))' not found")
        }
        guard record.revoked == nil else { return Self.view(record) }
        let admins = tokens.values.filter { $0.role == Role.admin.rawValue && $0.revoked == nil }
        if record.role == Role.admin.rawValue, admins.count == 1 {
            throw APIError(.conflict, "'\(record.name)' is the last admin token; create another admin token before revoking it")
        }
        record.revoked = now
        try save(SecurityBatch(tokens: [record]))
        tokens[record.id] = record
        logger.notice("API token revoked", metadata: ["id": "\(record.id)", "name": "\(record.name)"])
        return Self.view(record)
    }

    /// At the first start (no token was ever made): an admin token, written owner-only to
    /// `admin.token` in the data directory and returned so that it is printed once.
    public func bootstrapAdmin(dataDir: String, now: Int64) throws -> String? {
        guard tokens.isEmpty else { return nil }
        let created = try createToken(name: "admin", role: .admin, now: now)
        try Secrets.writeOwnerOnly(created.token + "\n", to: dataDir + "/admin.token")
        return created.token
    }

    func save(_ batch: SecurityBatch) throws {
        do { try store.write(batch) } catch {
            throw APIError(.internalServerError, "store write failed: \(error)")
        }
    }

    static func view(_ r: APITokenRecord) -> TokenView {
        TokenView(id: r.id, name: r.name, role: Role(rawValue: r.role) ?? .viewer, created: r.created, revoked: r.revoked)
    }
}

/// Devices whose credentials were revoked, for the ingest to drop their messages.
public final class RevokedDevices: Sendable {
    private let devices: Mutex<Set<String>>

    init(_ devices: Set<String>) {
        self.devices = Mutex(devices)
    }

    public func contains(_ device: String) -> Bool { devices.withLock { $0.contains(device) } }
    func set(_ device: String, revoked: Bool) {
        devices.withLock { set in
            if revoked { set.insert(device) } else { set.remove(device) }
        }
    }
}
