import DroverAPI
import DroverController
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@Suite("REST API access")
struct APIAccessTests {
    static let manifest = """
        apiVersion: drover/v1
        kind: Workload
        metadata: {name: web}
        spec: {replicas: 1, command: ["/bin/sleep", "100"], resources: {cpu: 100m, memory: 16Mi}}
        """

    @Test("without a token every route but health is a 401 with a one-line hint")
    func noToken() async throws {
        let (app, _) = try await APITests.app()
        try await app.test(.router) { client in
            try await client.execute(uri: "/v1/health", method: .get) { #expect($0.status == .ok) }
            for (uri, method) in [("/v1/status", HTTPRequest.Method.get), ("/v1/devices", .get), ("/v1/workloads", .post), ("/v1/tokens", .get), ("/v1/openapi.yaml", .get)] {
                try await client.execute(uri: uri, method: method, body: ByteBuffer(string: Self.manifest)) { r in
                    #expect(r.status == .unauthorized, "\(method) \(uri)")
                    #expect(r.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
                    let message = APITests.json(r.body)["message"] as? String ?? ""
                    #expect(message.contains("Authorization: Bearer") && !message.contains("\n"))
                }
            }
            for header in ["Basic YWRtaW46YWRtaW4=", "Bearer", "Bearer drv_test_wrong", "Bearer drv_nope_secret", "Bearer drv_test", "bearer drv__"] {
                try await client.execute(uri: "/v1/status", method: .get, headers: [.authorization: header]) { #expect($0.status == .unauthorized, "\(header)") }
            }
        }
    }

    @Test("a viewer reads but cannot write; an operator applies but cannot manage tokens")
    func roles() async throws {
        let (app, fleet) = try await APITests.app()
        try await app.test(.router) { client in
            let viewer = APITests.bearer("viewer"), op = APITests.bearer("operator")
            try await client.execute(uri: "/v1/devices", method: .get, headers: viewer) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v1/plan", method: .post, headers: viewer, body: ByteBuffer(string: Self.manifest)) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v1/workloads", method: .post, headers: viewer, body: ByteBuffer(string: Self.manifest)) { r in
                #expect(r.status == .forbidden)
                #expect((APITests.json(r.body)["message"] as? String ?? "").contains("needs operator"))
            }
            try await client.execute(uri: "/v1/devices/gw-1/cordon", method: .post, headers: viewer) { #expect($0.status == .forbidden) }
            #expect(await fleet.workloadList().isEmpty)
            try await client.execute(uri: "/v1/workloads", method: .post, headers: op, body: ByteBuffer(string: Self.manifest)) { #expect($0.status == .created) }
            try await client.execute(uri: "/v1/workloads/web/scale", method: .post, headers: op, body: ByteBuffer(string: #"{"replicas": 2}"#)) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v1/tokens", method: .get, headers: op) { #expect($0.status == .forbidden) }
            try await client.execute(uri: "/v1/tokens", method: .post, headers: op, body: ByteBuffer(string: #"{"name": "x", "role": "admin"}"#)) { #expect($0.status == .forbidden) }
        }
    }

    @Test("an admin creates a token shown once, lists it without its secret, and a revoked token is refused")
    func tokenLifecycle() async throws {
        let (app, _) = try await APITests.app()
        try await app.test(.router) { client in
            var token = ""
            try await client.execute(uri: "/v1/tokens", method: .post, headers: APITests.admin, body: ByteBuffer(string: #"{"name": "ci", "role": "viewer"}"#)) { r in
                #expect(r.status == .created)
                token = APITests.json(r.body)["token"] as? String ?? ""
            }
            #expect(token.hasPrefix("drv_") && token.count > 60)
            let bearer: HTTPFields = [.authorization: "Bearer \(token)"]
            try await client.execute(uri: "/v1/status", method: .get, headers: bearer) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v1/tokens", method: .get, headers: APITests.admin) { r in
                let text = String(buffer: r.body)
                #expect(text.contains("\"ci\"") && !text.contains(token.split(separator: "_").last.map(String.init) ?? "-"))
            }
            try await client.execute(uri: "/v1/tokens", method: .post, headers: APITests.admin, body: ByteBuffer(string: #"{"name": "ci", "role": "viewer"}"#)) { #expect($0.status == .conflict) }
            try await client.execute(uri: "/v1/tokens", method: .post, headers: APITests.admin, body: ByteBuffer(string: #"{"name": "x", "role": "root"}"#)) { r in
                #expect(r.status == .badRequest)
                #expect(String(buffer: r.body).contains("role"))
            }
            try await client.execute(uri: "/v1/tokens/ci", method: .delete, headers: APITests.admin) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v1/status", method: .get, headers: bearer) { r in
                #expect(r.status == .unauthorized)
                #expect((APITests.json(r.body)["message"] as? String ?? "").contains("revoked"))
            }
            try await client.execute(uri: "/v1/tokens/admin", method: .delete, headers: APITests.admin) { r in
                #expect(r.status == .conflict, "the last admin token must stay")
            }
        }
    }

    static func manifest(user: String) -> String {
        """
        apiVersion: drover/v1
        kind: Workload
        metadata: {name: web}
        spec:
          replicas: 1
          command: ["/bin/sleep", "100"]
          user: "\(user)"
        """
    }

    @Test("a workload that runs as root needs an admin token; an operator may apply it as any other user")
    func rootNeedsAdmin() async throws {
        let (app, _) = try await APITests.app()
        try await app.test(.router) { client in
            for user in ["root", "0", "0:0"] {
                let manifest = Self.manifest(user: user)
                try await client.execute(uri: "/v1/workloads", method: .post, headers: APITests.bearer("operator"), body: ByteBuffer(string: manifest)) { r in
                    #expect(r.status == .forbidden, "\(user)")
                    #expect(String(buffer: r.body).contains("spec.user"))
                }
            }
            try await client.execute(uri: "/v1/workloads", method: .post, headers: APITests.bearer("operator"), body: ByteBuffer(string: Self.manifest(user: "nobody"))) {
                #expect($0.status == .created)
            }
            try await client.execute(uri: "/v1/workloads", method: .post, headers: APITests.admin, body: ByteBuffer(string: Self.manifest(user: "root"))) {
                #expect($0.status == .ok)
            }
        }
    }

    @Test("a token name that looks like an id is refused, so that revoking by id or name is never ambiguous")
    func namesAreNotIDs() async throws {
        let (app, _) = try await APITests.app()
        try await app.test(.router) { client in
            try await client.execute(uri: "/v1/tokens", method: .post, headers: APITests.admin, body: ByteBuffer(string: #"{"name": "0123456789ab", "role": "viewer"}"#)) {
                #expect($0.status == .badRequest)
            }
        }
    }
}
