/// Writes JSON the way Foundation's `JSONEncoder` with `.sortedKeys` does: no spaces, object
/// keys in byte order, `/` escaped as `\/`, other characters as they are except the ones JSON
/// must escape, and a Double without a trailing `.0`.
public enum JSONWriter {
    public static func write(_ value: JSONValue) -> [UInt8] {
        var out: [UInt8] = []
        write(value, into: &out)
        return out
    }

    public static func write(_ value: JSONValue, into out: inout [UInt8]) {
        switch value {
        case .null: out += "null".utf8
        case .bool(let b): out += (b ? "true" : "false").utf8
        case .number(let text): out += text.utf8
        case .string(let s): string(s, into: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (k, item) in items.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                write(item, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let object):
            var first: [String: JSONValue] = [:]
            for (key, value) in zip(object.keys, object.values) where first[key] == nil { first[key] = value }
            members(first.sorted { byteOrder($0.key, $1.key) }, into: &out) { write($0, into: &$1) }
        }
    }

    /// `{"k":v,...}` for members already in order.
    static func members<V>(_ members: [(key: String, value: V)], into out: inout [UInt8], value: (V, inout [UInt8]) -> Void) {
        out.append(UInt8(ascii: "{"))
        for (k, member) in members.enumerated() {
            if k > 0 { out.append(UInt8(ascii: ",")) }
            string(member.key, into: &out)
            out.append(UInt8(ascii: ":"))
            value(member.value, &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    /// Keys compare by their UTF-8 bytes, not by Unicode equivalence: the order is total and
    /// the same on every machine.
    static func byteOrder(_ a: String, _ b: String) -> Bool {
        a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    /// A string with its quotes.
    public static func string(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for c in s.utf8 {
            switch c {
            case UInt8(ascii: "\""): out += #"\""#.utf8
            case UInt8(ascii: "\\"): out += #"\\"#.utf8
            case UInt8(ascii: "/"): out += #"\/"#.utf8
            case 0x08: out += #"\b"#.utf8
            case 0x0C: out += #"\f"#.utf8
            case 0x0A: out += #"\n"#.utf8
            case 0x0D: out += #"\r"#.utf8
            case 0x09: out += #"\t"#.utf8
            case 0..<0x20:
                out += #"\u00"#.utf8
                out.append(hexDigit(c >> 4))
                out.append(hexDigit(c & 0xF))
            default: out.append(c)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    private static func hexDigit(_ d: UInt8) -> UInt8 { d < 10 ? UInt8(ascii: "0") + d : UInt8(ascii: "a") + d - 10 }

    /// A finite Double as its shortest round-trip text; nil for NaN and infinities, which JSON
    /// cannot hold.
    public static func number(_ d: Double) -> String? {
        guard d.isFinite else { return nil }
        var text = d.description
        if text.hasSuffix(".0") { text.removeLast(2) }
        return text
    }

    public static func number(_ f: Float) -> String? {
        guard f.isFinite else { return nil }
        var text = f.description
        if text.hasSuffix(".0") { text.removeLast(2) }
        return text
    }
}
