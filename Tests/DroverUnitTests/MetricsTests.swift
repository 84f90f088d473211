import DroverController
import DroverProtocol
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// `/metrics`: Prometheus's text format behind a viewer token, with the fleet's shape and
/// what happened (placement runs, store writes, drops) as it happened.
@Suite("Controller metrics")
struct MetricsTests {
    /// The value of one sample line (`name{labels} value`), nil when absent.
    static func sample(_ text: String, _ series: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
    }

    @Test("devices by presence, replicas by phase, placement runs, store writes and drops by reason; no token, no metrics")
    func scrape() async throws {
        let (app, fleet) = try await APITests.app()
        let manifest = try Fixtures.fleetConfig("workloads/sensor-reader.yaml")
        _ = await fleet.recordDrop(.malformed, device: "gw-9")
        _ = await fleet.recordDrop(.malformed, device: "gw-9")
        try await app.test(.router) { client in
            try await client.execute(uri: "/v1/workloads", method: .post, headers: APITests.admin, body: ByteBuffer(string: manifest)) { #expect($0.status == .created) }
            try await client.execute(uri: "/metrics", method: .get) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/metrics", method: .get, headers: APITests.bearer("viewer")) { r in
                let text = String(buffer: r.body)
                #expect(r.status == .ok && r.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
                #expect(Self.sample(text, #"drover_devices{presence="online"}"#) == 1, "\(text)")
                #expect(Self.sample(text, #"drover_devices{presence="unreachable"}"#) == 0)
                #expect(Self.sample(text, #"drover_replicas{phase="pending"}"#) == 1)
                #expect(Self.sample(text, "drover_workloads") == 1)
                #expect(Self.sample(text, #"drover_messages_dropped_total{reason="malformed"}"#) == 2)
                #expect((Self.sample(text, #"drover_placement_duration_seconds_count{kind="incremental"}"#) ?? 0) + (Self.sample(text, #"drover_placement_duration_seconds_count{kind="full"}"#) ?? 0) >= 1)
                #expect((Self.sample(text, #"drover_store_write_duration_seconds_count{outcome="ok"}"#) ?? 0) >= 2)
                #expect(text.contains("# HELP drover_replicas Replicas, by phase"))
            }
            // Counters only grow between scrapes; drops are not counted twice.
            _ = await fleet.recordDrop(.malformed, device: "gw-9")
            try await client.execute(uri: "/metrics", method: .get, headers: APITests.bearer("viewer")) { r in
                #expect(Self.sample(String(buffer: r.body), #"drover_messages_dropped_total{reason="malformed"}"#) == 3)
            }
        }
    }
}
