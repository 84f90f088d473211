import DroverProtocol
import Foundation
import Testing

/// A fleet over several brokers: devices on an edge mosquitto bridged to the controller's.
/// Debian's mosquitto bridges speak MQTT 3.1.1 only, which drops MQTT 5 properties (response
/// topic, correlation data): requests and their replies carry the correlation in the payload.
@Suite("Bridged brokers", .serialized)
struct BridgeTests {
    @Test("a device on an edge broker bridged with MQTT 3.1.1 joins, runs its replica, and answers a request (drover logs) across the bridge")
    func bridged() async throws {
        try await FleetTestbed.run("bridged", externalBroker: true, Self.body)
    }

    static func body(_ bed: FleetTestbed) async throws {
        let core = try #require(bed.external)
        let up = Topic.controllerSubscriptions.map { "topic \($0) out 1" }
        let down = [Topic.Channel.desired, .cmd].map { "topic \(Topic.prefix)dev/+/\($0.rawValue) in 1" } + ["topic \(Topic.controllerState) in 1"]
        try FileManager.default.createDirectory(atPath: bed.dir + "/edge", withIntermediateDirectories: true)
        let edge = try TestBroker(
            dir: bed.dir + "/edge",
            extra: ["connection edge", "address 127.0.0.1:\(core.port)", "bridge_protocol_version mqttv311", "cleansession true", "try_private true", "notifications false"] + up + down)
        do {
            try bed.startAgent("gw-1", labels: "site=edge", capacity: "cpu=1,memory=256Mi", broker: edge.url)
            try await bed.waitForDevices(online: 1)
            // The request and its reply cross the bridge.
            try await LogsTests.tailOfTalker(bed)
            #expect(try String(contentsOfFile: bed.dir + "/agent-gw-1-0.log", encoding: .utf8).contains("response topic") == false, "the agent took the bridged request")
        } catch {
            await edge.stop()
            throw error
        }
        await edge.stop()
    }
}
