import DroverCore
import DroverJSON

/// Why an incoming message was dropped. Each is counted; none crashes anything.
public enum DropReason: String, Codable, Sendable, CaseIterable, Error {
    case oversized
    case malformed
    case unknownVersion
    case deviceMismatch
    case invalidField
    case unknownTopic
    /// From a device whose credentials were revoked (an external broker may still let it in).
    case revoked
}

/// A message the codec refused, with enough detail to log.
public struct WireError: Error, Sendable, CustomStringConvertible {
    public var reason: DropReason
    public var detail: String

    public init(_ reason: DropReason, _ detail: String) {
        self.reason = reason
        self.detail = detail
    }

    public var description: String { "\(reason.rawValue): \(detail)" }
}

/// The one JSON configuration of the wire protocol, with strict decoding.
public enum WireCodec {
    /// Larger payloads are dropped unread. Desired state for a device with hundreds of
    /// replicas stays far below this.
    public static let maxPayloadBytes = 256 * 1024
    /// A device's whole desired state comes from the controller and may be larger: every
    /// replica the device runs, each with its command and env (64 KiB at most). The
    /// controller refuses an operator's change that would make one larger than this...
    public static let maxDesiredBytes = 1024 * 1024
    /// ...and a device accepts up to this, so that re-plans after device events, which pile
    /// replicas onto fewer devices and cannot be refused, still reach it.
    public static let maxDesiredDecodeBytes = 8 * 1024 * 1024
    /// A full snapshot lists every replica of a device.
    public static let maxReportBytes = 1024 * 1024

    static func limit<M>(_ type: M.Type) -> Int {
        if type == Desired.self { return maxDesiredDecodeBytes }
        if type == Report.self { return maxReportBytes }
        return maxPayloadBytes
    }

    public static func encode<M: Encodable>(_ message: M) -> [UInt8] {
        // The largest message, sent by the thousand in a large change: spliced from templates.
        if let d = message as? Desired {
            let json = DesiredJSON.encode(device: d.device, generation: d.generation, replicas: d.replicas, version: d.v)
            guard d.deflate, let deflated = Deflate.deflated(json), deflated.count < json.count else { return json }
            return deflated
        }
        // Encoding our own value types cannot fail: they hold only strings, numbers and
        // collections of them, and every Double is checked finite before it is built.
        return (try? JSON.encode(message)) ?? []
    }

    /// The envelope (`v`, `device`) checked first, then the message, in one pass over the
    /// JSON (parsing it twice cost half of the controller's beat ingest).
    private struct Envelope<M: Decodable>: Decodable {
        enum Key: String, CodingKey { case v, device }
        var device: String
        /// The message, or why it could not be decoded: the envelope's checks come first.
        var message: Result<M, any Error>

        init(from decoder: any Decoder) throws {
            let v: Int
            do {
                let c = try decoder.container(keyedBy: Key.self)
                v = try c.decode(Int.self, forKey: .v)
                device = try c.decode(String.self, forKey: .device)
            } catch {
                throw WireError(.malformed, "no valid envelope (v, device): \(WireCodec.describe(error))")
            }
            guard v == wireVersion else { throw WireError(.unknownVersion, "v=\(v), this build speaks v=\(wireVersion)") }
            message = Result { try M(from: decoder) }
        }
    }

    /// Decodes and checks one device message that arrived on a topic of `topicDevice`.
    public static func decode<M: DeviceMessage>(_ type: M.Type, from payload: [UInt8], topicDevice: String) throws(WireError) -> M {
        guard payload.count <= limit(M.self) else {
            throw WireError(.oversized, "\(payload.count) bytes, limit \(limit(M.self))")
        }
        // Desired state may come deflated (to a device that says it reads it so).
        if M.self == Desired.self, Deflate.isDeflated(payload) {
            return try decodeGeneral(M.self, from: try Deflate.inflated(payload, limit: maxDesiredDecodeBytes), topicDevice: topicDevice)
        }
        // Beats, the most frequent message, have a reader of their own; what it does not
        // take, the general decoder judges.
        if M.self == Beat.self, let beat = BeatDecoder.decode(payload) as? M {
            guard beat.v == wireVersion else { throw WireError(.unknownVersion, "v=\(beat.v), this build speaks v=\(wireVersion)") }
            return try checked(beat, topicDevice: topicDevice)
        }
        return try decodeGeneral(M.self, from: payload, topicDevice: topicDevice)
    }

