/// A parsed JSON document. Numbers keep their text, so that each is converted once, to the
/// type the decoding asks for, with that type's range checked (an integer past Int64 is an
/// error for an Int64, not a rounded Double).
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// The number's text, checked against JSON's grammar when parsed. `JSONWriter` writes it
    /// as it is: a value made by hand must hold a JSON number.
    case number(String)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)
}

/// An object's members in the order they came. A key given twice is an error (I-JSON,
/// RFC 7493): readers that take the first and readers that take the last would see two
/// different messages in the same bytes.
public struct JSONObject: Sendable, Equatable {
    /// Kept in step by the parser: read-only outside it.
    public internal(set) var keys: [String] = []
    public internal(set) var values: [JSONValue] = []

    public init() {}

    /// The value of `key`, by a search: objects are small.
    public subscript(key: String) -> JSONValue? {
        keys.firstIndex(of: key).map { values[$0] }
    }
}

/// Why bytes are not JSON, with the byte offset where it showed.
public struct JSONSyntaxError: Error, Sendable, CustomStringConvertible {
    public var offset: Int
    public var reason: String
    public var description: String { "not valid JSON at byte \(offset): \(reason)" }
}

/// A strict RFC 8259 reader: no comments, no trailing commas, no NaN, strings must be valid
/// UTF-8 without raw control characters, and nesting is bounded so that hostile input cannot
/// exhaust the stack.
struct JSONParser: ~Copyable {
    static let maxDepth = 512

    private let bytes: UnsafeBufferPointer<UInt8>
    private var at = 0
    private var depth = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    static func parse(_ bytes: [UInt8]) throws(JSONSyntaxError) -> JSONValue {
        let parsed: Result<JSONValue, JSONSyntaxError> = bytes.withUnsafeBufferPointer { buffer in
            var parser = JSONParser(buffer)
            return Result { () throws(JSONSyntaxError) in try parser.document() }
        }
        return try parsed.get()
    }

    private mutating func document() throws(JSONSyntaxError) -> JSONValue {
        let value = try self.value()
        skipSpace()
        guard at == bytes.count else { throw fail("unexpected text after the document") }
        return value
    }

    private func fail(_ reason: String) -> JSONSyntaxError { JSONSyntaxError(offset: at, reason: reason) }

    private mutating func skipSpace() {
        while at < bytes.count {
            switch bytes[at] {
            case 0x20, 0x0A, 0x0D, 0x09: at += 1
            default: return
            }
        }
    }

    private mutating func value() throws(JSONSyntaxError) -> JSONValue {
        skipSpace()
        guard at < bytes.count else { throw fail("unexpected end") }
        switch bytes[at] {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw fail("unexpected character")
        }
    }

    private mutating func literal(_ word: StaticString) throws(JSONSyntaxError) {
        let n = word.utf8CodeUnitCount
        guard at + n <= bytes.count else { throw fail("unexpected end") }
        for k in 0..<n where bytes[at + k] != word.utf8Start[k] { throw fail("unexpected character") }
        at += n
    }

    private mutating func nest() throws(JSONSyntaxError) {
        depth += 1
        guard depth <= Self.maxDepth else { throw fail("nested deeper than \(Self.maxDepth)") }
    }

    private mutating func object() throws(JSONSyntaxError) -> JSONValue {
        try nest()
        at += 1
        var object = JSONObject()
        skipSpace()
        if at < bytes.count, bytes[at] == UInt8(ascii: "}") {
            at += 1
            depth -= 1
            return .object(object)
        }
        // Past a few members, the names seen are looked up in a set.
        var seen = Set<String>()
        while true {
            skipSpace()
            guard at < bytes.count, bytes[at] == UInt8(ascii: "\"") else { throw fail("expected a member name") }
            let key = try string()
            let repeated: Bool
            if object.keys.count < 16 {
                repeated = object.keys.contains(key)
            } else {
                if seen.isEmpty { seen = Set(object.keys) }
                repeated = !seen.insert(key).inserted
            }
            guard !repeated else { throw fail("member name \"\(key.prefix(64))\" given twice") }
            object.keys.append(key)
            skipSpace()
            guard at < bytes.count, bytes[at] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            at += 1
            object.values.append(try value())
            skipSpace()
            guard at < bytes.count else { throw fail("unexpected end") }
            if bytes[at] == UInt8(ascii: ",") { at += 1; continue }
            guard bytes[at] == UInt8(ascii: "}") else { throw fail("expected ',' or '}'") }
            at += 1
            depth -= 1
            return .object(object)
        }
    }

