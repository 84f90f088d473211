import DroverCore
import DroverProtocol
import DroverSim
import Testing

/// Correlation data also in the payload, for requests that cross an MQTT 3.1.1 bridge.
@Suite("Correlation in the payload")
struct CorrelationTests {
    @Test("correlation data goes to hex and back; anything else is refused, naming the field")
    func roundTrip() {
        var rng = SplitMix64(state: 11)
        for _ in 0..<200 {
            let bytes = (0..<Int.random(in: 1...32, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            #expect(Correlation.bytes(Correlation.text(bytes)) == bytes)
        }
        for bad in ["", "0", "abc", "0G", "AB", String(repeating: "00", count: 33), "ü0"] {
            #expect(Correlation.bytes(bad) == nil, "\(bad)")
            let command = Command(device: "gw-1", command: .ping, correlation: bad)
            #expect(command.validate().map(\.path) == ["correlation"], "\(bad)")
            #expect(CommandReply(device: "gw-1", command: "ping", ok: true, correlation: bad).validate().map(\.path) == ["correlation"])
        }
    }

    @Test("a simulated device answers a request that lost its MQTT 5 properties on a bridge, echoing the payload's correlation")
    func simulatedDeviceAcrossABridge() throws {
        var device = SimDevice(id: "sim-1", seed: 7, profile: SimDeviceTests.profile)
        let request = WireCodec.encode(Command(device: "sim-1", command: .ping, correlation: "0a0b"))
        let out = device.received(topic: Topic.device("sim-1", .cmd), payload: request, responseTopic: nil, correlation: nil, now: 1_000)
        let reply = try #require(out.first { $0.topic == Topic.device("sim-1", .cmdReply) })
        #expect(try WireCodec.decode(CommandReply.self, from: reply.payload, topicDevice: "sim-1").correlation == "0a0b")
        let elsewhere = device.received(topic: Topic.device("sim-1", .cmd), payload: request, responseTopic: "somewhere/else", correlation: nil, now: 1_000)
        #expect(elsewhere.isEmpty, "a request cannot make a device publish on another topic")
    }
}
