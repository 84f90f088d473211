import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import NIOSSL

extension Controller {
    /// Plain HTTP on loopback, or HTTPS with the operator's certificate or one from the
    /// controller's CA.
    static func apiServer(_ config: ControllerConfiguration, ca: CertificateAuthority) throws -> HTTPServerBuilder {
        let paths: (certificate: String, key: String)
        switch config.apiTLS {
        case .none: return .http1()
        case .files(let certificate, let key): paths = (certificate, key)
        case .controllerCA:
            let base = config.dataDir + "/tls/api"
            try ca.writeServerCertificate(hosts: config.certificateHosts(listening: .init(host: config.listenHost, port: config.listenPort)), to: base)
            paths = (base + ".pem", base + ".key")
        }
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(paths.certificate).map { NIOSSLCertificateSource.certificate($0) }
            let key = try NIOSSLPrivateKey(file: paths.key, format: .pem)
            var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
            tls.minimumTLSVersion = .tlsv12
            return try .tls(.http1(), tlsConfiguration: tls)
        } catch {
            throw ControllerError("cannot serve HTTPS with \(paths.certificate) and \(paths.key): \(error)")
        }
    }
}

extension CertificateAuthority {
    /// Issues a server certificate for `hosts` and writes `<base>.pem` and `<base>.key`
    /// (owner-only), anew at every start: a changed --advertise takes effect at once.
    func writeServerCertificate(hosts: [String], to base: String) throws {
        let issued = try issueServerCertificate(hosts: hosts)
        try Secrets.writeOwnerOnly(issued.key, to: base + ".key")
        try Secrets.writeOwnerOnly(issued.certificate, to: base + ".pem")
    }
}