    private mutating func array() throws(JSONSyntaxError) -> JSONValue {
        try nest()
        at += 1
        var items: [JSONValue] = []
        skipSpace()
        if at < bytes.count, bytes[at] == UInt8(ascii: "]") {
            at += 1
            depth -= 1
            return .array(items)
        }
        while true {
            items.append(try value())
            skipSpace()
            guard at < bytes.count else { throw fail("unexpected end") }
            if bytes[at] == UInt8(ascii: ",") { at += 1; continue }
            guard bytes[at] == UInt8(ascii: "]") else { throw fail("expected ',' or ']'") }
            at += 1
            depth -= 1
            return .array(items)
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    private mutating func number() throws(JSONSyntaxError) -> String {
        let start = at
        if bytes[at] == UInt8(ascii: "-") { at += 1 }
        guard at < bytes.count, isDigit(bytes[at]) else { throw fail("expected a digit") }
        if bytes[at] == UInt8(ascii: "0") {
            at += 1
            if at < bytes.count, isDigit(bytes[at]) { throw fail("a number has a leading zero") }
        } else {
            digits()
        }
        if at < bytes.count, bytes[at] == UInt8(ascii: ".") {
            at += 1
            guard at < bytes.count, isDigit(bytes[at]) else { throw fail("expected a digit after '.'") }
            digits()
        }
        if at < bytes.count, bytes[at] | 0x20 == UInt8(ascii: "e") {
            at += 1
            if at < bytes.count, bytes[at] == UInt8(ascii: "+") || bytes[at] == UInt8(ascii: "-") { at += 1 }
            guard at < bytes.count, isDigit(bytes[at]) else { throw fail("expected a digit in the exponent") }
            digits()
        }
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<at]), as: UTF8.self)
    }

    private func isDigit(_ c: UInt8) -> Bool { c &- UInt8(ascii: "0") < 10 }

    private mutating func digits() {
        while at < bytes.count, isDigit(bytes[at]) { at += 1 }
    }

    private mutating func string() throws(JSONSyntaxError) -> String {
        at += 1
        let start = at
        // Most strings have no escapes: validated and copied in one go.
        while at < bytes.count {
            let c = bytes[at]
            if c == UInt8(ascii: "\"") {
                let text = String(validating: UnsafeBufferPointer(rebasing: bytes[start..<at]), as: UTF8.self)
                guard let text else { throw JSONSyntaxError(offset: start, reason: "a string is not valid UTF-8") }
                at += 1
                return text
            }
            if c == UInt8(ascii: "\\") { break }
            guard c >= 0x20 else { throw fail("a control character in a string") }
            at += 1
        }
        var out = Array(UnsafeBufferPointer(rebasing: bytes[start..<at]))
        while at < bytes.count {
            let c = bytes[at]
            if c == UInt8(ascii: "\"") {
                guard let text = String(validating: out, as: UTF8.self) else { throw JSONSyntaxError(offset: start, reason: "a string is not valid UTF-8") }
                at += 1
                return text
            }
            guard c >= 0x20 else { throw fail("a control character in a string") }
            if c != UInt8(ascii: "\\") {
                out.append(c)
                at += 1
                continue
            }
            at += 1
            guard at < bytes.count else { break }
            switch bytes[at] {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(bytes[at])
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                appendUTF8(try escapedScalar(), to: &out)
                continue
            default: throw fail("an unknown escape")
            }
            at += 1
        }
        throw fail("an unterminated string")
    }

    /// `\uXXXX`, or a surrogate pair of two; `at` is on the `u`, and ends after the last digit.
    private mutating func escapedScalar() throws(JSONSyntaxError) -> Unicode.Scalar {
        let high = try hex4()
        if (0xD800..<0xDC00).contains(high) {
            guard at + 1 < bytes.count, bytes[at] == UInt8(ascii: "\\"), bytes[at + 1] == UInt8(ascii: "u") else { throw fail("an unpaired surrogate") }
            at += 1
            let low = try hex4()
            guard (0xDC00..<0xE000).contains(low) else { throw fail("an unpaired surrogate") }
            return Unicode.Scalar(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)) ?? "\u{FFFD}"
        }
        guard let scalar = Unicode.Scalar(high) else { throw fail("an unpaired surrogate") }
        return scalar
    }

    private mutating func hex4() throws(JSONSyntaxError) -> UInt32 {
        at += 1
        guard at + 4 <= bytes.count else { throw fail("a short \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[at]
            let d: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
            default: throw fail("a bad \\u escape")
            }
            v = v << 4 | UInt32(d)
            at += 1
        }
        return v
    }

    private func appendUTF8(_ scalar: Unicode.Scalar, to out: inout [UInt8]) {
        UTF8.encode(scalar) { out.append($0) }
    }
}
