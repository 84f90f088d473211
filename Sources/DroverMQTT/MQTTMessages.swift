/// One message received from the broker.
public struct MQTTMessage: Sendable, Hashable {
    public var topic: String
    public var payload: [UInt8]
    public var qos: QoS
    public var retain: Bool

    public init(topic: String, payload: [UInt8], qos: QoS, retain: Bool) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
    }
}

/// Changes of the connection, for callers that must act on (re)connect: announce
/// themselves, flush an outbox.
public enum MQTTConnectionEvent: Sendable, Hashable {
    case connected(sessionPresent: Bool)
    case disconnected
}

/// Incoming messages of one client, in arrival order. Single consumer.
public struct MQTTMessages: AsyncSequence, Sendable {
    public typealias Element = MQTTMessage
    let stream: AsyncStream<MQTTMessage>

    public func makeAsyncIterator() -> AsyncStream<MQTTMessage>.AsyncIterator {
        stream.makeAsyncIterator()
    }
}

/// Connection events of one client. Single consumer.
public struct MQTTConnectionEvents: AsyncSequence, Sendable {
    public typealias Element = MQTTConnectionEvent
    let stream: AsyncStream<MQTTConnectionEvent>

    public func makeAsyncIterator() -> AsyncStream<MQTTConnectionEvent>.AsyncIterator {
        stream.makeAsyncIterator()
    }
}

/// What the broker said of a publish.
public enum PublishAck: Sendable, Hashable {
    /// QoS 0: handed to the socket; nothing more is known.
    case sent
    /// QoS 1: acknowledged, and at least one subscriber (or session) matched.
    case delivered
    /// QoS 1: acknowledged, but no subscriber matched (MQTT 5 reason 0x10), so nobody got it.
    case noMatchingSubscribers
}