    /// `decode(Beat.self, ...)` without generic code (no type metadata looked up, no dynamic
    /// cast): the controller's most frequent call.
    public static func decodeBeat(from payload: [UInt8], topicDevice: String) throws(WireError) -> Beat {
        guard payload.count <= maxPayloadBytes else { throw WireError(.oversized, "\(payload.count) bytes, limit \(maxPayloadBytes)") }
        guard let beat = BeatDecoder.decode(payload) else { return try decodeGeneral(Beat.self, from: payload, topicDevice: topicDevice) }
        guard beat.v == wireVersion else { throw WireError(.unknownVersion, "v=\(beat.v), this build speaks v=\(wireVersion)") }
        return try checked(beat, topicDevice: topicDevice)
    }

    /// Through `Codable`: the envelope (version, device) first, then the message.
    private static func decodeGeneral<M: DeviceMessage>(_ type: M.Type, from payload: [UInt8], topicDevice: String) throws(WireError) -> M {
        let envelope: Envelope<M>
        do {
            envelope = try JSON.decode(Envelope<M>.self, from: payload)
        } catch let error as WireError {
            throw error
        } catch {
            // Not JSON at all fails before the envelope is looked at.
            throw WireError(.malformed, "no valid envelope (v, device): \(describe(error))")
        }
        switch envelope.message {
        case .success(let decoded): return try checked(decoded, topicDevice: topicDevice)
        case .failure(let error):
            guard envelope.device == topicDevice else {
                throw WireError(.deviceMismatch, "payload device '\(envelope.device)' on the topic of '\(topicDevice)'")
            }
            throw WireError(.malformed, describe(error))
        }
    }

    /// The checks after decoding: the device is the topic's, every field in range.
    static func checked<M: DeviceMessage>(_ message: M, topicDevice: String) throws(WireError) -> M {
        guard message.device == topicDevice else {
            throw WireError(.deviceMismatch, "payload device '\(message.device)' on the topic of '\(topicDevice)'")
        }
        let problems = message.validate()
        guard problems.isEmpty else {
            throw WireError(.invalidField, problems.map(\.description).joined(separator: "; "))
        }
        return message
    }

    /// A decoding error as one line with the field path, e.g. `usage.cpuPercent: expected Double`.
    static func describe(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        func path(_ context: DecodingError.Context, _ extra: (any CodingKey)? = nil) -> String {
            var text = ""
            for key in context.codingPath + (extra.map { [$0] } ?? []) {
                if let i = key.intValue { text += "[\(i)]" } else { text += (text.isEmpty ? "" : ".") + key.stringValue }
            }
            return text.isEmpty ? "(root)" : text
        }
        switch error {
        case .keyNotFound(let key, let context): return "\(path(context, key)): missing"
        case .typeMismatch(let type, let context): return "\(path(context)): expected \(type)"
        case .valueNotFound(let type, let context): return "\(path(context)): expected \(type), found null"
        case .dataCorrupted(let context): return "\(path(context)): \(context.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}

extension WireCodec {
    public static func encodeText<M: Encodable>(_ message: M) -> String {
        String(decoding: encode(message), as: UTF8.self)
    }
}

extension WireCodec {
    /// Decodes a value that is not an envelope (e.g. a stored list of statuses).
    public static func decodeValue<T: Decodable>(_ type: T.Type, from text: String) throws -> T {
        try JSON.decode(type, from: Array(text.utf8))
    }
}
