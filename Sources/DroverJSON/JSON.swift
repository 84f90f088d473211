/// JSON for `Codable` values without Foundation. The agent links no Foundation at all (its
/// JSON coders alone were 7 MB of a static binary); the controller uses the same code for
/// the wire, so both ends read and write one dialect.
///
/// Writing: what Foundation's `JSONEncoder` with `.sortedKeys` writes, byte for byte.
/// Reading: strict RFC 8259 (see `JSONParser`), then the `DecodingError`s `JSONDecoder` throws.
public enum JSON {
    /// Fails only for a Double or Float that is NaN or infinite.
    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        var out: [UInt8] = []
        try ValueEncoder.node(value, at: []).write(into: &out)
        return out
    }

    /// `encode` as text.
    public static func encodeText<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try encode(value), as: UTF8.self)
    }

    /// Throws `DecodingError` (`.dataCorrupted` when the bytes are not JSON), or what the
    /// type's own `init(from:)` throws.
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        let value: JSONValue
        do { value = try JSONParser.parse(bytes) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "The given data was not valid JSON: \(error)", underlyingError: error))
        }
        return try ValueDecoder.decode(type, from: value, at: [])
    }

    public static func decode<T: Decodable>(_ type: T.Type, from text: String) throws -> T {
        try decode(type, from: Array(text.utf8))
    }

    /// The document itself, for reading JSON of no fixed type.
    public static func parse(_ bytes: [UInt8]) throws(JSONSyntaxError) -> JSONValue {
        try JSONParser.parse(bytes)
    }
}
