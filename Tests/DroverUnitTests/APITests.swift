import DroverAPI
import DroverController
import DroverStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import Yams

@Suite("REST API")
struct APITests {
    /// An app whose store holds one admin token, `drv_test_secret`, and one of each other role.
    static func app() async throws -> (some ApplicationProtocol, Fleet) {
        let (fleet, _, dir) = try await FleetFixture.fleet()
        await fleet.hello(FleetFixture.hello("gw-1", labels: ["role": "gateway"]))
        let info = ControllerInfo(version: "t", store: "sqlite:test", brokerURL: "mqtt://127.0.0.1:1", brokerManaged: true)
        let store = try SQLiteFleetStore(path: dir + "/controller.db")
        try store.write(SecurityBatch(tokens: ["admin", "operator", "viewer"].map { role in
            APITokenRecord(id: role == "admin" ? "test" : role, name: role, role: role, hash: secretHash, created: 1)
        }))
        let access = try AccessControl(store: store, logger: FleetFixture.logger)
        return (Application(router: try API.router(fleet: fleet, info: info, access: access, registryDir: dir, brokerConnected: { true })), fleet)
    }

    /// SHA-256 of "secret".
    static let secretHash = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
    static let admin: HTTPFields = [.authorization: "Bearer drv_test_secret"]
    static func bearer(_ id: String) -> HTTPFields { [.authorization: "Bearer drv_\(id)_secret"] }

