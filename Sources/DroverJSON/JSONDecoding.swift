/// The `Decoder` behind `JSON.decode`, over a parsed document. Its errors are the
/// `DecodingError`s Foundation's `JSONDecoder` throws, with the same coding paths.
struct ValueDecoder: Decoder {
    let value: JSONValue
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let object) = value else { throw Self.mismatch([String: JSONValue].self, value, codingPath) }
        return KeyedDecodingContainer(KeyedDecoder<Key>(object: object, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let items) = value else { throw Self.mismatch([JSONValue].self, value, codingPath) }
        return UnkeyedDecoder(items: items, codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { SingleDecoder(value: value, codingPath: codingPath) }

    /// The path is built only for an error or a nested value: most fields are scalars, which
    /// need none unless they fail.
    static func decode<T: Decodable>(_ type: T.Type, from value: JSONValue, at path: @autoclosure () -> [any CodingKey]) throws -> T {
        if let scalar = try scalar(type, from: value, at: path) { return scalar }
        return try T(from: ValueDecoder(value: value, codingPath: path()))
    }

    /// Strings, numbers and booleans without a decoder of their own.
    static func scalar<T>(_ type: T.Type, from value: JSONValue, at path: () -> [any CodingKey]) throws -> T? {
        if type == String.self {
            guard case .string(let s) = value else { throw mismatch(type, value, path()) }
            return s as? T
        }
        if type == Bool.self {
            guard case .bool(let b) = value else { throw mismatch(type, value, path()) }
            return b as? T
        }
        if type == Int.self { return try integer(Int.self, value, path) as? T }
        if type == Int64.self { return try integer(Int64.self, value, path) as? T }
        if type == Double.self { return try double(value, path) as? T }
        if type == Int32.self { return try integer(Int32.self, value, path) as? T }
        if type == UInt64.self { return try integer(UInt64.self, value, path) as? T }
        if type == UInt32.self { return try integer(UInt32.self, value, path) as? T }
        if type == UInt16.self { return try integer(UInt16.self, value, path) as? T }
        if type == Int16.self { return try integer(Int16.self, value, path) as? T }
        if type == UInt8.self { return try integer(UInt8.self, value, path) as? T }
        if type == Int8.self { return try integer(Int8.self, value, path) as? T }
        if type == UInt.self { return try integer(UInt.self, value, path) as? T }
        if type == Float.self {
            // Read as a Float directly (through a Double it could round twice).
            guard case .number(let text) = value else { throw mismatch(type, value, path()) }
            guard let f = Float(text), f.isFinite, f != 0 || !mantissaIsNonZero(text) else { throw unrepresentable(value, type, path()) }
            return f as? T
        }
        return nil
    }

    /// An integer, also from `1.0` or `1e3`, as Foundation reads them; never rounded.
    static func integer<T: FixedWidthInteger>(_ type: T.Type, _ value: JSONValue, _ path: () -> [any CodingKey]) throws -> T {
        guard case .number(let text) = value else { throw mismatch(type, value, path()) }
        if let n = T(text) ?? exactInteger(text, T.self) { return n }
        throw unrepresentable(value, type, path())
    }

    /// `12.50e1` as the integer it is, digit by digit (a Double would round past 2^53);
    /// nil when it has a fraction or does not fit. The text is a checked JSON number.
    static func exactInteger<T: FixedWidthInteger>(_ text: String, _ type: T.Type) -> T? {
        var bytes = Array(text.utf8)
        let negative = bytes.first == UInt8(ascii: "-")
        if negative { bytes.removeFirst() }
        var digits: [UInt8] = []
        var exponent = 0
        var k = 0
        while k < bytes.count, bytes[k] != UInt8(ascii: "."), bytes[k] | 0x20 != UInt8(ascii: "e") { digits.append(bytes[k]); k += 1 }
        if k < bytes.count, bytes[k] == UInt8(ascii: ".") {
            k += 1
            while k < bytes.count, bytes[k] | 0x20 != UInt8(ascii: "e") { digits.append(bytes[k]); exponent -= 1; k += 1 }
        }
        if k < bytes.count {
            k += 1
            let sign = bytes[k] == UInt8(ascii: "-") ? -1 : 1
            if bytes[k] == UInt8(ascii: "-") || bytes[k] == UInt8(ascii: "+") { k += 1 }
            var e = 0
            // Capped past any digit count a payload can have (so the checks below stay exact)
            // and far from overflowing.
            while k < bytes.count {
                if e < 1 << 40 { e = e * 10 + Int(bytes[k] - UInt8(ascii: "0")) }
                k += 1
            }
            exponent += sign * e
        }
        if digits.allSatisfy({ $0 == UInt8(ascii: "0") }) { return 0 }
        if exponent < 0 {
            guard -exponent <= digits.count, digits.suffix(-exponent).allSatisfy({ $0 == UInt8(ascii: "0") }) else { return nil }
            digits.removeLast(-exponent)
        } else {
            guard exponent <= 64 else { return nil }
            digits += repeatElement(UInt8(ascii: "0"), count: exponent)
        }
        var n: T = 0
        for d in digits {
            let (times10, o1) = n.multipliedReportingOverflow(by: 10)
            let digit = T(d - UInt8(ascii: "0"))
            let (next, o2) = negative ? times10.subtractingReportingOverflow(digit) : times10.addingReportingOverflow(digit)
            guard !o1, !o2 else { return nil }
            n = next
        }
        return n
    }

    /// A finite Double. A number too large, or one that is not zero but too small to be told
    /// from it, is an error rather than an infinity or a silent zero.
    static func double(_ value: JSONValue, _ path: () -> [any CodingKey]) throws -> Double {
        guard case .number(let text) = value else { throw mismatch(Double.self, value, path()) }
        guard let d = Double(text), d.isFinite else { throw unrepresentable(value, Double.self, path()) }
        if d == 0, mantissaIsNonZero(text) { throw unrepresentable(value, Double.self, path()) }
        return d
    }

    private static func mantissaIsNonZero(_ text: String) -> Bool {
        for c in text.utf8 {
            if c | 0x20 == UInt8(ascii: "e") { return false }
            if c >= UInt8(ascii: "1") && c <= UInt8(ascii: "9") { return true }
        }
        return false
    }

    static func mismatch(_ type: Any.Type, _ value: JSONValue, _ path: [any CodingKey]) -> DecodingError {
        if value == .null {
            return .valueNotFound(type, .init(codingPath: path, debugDescription: "Cannot get \(type) -- found null value instead"))
        }
        return .typeMismatch(type, .init(codingPath: path, debugDescription: "Expected to decode \(type) but found \(kind(value)) instead."))
    }

    static func unrepresentable(_ value: JSONValue, _ type: Any.Type, _ path: [any CodingKey]) -> DecodingError {
        let text = if case .number(let t) = value { t } else { kind(value) }
        return .dataCorrupted(.init(codingPath: path, debugDescription: "Number \(text) is not representable in \(type)"))
    }

    static func kind(_ value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "a dictionary"
        }
    }
}

