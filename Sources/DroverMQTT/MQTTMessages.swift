import Synchronization

/// One message received from the broker.
public struct MQTTMessage: Sendable, Hashable {
    public var topic: String
    public var payload: [UInt8]
    public var qos: QoS
    public var retain: Bool
    /// MQTT 5 request/response: where to answer, and what to echo so the asker can match it.
    public var responseTopic: String?
    public var correlationData: [UInt8]?

    public init(topic: String, payload: [UInt8], qos: QoS, retain: Bool, responseTopic: String? = nil, correlationData: [UInt8]? = nil) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.responseTopic = responseTopic
        self.correlationData = correlationData
    }
}

/// Changes of the connection, for callers that must act on (re)connect: announce
/// themselves, flush an outbox.
public enum MQTTConnectionEvent: Sendable, Hashable {
    case connected(sessionPresent: Bool)
    case disconnected
    /// A connection attempt the broker or its certificate turned down, with the reason; sent
    /// once per new reason, not for every retry.
    case refused(reason: String)
}

/// Incoming messages of one client, in arrival order. Single consumer.
///
/// Bounded: while `MQTTConfiguration.maxBufferedMessages` wait unread, the network thread
/// stops reading from the socket, so the broker holds the rest (it queues QoS 1 for the
/// session) instead of this process growing without limit.
public struct MQTTMessages: AsyncSequence, Sendable {
    public typealias Element = MQTTMessage
    let stream: AsyncStream<MQTTMessage>
    let buffered: BufferCount

    public struct AsyncIterator: AsyncIteratorProtocol {
        var inner: AsyncStream<MQTTMessage>.AsyncIterator
        let buffered: BufferCount

        public mutating func next() async -> MQTTMessage? {
            guard let message = await inner.next() else { return nil }
            buffered.count.subtract(1, ordering: .relaxed)
            return message
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(inner: stream.makeAsyncIterator(), buffered: buffered)
    }
}

/// Messages received and not yet read.
final class BufferCount: Sendable {
    let count = Atomic<Int>(0)
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
