import DroverAPI
import DroverController
import DroverStore
import Foundation
import Logging
import Testing
@testable import DroverAgent

@Suite("Enrollment and device credentials")
struct EnrollmentTests {
    final class Recorder: @unchecked Sendable {
        let lock = NSLock()
        var written: [[DeviceCredentialRecord]] = []
        func record(_ c: [DeviceCredentialRecord]) { lock.withLock { written.append(c) } }
        var last: [DeviceCredentialRecord] { lock.withLock { written.last ?? [] } }
    }

    static func access() async throws -> (AccessControl, Recorder, String) {
        let dir = try Fixtures.temporaryDirectory()
        let store = try SQLiteFleetStore(path: dir + "/controller.db")
        let access = try AccessControl(store: store, logger: Logger(label: "test"))
        let recorder = Recorder()
        let ca = try CertificateAuthority(dataDir: dir)
        try await access.setEnrollment(.init(ca: ca, brokerURL: "mqtt://127.0.0.1:1883") { recorder.record($0) })
        return (access, recorder, dir)
    }

    @Test("a token is good once, before it expires, and only with this controller's CA in it")
    func tokenRules() async throws {
        let (access, recorder, _) = try await Self.access()
        let now: Int64 = 1_000_000
        let issued = try await access.enroll(device: "gw-1", request: EnrollRequest(labels: ["site": "a"], ttlSeconds: 60), now: now)
        let token = try #require(EnrollmentToken(parsing: issued.token))
        #expect(token.caFingerprint == issued.caFingerprint)

        await #expect(throws: (any Error).self) { try await access.exchange(issued.token, now: now + 60_000) }  // expired
        let second = try await access.enroll(device: "gw-1", request: EnrollRequest(), now: now)
        // An agent started as another device: refused, and the token is not spent by it.
        await #expect(throws: (any Error).self) { try await access.exchange(second.token, device: "gw-2", now: now + 1) }
        let credentials = try await access.exchange(second.token, device: "gw-1", now: now + 1)
        #expect(credentials.device == "gw-1" && credentials.username == "gw-1" && credentials.password.count == 64)
        #expect(credentials.ca.contains("BEGIN CERTIFICATE"))
        #expect(recorder.last.map(\.device) == ["gw-1"])
        #expect(recorder.last.first?.passwordHash.hasPrefix("$7$101$") == true)
        #expect(recorder.last.first?.passwordHash.contains(credentials.password) == false)
        await #expect(throws: (any Error).self) { try await access.exchange(second.token, now: now + 2) }  // used

        var forged = try #require(EnrollmentToken(parsing: try await access.enroll(device: "gw-2", request: EnrollRequest(), now: now).token))
        forged.caFingerprint = String(repeating: "0", count: 64)
        await #expect(throws: (any Error).self) { try await access.exchange(forged.text, now: now + 1) }
        for garbage in ["", "dre_", "drv_abc_def", "dre_" + String(repeating: "x", count: 142), String(repeating: "d", count: 10_000)] {
            await #expect(throws: (any Error).self) { try await access.exchange(garbage, now: now) }
        }
    }

    @Test("bad ids, labels and lifetimes are refused naming the field")
    func badRequests() async throws {
        let (access, _, _) = try await Self.access()
        for (device, request) in [
            ("..", EnrollRequest()), ("a/b", EnrollRequest()), (String(repeating: "a", count: 65), EnrollRequest()),
            ("gw-1", EnrollRequest(ttlSeconds: 59)), ("gw-1", EnrollRequest(ttlSeconds: Int.max)), ("gw-1", EnrollRequest(ttlSeconds: Int.min)),
            ("gw-1", EnrollRequest(labels: ["bad key": "v"])),
        ] {
            await #expect(throws: (any Error).self, "\(device) \(request)") { try await access.enroll(device: device, request: request, now: 1) }
        }
    }

