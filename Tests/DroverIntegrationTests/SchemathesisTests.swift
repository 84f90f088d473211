import Foundation
import Testing

/// schemathesis (from PyPI; tools/setup installs it) generates requests from openapi.yaml,
/// valid and not, and checks every answer against the document.
@Suite("REST API under schemathesis", .serialized)
struct SchemathesisTests {
    static var executable: String {
        let env = ProcessInfo.processInfo.environment
        let cache = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? ((env["HOME"] ?? NSHomeDirectory()) + "/.cache")
        return cache + "/drover/schemathesis/bin/schemathesis"
    }

    @Test("with an admin token, for a minute: no 5xx, every error a documented 4xx with a JSON message, 405 for any other method")
    func fuzz() async throws {
        try await FleetTestbed.run("schemathesis", Self.body)
    }

    static func body(_ bed: FleetTestbed) async throws {
        // Real data behind the path parameters the document's examples name.
        try bed.startAgent("gw-1", labels: "role=gateway", capacity: "cpu=2,memory=1Gi")
        try await bed.waitForDevices(online: 1)
        try await bed.apply(FaultTests.manifest("steady"))
        let (status, output) = try Harness.run(Self.executable, [
            "run", Harness.repoRoot + "/Sources/DroverController/openapi.yaml", "--url", "http://127.0.0.1:\(bed.apiPort)",
            "--header", "Authorization: Bearer \(bed.api.token ?? "")", "--max-examples", "25", "--max-time", "60", "--seed", "1", "--workers", "1",
            // Revoking tokens would revoke the one it runs with (the unit tests cover that route);
            // rejecting a well-formed manifest the schema cannot describe (labels, names) is right.
            "--exclude-path-regex", "^/v1/tokens/", "--exclude-checks", "positive_data_acceptance",
            "--report", "junit", "--report-dir", bed.dir + "/schemathesis",
        ])
        let summary = output.split(separator: "\n").suffix(40).joined(separator: "\n")
        #expect(status == 0, "schemathesis found failures:\n\(summary)")
        #expect(output.contains("Test cases:"), "schemathesis did not run:\n\(summary)")
        #expect(bed.controller?.isRunning == true)
    }
}
