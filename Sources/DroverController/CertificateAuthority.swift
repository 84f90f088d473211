import Crypto
import Foundation
import SwiftASN1
import X509

/// The controller's own CA, made at the first start: `tls/ca.pem` and `tls/ca.key` (owner-only)
/// in the data directory. Enrollment tokens carry the SHA-256 of its public key (as kubeadm's
/// discovery hash), so that an agent knows whom it talks to on first contact; it signs the
/// certificates of the broker's and the API's TLS listeners.
public struct CertificateAuthority: Sendable {
    public let certificatePEM: String
    let certificate: Certificate
    let key: P256.Signing.PrivateKey

    /// Loads the CA of `dataDir`, or makes one.
    public init(dataDir: String, now: Date = Date()) throws {
        let dir = dataDir + "/tls"
        let certPath = dir + "/ca.pem", keyPath = dir + "/ca.key"
        if FileManager.default.fileExists(atPath: certPath) {
            do {
                let pem = try String(contentsOfFile: certPath, encoding: .utf8)
                certificate = try Certificate(pemEncoded: pem)
                key = try P256.Signing.PrivateKey(pemRepresentation: try String(contentsOfFile: keyPath, encoding: .utf8))
                certificatePEM = pem
            } catch {
                throw ControllerError("cannot load the controller's CA from \(dir): \(error)")
            }
            return
        }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName {
            OrganizationName("Drover")
            CommonName("Drover controller CA \(Secrets.randomHex(bytes: 4))")
        }
        let publicKey = Certificate.PublicKey(key.publicKey)
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
            Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            SubjectKeyIdentifier(hash: publicKey)
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
            notValidBefore: now - 3600, notValidAfter: now + 20 * 365 * 86_400, issuer: name, subject: name,
            signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions, issuerPrivateKey: Certificate.PrivateKey(key))
        let pem = try certificate.serializeAsPEM().pemString + "\n"
        try Secrets.writeOwnerOnly(key.pemRepresentation + "\n", to: keyPath)
        try Secrets.writeOwnerOnly(pem, to: certPath)
        self.certificate = certificate
        self.key = key
        self.certificatePEM = pem
    }

    /// SHA-256 of the CA's DER SubjectPublicKeyInfo, lowercase hex (as `openssl x509 -pubkey
    /// | openssl pkey -pubin -outform der | sha256sum` prints it).
    public var fingerprint: String {
        var der = DER.Serializer()
        guard (try? der.serialize(certificate.publicKey)) != nil else { return "" }
        return Secrets.hex(SHA256.hash(data: der.serializedBytes))
    }

    /// A server certificate for `hosts` (DNS names or IP addresses), valid for a year, and
    /// its key, both PEM.
    public func issueServerCertificate(hosts: [String], now: Date = Date()) throws -> (certificate: String, key: String) {
        let serverKey = P256.Signing.PrivateKey()
        let names: [GeneralName] = hosts.map { host in
            if let ip = Self.ipBytes(host) { return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(ip))) }
            return .dnsName(host)
        }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true))
            try ExtendedKeyUsage([.serverAuth])
            SubjectAlternativeNames(names)
            AuthorityKeyIdentifier(keyIdentifier: try? certificate.extensions.subjectKeyIdentifier?.keyIdentifier)
        }
        let server = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: Certificate.PublicKey(serverKey.publicKey),
            notValidBefore: now - 3600, notValidAfter: now + 365 * 86_400, issuer: certificate.subject,
            subject: try DistinguishedName { CommonName(hosts.first ?? "drover") },
            signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions, issuerPrivateKey: Certificate.PrivateKey(key))
        return (try server.serializeAsPEM().pemString + "\n", serverKey.pemRepresentation + "\n")
    }

    /// IPv4 or IPv6 text as bytes; nil for a name.
    static func ipBytes(_ host: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }
}
