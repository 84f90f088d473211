import DroverController
import DroverCore
import DroverProtocol
import Testing

/// Desired state deflated on the wire for devices that read it so.
@Suite("Deflated desired state")
struct DeflateTests {
    static func desired(replicas n: Int) -> Desired {
        let specs = (0..<n).map { k in
            var w = WorkloadSpec(name: "w\(k % 7)", resources: Resources(cpuMillis: 100, memoryBytes: 64 << 20), command: ["/bin/sh", "-c", "exec sleep 1000"])
            w.env = ["INTERVAL": "5", "SITE": "plant-a"]
            return w.replica(ordinal: k)
        }
        return Desired(device: "gw-1", generation: 42, replicas: specs)
    }

    @Test("a device that reads deflate gets its whole desired state in a fraction of the bytes, and decodes the same message")
    func roundTrip() throws {
        for n in [1, 10, 50] {
            var message = Self.desired(replicas: n)
            let json = WireCodec.encode(message)
            message.deflate = true
            let wire = WireCodec.encode(message)
            #expect(Deflate.isDeflated(wire) && !Deflate.isDeflated(json))
            #expect(wire.count < json.count, "\(n) replicas: \(wire.count) deflated, \(json.count) as JSON")
            if n == 10 { #expect(wire.count * 5 < json.count, "10 replicas: \(wire.count) deflated, \(json.count) as JSON") }
            message.deflate = false
            #expect(try WireCodec.decode(Desired.self, from: wire, topicDevice: "gw-1") == message)
            #expect(try WireCodec.decode(Desired.self, from: json, topicDevice: "gw-1") == message)
        }
    }

    @Test("a bomb, a truncated or padded stream, and bytes that only look like zlib are dropped with a reason, never inflated past the limit")
    func hostile() throws {
        func reason(_ payload: [UInt8]) -> DropReason? {
            do {
                _ = try WireCodec.decode(Desired.self, from: payload, topicDevice: "gw-1")
                return nil
            } catch { return error.reason }
        }
        // 64 MiB of spaces after a valid message deflate to about 64 KiB.
        var huge = WireCodec.encode(Self.desired(replicas: 1))
        huge += [UInt8](repeating: 0x20, count: 64 << 20)
        let bomb = try #require(Deflate.deflated(huge))
        #expect(bomb.count < WireCodec.maxDesiredDecodeBytes)
        #expect(reason(bomb) == .oversized)
        #expect(throws: WireError.self) { try Deflate.inflated(bomb, limit: 1 << 20) }

        let good = try #require(Deflate.deflated(WireCodec.encode(Self.desired(replicas: 10))))
        #expect(reason(Array(good.dropLast(9))) == .malformed, "truncated")
        #expect(reason(good + [0x7B]) == .malformed, "a byte after the end")
        var flipped = good
        flipped[flipped.count / 2] ^= 0xFF
        #expect(reason(flipped) != nil, "corrupted: the Adler-32 check or the stream itself")
        #expect(reason([0x78, 0x9C]) == .malformed, "a header alone")
        #expect(reason([0x78, 0x9C] + [UInt8](repeating: 0xFF, count: 100)) == .malformed)
        // Deflated JSON that is no desired state is judged as JSON is.
        #expect(reason(try #require(Deflate.deflated(Array(#"{"v":1,"device":"gw-2","generation":1,"replicas":[]}"#.utf8)))) == .deviceMismatch)
        #expect(reason(try #require(Deflate.deflated(Array("not json".utf8)))) == .malformed)
        #expect(try Deflate.inflated(try #require(Deflate.deflated([])), limit: 0) == [])
    }

    @Test("the controller deflates for a device that says it reads deflate, and sends JSON to one that does not")
    func onlyToDevicesThatReadIt() async throws {
        let (fleet, publisher, _) = try await FleetFixture.fleet()
        var new = FleetFixture.hello("new")
        new.facts.encodings = [.deflate]
        await fleet.hello(new)
        await fleet.hello(FleetFixture.hello("old"))
        var spec = FleetFixture.workload("w", replicas: 2)
        spec.maxPerDevice = 1
        _ = try await fleet.apply(spec)
        #expect(publisher.last(for: "new")?.deflate == true)
        #expect(publisher.last(for: "old")?.deflate == false)
        #expect(await fleet.allDesired().map(\.deflate) == [true, false])
        let record = try await fleet.device("new").record
        #expect(record.facts.encodings == [.deflate], "kept with the device")
    }

    @Test("a device that stops reading deflate (an older agent) gets its state again as JSON, even at the generation it applied")
    func downgrade() async throws {
        let (fleet, publisher, _) = try await FleetFixture.fleet()
        var new = FleetFixture.hello("gw-1")
        new.facts.encodings = [.deflate]
        await fleet.hello(new)
        _ = try await fleet.apply(FleetFixture.workload("w", replicas: 1))
        let sent = try #require(publisher.last(for: "gw-1"))
        #expect(sent.deflate)
        var old = FleetFixture.hello("gw-1")
        old.lastAppliedGeneration = sent.generation
        await fleet.hello(old)
        let again = try #require(publisher.last(for: "gw-1"))
        #expect(again.generation == sent.generation && !again.deflate)
        // The outbox takes the same generation again, in the new encoding.
        let outbox = DesiredOutbox()
        outbox.enqueue([sent])
        outbox.enqueue([again])
        #expect(outbox.pendingMessages.map(\.deflate) == [false])
    }

    @Test("a hello naming encodings this build does not know keeps the ones it knows")
    func unknownEncodings() throws {
        let text = #"{"v":1,"device":"gw-1","bootID":"b","lastAppliedGeneration":0,"facts":{"agentVersion":"9","arch":"amd64","os":"x","capacity":{"cpuMillis":1000,"memoryBytes":1000},"labels":{},"runtimes":["exec"],"encodings":["zstd","deflate"]}}"#
        let hello = try WireCodec.decode(Hello.self, from: Array(text.utf8), topicDevice: "gw-1")
        #expect(hello.facts.encodings == [.deflate])
        #expect(hello.facts.readsDeflate)
        let many = text.replacingOccurrences(of: #"["zstd","deflate"]"#, with: "[" + (0..<9).map { "\"x\($0)\"" }.joined(separator: ",") + "]")
        #expect(throws: WireError.self, "9 names, none known") { try WireCodec.decode(Hello.self, from: Array(many.utf8), topicDevice: "gw-1") }
        let twice = text.replacingOccurrences(of: #"["zstd","deflate"]"#, with: #"["deflate","deflate"]"#)
        #expect(try WireCodec.decode(Hello.self, from: Array(twice.utf8), topicDevice: "gw-1").facts.encodings == [.deflate])
    }
}