    @Test("a revoked device leaves the broker's password file, its unused tokens die, and enrolling it again gives new credentials")
    func revocation() async throws {
        let (access, recorder, _) = try await Self.access()
        let first = try await access.exchange(try await access.enroll(device: "gw-1", request: EnrollRequest(labels: ["site": "a"]), now: 1).token, now: 2)
        let pending = try await access.enroll(device: "gw-1", request: EnrollRequest(), now: 3)
        #expect(await access.enrolledLabels("gw-1") == ["site": "a"])
        try await access.revokeDevice("gw-1", now: 4)
        #expect(recorder.last.first?.revoked == 4)
        #expect(await access.isRevoked("gw-1"))
        #expect(await access.enrolledLabels("gw-1") == nil)
        await #expect(throws: (any Error).self) { try await access.exchange(pending.token, now: 5) }
        await #expect(throws: (any Error).self) { try await access.revokeDevice("never-enrolled", now: 5) }
        // A device that never enrolled: revoking it spends the token that may have leaked.
        let leaked = try await access.enroll(device: "gw-9", request: EnrollRequest(), now: 5)
        try await access.revokeDevice("gw-9", now: 6)
        await #expect(throws: (any Error).self) { try await access.exchange(leaked.token, now: 7) }
        let again = try await access.exchange(try await access.enroll(device: "gw-1", request: EnrollRequest(), now: 6).token, now: 7)
        #expect(again.password != first.password)
        #expect(await !access.isRevoked("gw-1"))
    }

    @Test("the broker's files: controller and devices hashed, nobody else; the ACL keeps devices to their own topics")
    func brokerFiles() async throws {
        let dir = try Fixtures.temporaryDirectory()
        let files = BrokerCredentials(dataDir: dir)
        let hash = try BrokerCredentials.mosquittoHash(password: "pw")
        try files.write(devices: [
            DeviceCredentialRecord(device: "gw-1", passwordHash: hash, issued: 1),
            DeviceCredentialRecord(device: "gw-2", passwordHash: hash, issued: 1, revoked: 2),
        ])
        let passwd = try String(contentsOfFile: files.passwordFile, encoding: .utf8)
        #expect(passwd.split(separator: "\n").map { String($0.split(separator: ":")[0]) } == ["@drover-controller", "gw-1"])
        let parts = hash.split(separator: "$")
        #expect(parts.count == 4 && parts[0] == "7" && parts[1] == "101" && Data(base64Encoded: String(parts[2]))?.count == 12 && Data(base64Encoded: String(parts[3]))?.count == 64)
        let acl = try String(contentsOfFile: files.aclFile, encoding: .utf8)
        #expect(acl.contains("pattern write drover/v1/dev/%u/report") && acl.contains("pattern read drover/v1/dev/%u/desired"))
        #expect(!acl.contains("pattern write drover/v1/dev/%u/desired") && !acl.contains("pattern write drover/v1/ctl"))
        for path in [files.passwordFile, files.aclFile, dir + "/mqtt-controller.secret"] {
            #expect((try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) == 0o600, "\(path)")
        }
    }

    @Test("an agent trusts exactly one CA certificate, the one its token names, and enrolls over plain HTTP only on loopback")
    func agentSide() async throws {
        let (_, _, dir) = try await Self.access()
        let pem = try String(contentsOfFile: dir + "/tls/ca.pem", encoding: .utf8)
        let ca = try CertificateAuthority(dataDir: dir)
        #expect(try Enroller.fingerprint(ofPEM: pem) == ca.fingerprint)
        let other = try CertificateAuthority(dataDir: try Fixtures.temporaryDirectory()).certificatePEM
        #expect(throws: EnrollmentError.self) { try Enroller.fingerprint(ofPEM: pem + other) }
        #expect(throws: EnrollmentError.self) { try Enroller.fingerprint(ofPEM: "not a certificate") }
        for (url, loopback) in [("http://127.0.0.1:7070", true), ("http://localhost", true), ("http://[::1]:7070", true), ("http://10.0.0.5:7070", false), ("http://127.evil.example", false), ("http://127.0.0.evil", false), ("http://127.1.2.3.4", false)] {
            #expect(try HTTPExchange.Endpoint(url: url).isLoopback == loopback, "\(url)")
        }
        let token = EnrollmentToken(id: String(repeating: "a", count: 12), secret: String(repeating: "b", count: 64), caFingerprint: ca.fingerprint).text
        #expect(throws: EnrollmentError.self) { try Enroller.enroll(controller: "http://10.0.0.5:7070", token: token, dataDir: dir + "/agent", expectedDevice: nil) }
    }
}