    static func json(_ buffer: ByteBuffer) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(buffer: buffer))) as? [String: Any] ?? [:]
    }

    @Test("a manifest is applied, listed, scaled and deleted")
    func lifecycle() async throws {
        let (app, _) = try await Self.app()
        let manifest = try Fixtures.fleetConfig("workloads/sensor-reader.yaml")
        try await app.test(.router) { client in
            try await client.execute(uri: "/v1/workloads", method: .post, headers: Self.admin, body: ByteBuffer(string: manifest)) { r in
                #expect(r.status == .created)
                #expect(Self.json(r.body)["outcome"] as? String == "created")
            }
            try await client.execute(uri: "/v1/workloads/sensor-reader", method: .get, headers: Self.admin) { r in
                #expect(r.status == .ok)
                #expect((Self.json(r.body)["replicas"] as? [Any])?.count == 1)
                #expect((Self.json(r.body)["unplaced"] as? [Any])?.count == 2)
            }
            try await client.execute(uri: "/v1/workloads/sensor-reader/scale", method: .post, headers: Self.admin, body: ByteBuffer(string: #"{"replicas": 0}"#)) { r in
                #expect(r.status == .ok)
                #expect(Self.json(r.body)["desiredReplicas"] as? Int == 0)
            }
            try await client.execute(uri: "/v1/workloads/sensor-reader", method: .delete, headers: Self.admin) { #expect($0.status == .noContent) }
            try await client.execute(uri: "/v1/workloads/sensor-reader", method: .get, headers: Self.admin) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/v1/events?limit=10", method: .get, headers: Self.admin) { r in
                #expect(String(buffer: r.body).contains("WorkloadDeleted"))
            }
        }
    }

    @Test("an invalid manifest is refused as JSON naming each field, and nothing changes")
    func invalidManifest() async throws {
        let (app, fleet) = try await Self.app()
        let manifest = try Fixtures.fleetConfig("invalid/bad-workload.yaml")
        try await app.test(.router) { client in
            try await client.execute(uri: "/v1/workloads", method: .post, headers: Self.admin, body: ByteBuffer(string: manifest)) { r in
                #expect(r.status == .unprocessableContent)
                let errors = Self.json(r.body)["errors"] as? [[String: String]] ?? []
                #expect(errors.contains { $0["path"] == "spec.replicas" })
                #expect(errors.contains { $0["path"] == "spec.restartPolicy" })
            }
            try await client.execute(uri: "/v1/workloads/x/scale", method: .post, headers: Self.admin, body: ByteBuffer(string: "replicas=3")) { r in
                #expect(r.status == .badRequest)
                #expect((Self.json(r.body)["errors"] as? [[String: String]])?.first?["path"] == "replicas")
            }
            try await client.execute(uri: "/v1/events?limit=0", method: .get, headers: Self.admin) { #expect($0.status == .badRequest) }
            try await client.execute(uri: "/v1/devices/nope", method: .get, headers: Self.admin) { r in
                #expect(r.status == .notFound)
                #expect(Self.json(r.body)["message"] as? String == "device 'nope' not found")
            }
        }
        #expect(await fleet.workloadList().isEmpty)
    }

    @Test("a plan shows what apply would place and why the rest stays pending, and changes nothing")
    func planPreview() async throws {
        let (app, fleet) = try await Self.app()
        let manifest = try Fixtures.fleetConfig("workloads/sensor-reader.yaml")
        try await app.test(.router) { client in
            try await client.execute(uri: "/v1/plan", method: .post, headers: Self.admin, body: ByteBuffer(string: manifest)) { r in
                #expect(r.status == .ok)
                let plan = Self.json(r.body)
                #expect(plan["outcome"] as? String == "created")
                let changes = plan["changes"] as? [[String: Any]] ?? []
                #expect(changes.map { $0["action"] as? String } == ["place"])
                #expect(changes.first?["device"] as? String == "gw-1")
                let pending = plan["unplaced"] as? [[String: Any]] ?? []
                #expect(pending.count == 2)
                #expect((pending.first?["reasons"] as? [String]) == ["1 device: already runs a replica of this workload"])
            }
            try await client.execute(uri: "/v1/plan", method: .post, headers: Self.admin, body: ByteBuffer(string: "kind: Workload")) { #expect($0.status == .unprocessableContent) }
        }
        #expect(await fleet.workloadList().isEmpty)
        #expect(try await fleet.device("gw-1").replicas.isEmpty)
    }

    @Test("status names the version, the store and the broker URL for agents")
    func status() async throws {
        let (app, _) = try await Self.app()
        try await app.test(.router) { client in
            try await client.execute(uri: "/v1/status", method: .get, headers: Self.admin) { r in
                let controller = Self.json(r.body)["controller"] as? [String: Any]
                #expect(controller?["brokerURL"] as? String == "mqtt://127.0.0.1:1")
                #expect(controller?["store"] as? String == "sqlite:test")
                #expect((Self.json(r.body)["fleet"] as? [String: Any])?["devices"] as? Int == 1)
            }
        }
    }

    @Test("every route in the OpenAPI document exists")
    func openAPIRoutesExist() async throws {
        let document = API.openAPIDocument()
        let root = try #require(try Yams.load(yaml: document) as? [String: Any])
        let paths = try #require(root["paths"] as? [String: Any])
        #expect(paths.count >= 8)
        let routes: [(path: String, method: String)] = paths.keys.sorted().flatMap { path in
            (paths[path] as? [String: Any] ?? [:]).keys.filter { ["get", "post", "delete", "put", "patch"].contains($0) }.sorted().map { (path, $0) }
        }
        let (app, _) = try await Self.app()
        try await app.test(.router) { client in
            for (path, method) in routes {
                let uri = path.replacingOccurrences(of: "{id}", with: "gw-1").replacingOccurrences(of: "{name}", with: "missing")
                let verb = try #require(HTTPRequest.Method(rawValue: method.uppercased()))
                try await client.execute(uri: uri, method: verb, headers: Self.admin, body: ByteBuffer(string: "{}")) { r in
                    // A route that exists answers; one that does not gets the router's bare 404.
                    let answered = r.status != .notFound || Self.json(r.body)["message"] != nil
                    #expect(answered, "\(method.uppercased()) \(path) is in openapi.yaml but not routed")
                }
            }
        }
    }

    @Test("a method a path does not have is 405 with the path's methods in Allow, as the OpenAPI document lists them")
    func methodNotAllowed() async throws {
        let root = try #require(try Yams.load(yaml: API.openAPIDocument()) as? [String: Any])
        let paths = try #require(root["paths"] as? [String: Any])
        let table: [(path: String, methods: Set<String>)] = paths.keys.sorted().map { path in
            (path, Set((paths[path] as? [String: Any] ?? [:]).keys.map { $0.uppercased() }))
        }
        let (app, _) = try await Self.app()
        try await app.test(.router) { client in
            for (path, documented) in table {
                let uri = path.replacingOccurrences(of: "{id}", with: "gw-1").replacingOccurrences(of: "{name}", with: "missing")
                for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] where !documented.contains(method) {
                    let verb = try #require(HTTPRequest.Method(rawValue: method))
                    try await client.execute(uri: uri, method: verb, headers: Self.admin) { r in
                        #expect(r.status == .methodNotAllowed, "\(method) \(path)")
                        let allow = Set((r.headers[.allow] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
                        #expect(allow == documented, "\(method) \(path): Allow \(allow), documented \(documented)")
                    }
                }
            }
        }
    }

    @Test("a query number that is not a whole number is a 400 naming it")
    func badLimit() async throws {
        let (app, _) = try await Self.app()
        try await app.test(.router) { client in
            for value in ["null", "x", "1.5", ""] {
                try await client.execute(uri: "/v1/events?limit=\(value)", method: .get, headers: Self.admin) { r in
                    #expect(r.status == .badRequest, "limit=\(value)")
                }
            }
            try await client.execute(uri: "/v1/events", method: .get, headers: Self.admin) { #expect($0.status == .ok) }
        }
    }
}
