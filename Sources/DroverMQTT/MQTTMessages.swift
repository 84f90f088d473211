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
///
/// The reader takes everything waiting at once (`MessageQueue`), so a busy reader costs
/// one lock per batch, not a generic `AsyncStream` step and a wake-up per message: at
/// 25,000 beats a second those were a quarter of the controller's CPU (`perf`).
public struct MQTTMessages: AsyncSequence, Sendable {
    public typealias Element = MQTTMessage
    let queue: MessageQueue

    public struct AsyncIterator: AsyncIteratorProtocol {
        let queue: MessageQueue
        var batch: [MQTTMessage] = []
        var index = 0

        public mutating func next() async -> MQTTMessage? {
            if index == batch.count {
                guard let more = await queue.take() else { return nil }
                (batch, index) = (more, 0)
            }
            defer { index += 1 }
            queue.unread.subtract(1, ordering: .relaxed)
            return batch[index]
        }

        /// Every message received and not yet read, in order: waits for at least one; nil
        /// once the client has shut down (or the task is cancelled) and nothing is left.
        public mutating func nextBatch() async -> [MQTTMessage]? {
            var taken: [MQTTMessage]
            if index < batch.count {
                taken = Array(batch[index...])
            } else {
                guard let more = await queue.take() else { return nil }
                taken = more
            }
            (batch, index) = ([], 0)
            queue.unread.subtract(taken.count, ordering: .relaxed)
            return taken
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(queue: queue)
    }
}

/// Messages from the network thread to the one reader: a locked array the reader swaps out
/// whole, and the reader's continuation while it waits.
final class MessageQueue: Sendable {
    private struct State {
        var buffer: [MQTTMessage] = []
        var waiter: CheckedContinuation<[MQTTMessage]?, Never>?
        var finished = false
    }
    private let state = Mutex(State())
    /// Received and not yet handed to the reader (the backpressure bound counts these).
    let unread = Atomic<Int>(0)

    /// From the network thread. Ignored once finished. The reader is not woken: `wake` does,
    /// once for all that one pass of the network loop read.
    func push(_ message: MQTTMessage) {
        state.withLock { s in
            guard !s.finished else { return }
            unread.add(1, ordering: .relaxed)
            s.buffer.append(message)
        }
    }

    /// Hands what was pushed to the reader if it waits.
    func wake() {
        let (waiter, ready) = state.withLock { s -> (CheckedContinuation<[MQTTMessage]?, Never>?, [MQTTMessage]) in
            guard let waiter = s.waiter, !s.buffer.isEmpty else { return (nil, []) }
            s.waiter = nil
            defer { s.buffer = [] }
            return (waiter, s.buffer)
        }
        waiter?.resume(returning: ready)
    }

    /// No more messages: the reader gets what is left, then nil.
    func finish() {
        let (waiter, ready) = state.withLock { s -> (CheckedContinuation<[MQTTMessage]?, Never>?, [MQTTMessage]?) in
            s.finished = true
            guard let waiter = s.waiter else { return (nil, nil) }
            s.waiter = nil
            guard !s.buffer.isEmpty else { return (waiter, nil) }
            defer { s.buffer = [] }
            return (waiter, s.buffer)
        }
        waiter?.resume(returning: ready)
    }

    /// Everything waiting, or the next message to come; nil when finished and empty, or
    /// when the task is cancelled.
    func take() async -> [MQTTMessage]? {
        switch state.withLock({ s in Self.ready(&s) }) {
        case .some(let ready): return ready
        case .none: break
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<[MQTTMessage]?, Never>) in
                let ready = state.withLock { s -> [MQTTMessage]?? in
                    if let ready = Self.ready(&s) { return ready }
                    if Task.isCancelled { return .some(nil) }
                    s.waiter = c
                    return nil
                }
                if let ready { c.resume(returning: ready) }
            }
        } onCancel: {
            let waiter = state.withLock { s in
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.resume(returning: nil)
        }
    }

    /// What a reader gets without waiting: the buffer, or nil (finished); none: wait.
    private static func ready(_ s: inout State) -> [MQTTMessage]?? {
        if !s.buffer.isEmpty {
            defer { s.buffer = [] }
            return .some(s.buffer)
        }
        return s.finished ? .some(nil) : .none
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