private struct KeyedDecoder<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let object: JSONObject
    let codingPath: [any CodingKey]
    /// Large objects (labels, env) are indexed once; small ones are searched.
    private let index: [String: Int]?

    init(object: JSONObject, codingPath: [any CodingKey]) {
        self.object = object
        self.codingPath = codingPath
        if object.keys.count > 16 {
            var index: [String: Int] = [:]
            for (k, key) in object.keys.enumerated() where index[key] == nil { index[key] = k }
            self.index = index
        } else {
            index = nil
        }
    }

    var allKeys: [Key] {
        var seen = Set<String>()
        return object.keys.compactMap { seen.insert($0).inserted ? Key(stringValue: $0) : nil }
    }

    private func find(_ key: Key) -> JSONValue? {
        if let index { return index[key.stringValue].map { object.values[$0] } }
        return object[key.stringValue]
    }

    private func value(_ key: Key) throws -> JSONValue {
        guard let value = find(key) else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "No value associated with key \(key.stringValue)."))
        }
        return value
    }

    func contains(_ key: Key) -> Bool { find(key) != nil }

    func decodeNil(forKey key: Key) throws -> Bool { try value(key) == .null }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try ValueDecoder.decode(type, from: try value(key), at: codingPath + [key])
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try ValueDecoder(value: try value(key), codingPath: codingPath + [key]).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try ValueDecoder(value: try value(key), codingPath: codingPath + [key]).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        ValueDecoder(value: object["super"] ?? .null, codingPath: codingPath + [JSONKey("super")])
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        ValueDecoder(value: find(key) ?? .null, codingPath: codingPath + [key])
    }
}

private struct UnkeyedDecoder: UnkeyedDecodingContainer {
    let items: [JSONValue]
    let codingPath: [any CodingKey]
    var currentIndex = 0

    init(items: [JSONValue], codingPath: [any CodingKey]) {
        self.items = items
        self.codingPath = codingPath
    }

    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    private func next(_ type: Any.Type) throws -> JSONValue {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(type, .init(codingPath: codingPath + [JSONKey(index: currentIndex)], debugDescription: "Unkeyed container is at end."))
        }
        return items[currentIndex]
    }

    private var path: [any CodingKey] { codingPath + [JSONKey(index: currentIndex)] }

    mutating func decodeNil() throws -> Bool {
        guard try next(Never.self) == .null else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let decoded = try ValueDecoder.decode(type, from: try next(type), at: path)
        currentIndex += 1
        return decoded
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let container = try ValueDecoder(value: try next(type), codingPath: path).container(keyedBy: type)
        currentIndex += 1
        return container
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let container = try ValueDecoder(value: try next([JSONValue].self), codingPath: path).unkeyedContainer()
        currentIndex += 1
        return container
    }

    mutating func superDecoder() throws -> any Decoder {
        let decoder = ValueDecoder(value: try next(JSONValue.self), codingPath: path)
        currentIndex += 1
        return decoder
    }
}

private struct SingleDecoder: SingleValueDecodingContainer {
    let value: JSONValue
    let codingPath: [any CodingKey]

    func decodeNil() -> Bool { value == .null }

    func decode<T: Decodable>(_ type: T.Type) throws -> T { try ValueDecoder.decode(type, from: value, at: codingPath) }
}
