import CDroverTLS
import DroverAPI
import DroverCore
import DroverJSON
import DroverPOSIX
import Glibc

public enum EnrollmentError: Error, CustomStringConvertible, Equatable {
    case invalid(String)
    case unreachable(String)
    case protocolError(String)
    case refused(String)
    case wrongController(String)
    case storage(String)

    public var description: String {
        switch self {
        case .invalid(let m), .protocolError(let m), .storage(let m): m
        case .unreachable(let m): "cannot reach the controller: \(m)"
        case .refused(let m): "the controller refused the enrollment: \(m)"
        case .wrongController(let m): m
        }
    }
}

/// The device's MQTT credentials and the controller's CA, kept in the data directory
/// (`credentials.json` and `ca.pem`, owner-only) from the enrollment on.
public enum StoredCredentials {
    static func path(_ dataDir: String) -> String { dataDir + "/credentials.json" }
    public static func caPath(_ dataDir: String) -> String { dataDir + "/ca.pem" }

    /// nil when the device has not enrolled.
    public static func load(dataDir: String) throws(EnrollmentError) -> DeviceCredentials? {
        guard access(path(dataDir), F_OK) == 0 else { return nil }
        guard let text = POSIX.readFile(path(dataDir)) else { throw .storage("cannot read \(path(dataDir))") }
        do { return try JSON.decode(DeviceCredentials.self, from: Array(text.utf8)) } catch {
            throw .storage("\(path(dataDir)) is damaged (\(error)); enroll again with a new token after removing it")
        }
    }

    static func save(_ credentials: DeviceCredentials, dataDir: String) throws(EnrollmentError) {
        POSIX.makeDirectories(dataDir, mode: 0o711)
        let json: [UInt8]
        do { json = try JSON.encode(credentials) } catch { throw .storage("cannot encode credentials: \(error)") }
        try writeOwnerOnly(Array(credentials.ca.utf8), to: caPath(dataDir))
        try writeOwnerOnly(json, to: path(dataDir))
    }

    /// Owner-only, never half-written (see `OwnerOnlyFile`).
    static func writeOwnerOnly(_ bytes: [UInt8], to path: String) throws(EnrollmentError) {
        do { try OwnerOnlyFile.write(bytes, to: path) } catch { throw .storage(error.description) }
    }
}

/// Trades an enrollment token for MQTT credentials over the controller's API. The token
/// names the controller CA's fingerprint: the CA the controller presents must match it before
/// the token is sent, and over HTTPS the controller's certificate must then lead to that CA
/// and name the host in `--controller`.
public enum Enroller {
    public static func enroll(controller: String, token text: String, dataDir: String, expectedDevice: String?) throws(EnrollmentError) -> DeviceCredentials {
        guard let token = EnrollmentToken(parsing: text) else {
            throw .invalid("the enrollment token is not one (it reads dre_...; drover devices enroll ID makes one)")
        }
        let endpoint = try HTTPExchange.Endpoint(url: controller)
        // Over plain HTTP anyone on the way reads the token: only to this machine.
        guard endpoint.tls || endpoint.isLoopback else {
            throw .invalid("--controller: \(controller) is plain HTTP to another machine, where the token would travel in the clear; use https://")
        }
        // First contact: the CA is public, so it may travel unverified; what counts is that
        // its fingerprint is the one in the token.
        let first = try HTTPExchange(endpoint: endpoint, caPEM: nil, verify: false).send("GET", "/v1/enroll/ca")
        guard first.status == 200, let info = try? JSON.decode(CAInfo.self, from: Array(first.body)) else {
            throw .protocolError("GET /v1/enroll/ca answered \(first.status): \(message(first.body))")
        }
        let presented = try fingerprint(ofPEM: info.certificate)
        guard presented == token.caFingerprint else {
            throw .wrongController("the controller at \(controller) has CA sha256:\(presented), but the token names sha256:\(token.caFingerprint): not enrolling (another controller, or someone in between)")
        }
        let body: [UInt8]
        do { body = try JSON.encode(EnrollExchange(token: token.text, device: expectedDevice)) } catch { throw .protocolError("\(error)") }
        let answer = try HTTPExchange(endpoint: endpoint, caPEM: info.certificate, verify: true).send("POST", "/v1/enroll", json: body)
        guard answer.status == 200 else { throw .refused(message(answer.body)) }
        guard var credentials = try? JSON.decode(DeviceCredentials.self, from: Array(answer.body)) else {
            throw .protocolError("POST /v1/enroll answered with something that is not credentials")
        }
        if let expectedDevice, expectedDevice != credentials.device {
            throw .invalid("--id is \(expectedDevice), but the token is for device \(credentials.device)")
        }
        guard (try? fingerprint(ofPEM: credentials.ca)) == token.caFingerprint else {
            throw .wrongController("the controller handed over a CA that is not the one the token names")
        }
        credentials.controller = controller
        try StoredCredentials.save(credentials, dataDir: dataDir)
        return credentials
    }

    /// SHA-256 of the certificate's SubjectPublicKeyInfo, lowercase hex; refused unless `pem`
    /// holds exactly one certificate (it becomes the whole trust store).
    public static func fingerprint(ofPEM pem: String) throws(EnrollmentError) -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        let bytes = Array(pem.utf8)
        let rc = bytes.withUnsafeBufferPointer { b in
            b.withMemoryRebound(to: CChar.self) { drover_tls_spki_sha256($0.baseAddress, $0.count, &digest) }
        }
        guard rc == 0 else { throw .wrongController("the controller's CA is not exactly one PEM certificate: not enrolling") }
        return hexString(digest)
    }

    /// The `message` of an API error, or the start of the body.
    static func message(_ body: [UInt8]) -> String {
        struct APIMessage: Decodable { var message: String }
        if let m = try? JSON.decode(APIMessage.self, from: Array(body)) { return m.message }
        return String(decoding: body.prefix(200), as: UTF8.self)
    }
}
