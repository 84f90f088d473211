import DroverCore
import DroverJSON
import DroverProtocol
import Foundation
import PropertyBased
import Testing

/// The agent's Foundation-free JSON against Foundation's coders: the same bytes out, the
/// same values in, and the same refusals, on our messages whole and with bytes changed.
@Suite("JSON without Foundation")
struct DroverJSONTests {
    static func foundation<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array(try encoder.encode(value))
    }

    /// Strings with what JSON escapes, non-ASCII, and slashes.
    static func randomString(_ rng: inout SplitMix64) -> String {
        let pieces = ["a", "Z", "/", "\\", "\"", "\n", "\t", "\u{0}", "\u{1F}", "\u{7F}", "ü", "€", "😀", "e\u{301}", " ", "\r", "\u{8}", "\u{C}", "\u{2028}"]
        return (0..<Int.random(in: 0...12, using: &rng)).map { _ in pieces.randomElement(using: &rng) ?? "" }.joined()
    }

    static func randomDouble(_ rng: inout SplitMix64) -> Double {
        switch Int.random(in: 0..<5, using: &rng) {
        case 0: return Double(Int.random(in: -1_000_000...1_000_000, using: &rng))
        case 1: return Double.random(in: -1...1, using: &rng)
        case 2: return Double(bitPattern: UInt64.random(in: 0...UInt64.max, using: &rng) & ~(0x7FF << 52) | (UInt64.random(in: 1...2046, using: &rng) << 52))
        case 3: return [0, -0.0, 1e16, 1e-7, 123456789012345680, 0.1, 1.0 / 3, Double.leastNonzeroMagnitude, Double.greatestFiniteMagnitude].randomElement(using: &rng) ?? 0
        default: return Double.random(in: -1e22...1e22, using: &rng)
        }
    }

    struct Mixed: Codable, Equatable {
        var text: String
        var number: Double
        var labels: [String: String]
        var list: [Int64]
        var flag: Bool?
        var nested: [[String: Double]]
    }

    static func randomMixed(_ rng: inout SplitMix64) -> Mixed {
        var labels: [String: String] = [:]
        for _ in 0..<Int.random(in: 0...20, using: &rng) { labels[randomString(&rng)] = randomString(&rng) }
        return Mixed(
            text: randomString(&rng), number: randomDouble(&rng), labels: labels,
            list: (0..<Int.random(in: 0...4, using: &rng)).map { _ in Int64.random(in: Int64.min...Int64.max, using: &rng) },
            flag: [true, false, nil].randomElement(using: &rng) ?? nil,
            nested: [["x": randomDouble(&rng), "y/z": randomDouble(&rng)], [:]])
    }

    @Test("writes what JSONEncoder with sorted keys writes: strings, doubles, dictionaries, beats, replica specs")
    func sameBytes() async {
        await propertyCheck(count: 1000, input: SchedulerPropertyTests.seeds) { seed in
            var rng = SplitMix64(state: UInt64(truncatingIfNeeded: seed))
            let mixed = Self.randomMixed(&rng)
            #expect((try? JSON.encode(mixed)) == (try? Self.foundation(mixed)), "seed \(seed): \(mixed)")
            let beat = BeatDecoderTests.randomBeat(&rng)
            #expect((try? JSON.encode(beat)) == (try? Self.foundation(beat)), "seed \(seed): beat")
            let spec = DesiredJSONTests.randomSpec(&rng)
            #expect((try? JSON.encode(spec)) == (try? Self.foundation(spec)), "seed \(seed): spec")
            let back = try? JSON.decode(Mixed.self, from: JSON.encode(mixed))
            #expect(back == mixed, "seed \(seed): read back")
        }
    }

    @Test("NaN and infinities are refused when writing, naming the field")
    func nonFinite() {
        struct One: Encodable { var rtt: Double }
        #expect(throws: EncodingError.self) { try JSON.encode(One(rtt: .nan)) }
        #expect(throws: EncodingError.self) { try JSON.encode([Double.infinity]) }
        #expect((try? JSON.encode(One(rtt: 1.5))).map { String(decoding: $0, as: UTF8.self) } == #"{"rtt":1.5}"#)
    }

    /// Both take it with the same value, or both refuse it. Foundation skips members it does
    /// not decode without checking their strings' escapes; ours refuses any document that is
    /// not JSON, so it may refuse more, but only for the syntax.
    static func agree<T: Decodable & Equatable>(_ type: T.Type, _ bytes: [UInt8], _ context: String) {
        let ours = try? JSON.decode(type, from: bytes)
        let theirs = try? JSONDecoder().decode(type, from: Data(bytes))
        if ours != nil, theirs == nil, zeroWithExponent(bytes) {
            return  // Foundation refuses `0e1` as a Double (0 is what it is); ours reads 0.
        }
        if ours == nil, theirs != nil {
            #expect(strictRefusal(type, bytes), "\(context): refused: \(String(decoding: bytes, as: UTF8.self).debugDescription)")
        } else {
            #expect(ours == theirs, "\(context): \(String(decoding: bytes, as: UTF8.self).debugDescription)")
        }
    }

    /// Not JSON, or a number with a fraction or an exponent that is not a whole number where
    /// an integer belongs (Foundation rounds `2.5` or `1e-3002` to one; ours does not round).
    static func strictRefusal<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) -> Bool {
        if (try? JSON.parse(bytes)) == nil { return true }
        do { _ = try JSON.decode(type, from: bytes) } catch {
            guard case .dataCorrupted(let context)? = error as? DecodingError else { return false }
            let text = context.debugDescription
            return text.hasPrefix("Number ") && (text.contains(".") || text.contains("e") || text.contains("E"))
        }
        return false
    }

    /// A number `0e…` or `0.0…e…`.
    static func zeroWithExponent(_ bytes: [UInt8]) -> Bool {
        let text = String(decoding: bytes, as: UTF8.self)
        return text.split(whereSeparator: { !"0123456789.eE+-".contains($0) }).contains { number in
            number.contains(where: { $0 == "e" || $0 == "E" }) && number.prefix { $0 != "e" && $0 != "E" }.allSatisfy { $0 == "0" || $0 == "." || $0 == "-" }
        }
    }

    @Test("reads what JSONDecoder reads, and refuses what it refuses: whole and mutated beats, replica specs and mixed values")
    func sameValues() async {
        await propertyCheck(count: 1000, input: SchedulerPropertyTests.seeds) { seed in
            var rng = SplitMix64(state: UInt64(truncatingIfNeeded: seed))
            let beat = WireCodec.encode(BeatDecoderTests.randomBeat(&rng))
            let mixed = (try? Self.foundation(Self.randomMixed(&rng))) ?? []
            let spec = (try? Self.foundation(DesiredJSONTests.randomSpec(&rng))) ?? []
            Self.agree(Beat.self, beat, "seed \(seed)")
            Self.agree(Mixed.self, mixed, "seed \(seed)")
            Self.agree(ReplicaSpec.self, spec, "seed \(seed)")
            for k in 0..<6 {
                Self.agree(Beat.self, BeatDecoderTests.mutate(beat, &rng), "seed \(seed), mutation \(k)")
                Self.agree(Mixed.self, BeatDecoderTests.mutate(mixed, &rng), "seed \(seed), mutation \(k)")
                Self.agree(ReplicaSpec.self, BeatDecoderTests.mutate(spec, &rng), "seed \(seed), mutation \(k)")
            }
        }
    }

    @Test("hostile documents are refused with a reason, never a crash: deep nesting, bad UTF-8, lone surrogates, raw control characters, numbers out of range")
    func hostile() throws {
        let refused: [(String, [UInt8])] = [
            ("deep nesting", Array(repeating: UInt8(ascii: "["), count: 200_000)),
            ("deep objects", Array(String(repeating: #"{"a":"#, count: 100_000).utf8)),
            ("bad UTF-8", [0x22, 0xC3, 0x28, 0x22]),
            ("overlong UTF-8", [0x22, 0xC0, 0xAF, 0x22]),
            ("lone high surrogate", Array(#""\ud800""#.utf8)),
            ("lone low surrogate", Array(#""\udc00x""#.utf8)),
            ("raw newline", Array("\"a\nb\"".utf8)),
            ("trailing garbage", Array("[1] x".utf8)),
            ("trailing comma", Array("[1,]".utf8)),
            ("leading zero", Array("[01]".utf8)),
            ("NaN", Array("[NaN]".utf8)),
            ("empty", []),
        ]
        for (name, bytes) in refused {
            #expect(throws: DecodingError.self, "\(name)") { try JSON.decode(JSONValueBox.self, from: bytes) }
        }
        #expect(throws: DecodingError.self) { try JSON.decode(Int64.self, from: "9223372036854775808") }
        #expect(throws: DecodingError.self) { try JSON.decode(Int8.self, from: "128") }
        #expect(throws: DecodingError.self) { try JSON.decode(Double.self, from: "1e400") }
        #expect(throws: DecodingError.self) { try JSON.decode(Double.self, from: "1e-3002") }
        #expect(throws: DecodingError.self) { try JSON.decode(Int.self, from: "1.5") }
        #expect(try JSON.decode(Int.self, from: "1e3") == 1000)
        // Exponents past any cap a short-cut would take: 5e-5 is no integer, 1e109 overflows.
        #expect(throws: DecodingError.self) { try JSON.decode(Int.self, from: "5" + String(repeating: "0", count: 100_005) + "e-100010") }
        #expect(throws: DecodingError.self) { try JSON.decode(Int.self, from: "0." + String(repeating: "0", count: 99_990) + "1e100100") }
        #expect(try JSON.decode(Int.self, from: "1" + String(repeating: "0", count: 100_000) + "e-100000") == 1)
        #expect(try JSON.decode(Int64.self, from: "-92233720368547758.08e2") == Int64.min)
        #expect(try JSON.decode(Float.self, from: "0.1") == Float(0.1))
        #expect(throws: DecodingError.self) { try JSON.decode(Float.self, from: "1e-50") }
        #expect(try JSON.decode(Double.self, from: "0e-999") == 0)
        #expect(try JSON.decode(Int64.self, from: "-9223372036854775808") == Int64.min)
        #expect(throws: DecodingError.self, "a key given twice") { try JSON.decode([String: Int].self, from: #"{"a":1,"a":2}"#) }
        let many = (0..<40).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        #expect(try JSON.decode([String: Int].self, from: "{\(many)}").count == 40)
        #expect(throws: DecodingError.self, "a key given twice, past the first 16") { try JSON.decode([String: Int].self, from: "{\(many),\"k30\":1}") }
        #expect(throws: DecodingError.self, "a key given twice, among the first 16") { try JSON.decode([String: Int].self, from: "{\(many),\"k3\":1}") }
        #expect(try JSON.decode(String.self, from: #""\ud83d\ude00 \u00fc\/""#) == "😀 ü/")
    }

    /// The path a decoding error names, as `usage.cpuPercent`.
    static func errorPath(_ text: String) -> String {
        let result = Result { try JSON.decode(Outer.self, from: text) }
        guard case .failure(let error) = result else { return "decoded" }
        switch error as? DecodingError {
        case .keyNotFound(let key, let c)?: return (c.codingPath + [key]).map(\.stringValue).joined(separator: ".") + " missing"
        case .typeMismatch(_, let c)?, .valueNotFound(_, let c)?, .dataCorrupted(let c)?:
            return c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        default: return "\(error)"
        }
    }

    @Test("a decoding error names the field: wire messages say which one is wrong")
    func errorPaths() {
        #expect(Self.errorPath(#"{"usage":{"cpuPercent":"x"},"list":[]}"#) == "usage.cpuPercent")
        #expect(Self.errorPath(#"{"usage":{},"list":[]}"#) == "usage.cpuPercent missing")
        #expect(Self.errorPath(#"{"usage":{"cpuPercent":1},"list":[1,null]}"#) == "list.[1]")
        #expect(Self.errorPath(#"{"usage":{"cpuPercent":1},"list":[1]}"#) == "decoded")
    }
}

private struct Outer: Decodable {
    struct Inner: Decodable { var cpuPercent: Double }
    var usage: Inner
    var list: [Int]
}

/// Any JSON document, to test the reader alone.
private struct JSONValueBox: Decodable {
    init(from decoder: any Decoder) throws {
        if let c = try? decoder.container(keyedBy: AnyKey.self) {
            for key in c.allKeys { _ = try c.decode(JSONValueBox.self, forKey: key) }
        } else if var u = try? decoder.unkeyedContainer() {
            while !u.isAtEnd { _ = try u.decode(JSONValueBox.self) }
        }
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}
