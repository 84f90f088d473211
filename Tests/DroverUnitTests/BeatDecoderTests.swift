import DroverCore
import DroverJSON
import Foundation
import PropertyBased
import Testing

@testable import DroverProtocol

/// The controller's own beat reader against the general decoder (`JSON.decode`): whenever it
/// takes a payload, it must give what the general decoder gives; what it does not take goes
/// to the general decoder.
@Suite("Beat decoder")
struct BeatDecoderTests {
    static func randomBeat(_ rng: inout SplitMix64) -> Beat {
        var beat = Beat(device: ["gw-1", "dev-ü", "d", String(repeating: "x", count: 40)].randomElement(using: &rng) ?? "d", time: Int64.random(in: -5...Int64.max, using: &rng))
        if Bool.random(using: &rng) {
            beat.usage = Usage(
                cpuPercent: [0, 100, 12.345678901234, 0.001, 99.99].randomElement(using: &rng) ?? 0, memoryUsedBytes: Int64.random(in: 0...Int64.max, using: &rng),
                memoryTotalBytes: 1 << 30, diskUsedBytes: 0, diskTotalBytes: Int64.random(in: -1...1, using: &rng))
        }
        if Bool.random(using: &rng) { beat.phases = ["running": Int.random(in: 0...1000, using: &rng), "failed": 0] }
        if Bool.random(using: &rng) { beat.replicaCPU = Bool.random(using: &rng) ? [:] : ["web-0": 250, "web-1": Int.random(in: Int.min...Int.max, using: &rng)] }
        if Bool.random(using: &rng) { beat.generation = Int64.random(in: 0...1_000_000, using: &rng) }
        if Bool.random(using: &rng) { beat.reportSeq = Int64.random(in: 0...Int64.max, using: &rng) }
        if Bool.random(using: &rng) { beat.digest = "0123456789abcdef" }
        if Bool.random(using: &rng) { beat.rtt = [0, 0.1, 12.5, 599_999.999, 1.0 / 3].randomElement(using: &rng) }
        return beat
    }

    /// A few bytes changed, inserted or removed, or JSON spelled another way.
    static func mutate(_ bytes: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        var b = bytes
        let alphabet = Array(#"{}[]":,.-+eE0123456789 \nnulltruefalse"\u00fc"#.utf8) + [0x00, 0xC3, 0xFF]
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            guard !b.isEmpty else { break }
            let at = Int.random(in: 0..<b.count, using: &rng)
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: b[at] = alphabet.randomElement(using: &rng) ?? 0x20
            case 1: b.insert(alphabet.randomElement(using: &rng) ?? 0x20, at: at)
            case 2: b.remove(at: at)
            default: b.insert(contentsOf: Array(" ".utf8), at: at)
            }
        }
        return b
    }

    static func check(_ bytes: [UInt8], _ context: String) {
        let slow = try? JSON.decode(Beat.self, from: bytes)
        guard let fast = BeatDecoder.decode(bytes) else { return }
        #expect(fast == slow, "\(context): \(String(decoding: bytes, as: UTF8.self))")
    }

    @Test("what it takes, the general decoder decodes the same: whole beats, and beats with bytes changed")
    func sameAsGeneralDecoder() async {
        await propertyCheck(count: 2000, input: SchedulerPropertyTests.seeds) { seed in
            var rng = SplitMix64(state: UInt64(truncatingIfNeeded: seed))
            let beat = Self.randomBeat(&rng)
            let bytes = WireCodec.encode(beat)
            #expect(BeatDecoder.decode(bytes) == beat, "seed \(seed): a whole beat takes the fast path")
            Self.check(bytes, "seed \(seed)")
            for k in 0..<8 { Self.check(Self.mutate(bytes, &rng), "seed \(seed), mutation \(k)") }
        }
    }

    @Test("what it does not expect goes to the general decoder, which names the problem")
    func fallsBack() throws {
        let cases: [(String, Bool)] = [
            (#"{"v":1,"device":"gw-1","time":5}"#, true),
            (#" {"v" : 1 , "device" : "gw-1" , "time" : 5 , "usage" : null} "#, true),
            (#"{"v":1,"device":"gw\u002d1","time":5}"#, false),  // an escape
            (#"{"v":1,"device":"gw-1","time":5,"extra":[1]}"#, false),  // an unknown key
            (#"{"v":1,"device":"gw-1","time":5,"time":6}"#, false),  // a key twice
            (#"{"v":1,"device":"gw-1","time":5.0}"#, false),  // not a plain integer
            (#"{"v":1,"device":"gw-1","time":05}"#, false),
            (#"{"v":1,"device":"gw-1","time":99999999999999999999}"#, false),
            (#"{"v":1,"device":"gw-1","time":9223372036854775807}"#, true),  // Int64's ends, read from the digits
            (#"{"v":1,"device":"gw-1","time":-9223372036854775808}"#, true),
            (#"{"v":1,"device":"gw-1","time":9223372036854775808}"#, false),
            (#"{"v":1,"device":"gw-1","time":-9223372036854775809}"#, false),
            (#"{"v":1,"device":"gw-1","time":-0}"#, true),
            (#"{"v":1,"device":"gw-\#u{FC}","time":5}"#, true),  // not ASCII: validated
            (#"{"v":1,"device":"gw-1","time":5,"rtt":1e999}"#, false),
            (#"{"v":1,"device":"gw-1","time":5,"rtt":1e-3002}"#, false),  // underflows where the general decoder refuses
            (#"{"v":1,"device":"gw-1","time":5,"rtt":1e-5}"#, false),  // an exponent
            (#"{"v":1,"device":"gw-1"}"#, false),
            (#"{"v":1,"device":"gw-1","time":5}x"#, false),
        ]
        for (text, fast) in cases {
            #expect((BeatDecoder.decode(Array(text.utf8)) != nil) == fast, "\(text)")
            Self.check(Array(text.utf8), text)
        }
        // Through the codec: the same checks as any message, on either path.
        #expect(throws: WireError.self) { try WireCodec.decode(Beat.self, from: Array(#"{"v":1,"device":"gw-2","time":5}"#.utf8), topicDevice: "gw-1") }
        #expect(throws: WireError.self) { try WireCodec.decode(Beat.self, from: Array(#"{"v":2,"device":"gw-1","time":5}"#.utf8), topicDevice: "gw-1") }
        #expect(throws: WireError.self) { try WireCodec.decode(Beat.self, from: Array(#"{"v":1,"device":"gw-1","time":5,"rtt":-1}"#.utf8), topicDevice: "gw-1") }
        let beat = try WireCodec.decode(Beat.self, from: Array(#"{"v":1,"device":"gw-1","time":5,"phases":{"running":2}}"#.utf8), topicDevice: "gw-1")
        #expect(beat.phases == ["running": 2])
    }
}
