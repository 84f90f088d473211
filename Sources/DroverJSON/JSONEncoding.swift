/// What an `Encodable` value wrote, before it is serialised: containers are references, so
/// that a nested container or a super-encoder can fill its part after it is handed out.
enum EncodedNode {
    case value(JSONValue)
    case object(EncodedObject)
    case array(EncodedArray)
    /// A child encoder (a value, or a super-encoder) whose result is read when written.
    case encoder(ValueEncoder)
}

final class EncodedObject {
    var members: [String: EncodedNode] = [:]
}

final class EncodedArray {
    var items: [EncodedNode] = []
}

extension EncodedNode {
    func write(into out: inout [UInt8]) {
        switch self {
        case .value(let v): JSONWriter.write(v, into: &out)
        case .object(let o):
            JSONWriter.members(o.members.sorted { JSONWriter.byteOrder($0.key, $1.key) }, into: &out) { $0.write(into: &$1) }
        case .array(let a):
            out.append(UInt8(ascii: "["))
            for (k, item) in a.items.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                item.write(into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .encoder(let e): (e.result ?? .object(EncodedObject())).write(into: &out)
        }
    }
}

/// The `Encoder` behind `JSON.encode`.
final class ValueEncoder: Encoder {
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    var result: EncodedNode?

    init(codingPath: [any CodingKey]) { self.codingPath = codingPath }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        let object: EncodedObject
        if case .object(let existing)? = result {
            object = existing
        } else {
            object = EncodedObject()
            result = .object(object)
        }
        return KeyedEncodingContainer(KeyedEncoder<Key>(object: object, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        let array: EncodedArray
        if case .array(let existing)? = result {
            array = existing
        } else {
            array = EncodedArray()
            result = .array(array)
        }
        return UnkeyedEncoder(array: array, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { SingleEncoder(encoder: self) }

    /// A value's node: scalars directly, anything else through a child encoder.
    /// The path is built only for an error or a nested value (see `ValueDecoder.decode`).
    static func node<T: Encodable>(_ value: T, at path: @autoclosure () -> [any CodingKey]) throws -> EncodedNode {
        if let scalar = try scalar(value, at: path) { return .value(scalar) }
        let child = ValueEncoder(codingPath: path())
        try value.encode(to: child)
        return child.result ?? .object(EncodedObject())
    }

    static func scalar<T: Encodable>(_ value: T, at path: () -> [any CodingKey]) throws -> JSONValue? {
        switch value {
        case let s as String: return .string(s)
        case let b as Bool: return .bool(b)
        case let i as Int: return .number(String(i))
        case let i as Int64: return .number(String(i))
        case let i as Int32: return .number(String(i))
        case let i as UInt64: return .number(String(i))
        case let i as UInt32: return .number(String(i))
        case let i as UInt16: return .number(String(i))
        case let i as Int16: return .number(String(i))
        case let i as UInt8: return .number(String(i))
        case let i as Int8: return .number(String(i))
        case let i as UInt: return .number(String(i))
        case let d as Double: return .number(try number(JSONWriter.number(d), d, path))
        case let f as Float: return .number(try number(JSONWriter.number(f), f, path))
        default: return nil
        }
    }

    static func number(_ text: String?, _ value: Any, _ path: () -> [any CodingKey]) throws -> String {
        guard let text else {
            throw EncodingError.invalidValue(value, EncodingError.Context(codingPath: path(), debugDescription: "\(value) is not a JSON number"))
        }
        return text
    }
}

private struct KeyedEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let object: EncodedObject
    let codingPath: [any CodingKey]

    mutating func encodeNil(forKey key: Key) { object.members[key.stringValue] = .value(.null) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        object.members[key.stringValue] = try ValueEncoder.node(value, at: codingPath + [key])
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        let nested = EncodedObject()
        object.members[key.stringValue] = .object(nested)
        return KeyedEncodingContainer(KeyedEncoder<NestedKey>(object: nested, codingPath: codingPath + [key]))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let nested = EncodedArray()
        object.members[key.stringValue] = .array(nested)
        return UnkeyedEncoder(array: nested, codingPath: codingPath + [key])
    }

    mutating func superEncoder() -> any Encoder { superEncoder(named: JSONKey("super")) }

    mutating func superEncoder(forKey key: Key) -> any Encoder { superEncoder(named: key) }

    private func superEncoder(named key: any CodingKey) -> any Encoder {
        let child = ValueEncoder(codingPath: codingPath + [key])
        object.members[key.stringValue] = .encoder(child)
        return child
    }
}

private struct UnkeyedEncoder: UnkeyedEncodingContainer {
    let array: EncodedArray
    let codingPath: [any CodingKey]
    var count: Int { array.items.count }

    private var nextPath: [any CodingKey] { codingPath + [JSONKey(index: array.items.count)] }

    mutating func encodeNil() { array.items.append(.value(.null)) }

    mutating func encode<T: Encodable>(_ value: T) throws { array.items.append(try ValueEncoder.node(value, at: nextPath)) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let nested = EncodedObject()
        let path = nextPath
        array.items.append(.object(nested))
        return KeyedEncodingContainer(KeyedEncoder<NestedKey>(object: nested, codingPath: path))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let nested = EncodedArray()
        let path = nextPath
        array.items.append(.array(nested))
        return UnkeyedEncoder(array: nested, codingPath: path)
    }

    mutating func superEncoder() -> any Encoder {
        let child = ValueEncoder(codingPath: nextPath)
        array.items.append(.encoder(child))
        return child
    }
}

private struct SingleEncoder: SingleValueEncodingContainer {
    let encoder: ValueEncoder
    var codingPath: [any CodingKey] { encoder.codingPath }

    mutating func encodeNil() { encoder.result = .value(.null) }

    mutating func encode<T: Encodable>(_ value: T) throws { encoder.result = try ValueEncoder.node(value, at: codingPath) }
}

/// A coding key for array positions and names made up here.
struct JSONKey: CodingKey {
    var stringValue: String
    var intValue: Int?

    init(_ name: String) { stringValue = name }
    init(index: Int) {
        stringValue = "Index \(index)"
        intValue = index
    }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { self.init(index: intValue) }
}
