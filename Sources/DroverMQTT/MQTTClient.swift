import CMosquitto
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// An MQTT 5 client over libmosquitto.
///
/// The `mosquitto *` handle is owned by this one class and freed in `deinit`. A dedicated
/// network thread (not the cooperative pool: libmosquitto's connect and loop block) runs the
/// connection state machine: connect, loop, and on loss reconnect with jittered backoff.
/// Publishing and subscribing are safe from any thread; libmosquitto locks internally.
public final class MQTTClient: @unchecked Sendable {
    public let configuration: MQTTConfiguration
    let handle: OpaquePointer
    let eventContinuation: AsyncStream<MQTTConnectionEvent>.Continuation
    public let messages: MQTTMessages
    public let events: MQTTConnectionEvents

    struct Shared {
        var subscriptions: [String: QoS] = [:]
        /// Subscriptions the broker acknowledged (SUBACK) in the session as it stands, and
        /// those asked for and not yet acknowledged, by message id.
        var held: [String: (qos: QoS, at: ContinuousClock.Instant)] = [:]
        var asked: [Int32: (filter: String, qos: QoS)] = [:]
        /// SUBACKs that came before their message id was noted (the subscriber's thread is
        /// not the network thread).
        var earlySubacks: [Int32: Bool] = [:]
        var connected = false
        var pendingAcks: [Int32: CheckedContinuation<PublishAck, any Error>] = [:]
        /// PUBACKs (with their reason codes) that arrived before the publisher registered its wait.
        var earlyAcks: [Int32: (reason: Int32, at: ContinuousClock.Instant)] = [:]
        /// The last reason a connection was refused, so that each is reported once.
        var lastRefusal: String?
        /// QoS 0 publishes whose completion has not been seen yet. libmosquitto reports a QoS 0
        /// message written to the socket through the same callback as a PUBACK, with a mid
        /// from the same 16-bit counter: taken for an acknowledgement, it could complete a later
        /// QoS 1 publish that reuses the mid, which was never acknowledged.
        var unacknowledged: [Int32: ContinuousClock.Instant] = [:]
        /// A completion parked longer than this belongs to no publish waiting now (a message
        /// libmosquitto resent after a reconnect, a QoS 0 message lost with its connection).
        static let parkedLifetime: Duration = .seconds(10)

        /// Takes a parked completion for `mid` if it is fresh; drops stale ones as it goes.
        mutating func takeEarlyAck(_ mid: Int32, now: ContinuousClock.Instant) -> Int32? {
            guard let parked = earlyAcks.removeValue(forKey: mid) else { return nil }
            return now - parked.at < Self.parkedLifetime ? parked.reason : nil
        }

        mutating func pruneParked(now: ContinuousClock.Instant) {
            guard earlyAcks.count + unacknowledged.count > 1024 else { return }
            earlyAcks = earlyAcks.filter { now - $0.value.at < Self.parkedLifetime }
            unacknowledged = unacknowledged.filter { now - $0.value < Self.parkedLifetime }
        }
        var started = false
        var finished: [CheckedContinuation<Void, Never>] = []
        var threadDone = false
    }
    let shared = Mutex(Shared())
    let stopping = Atomic<Bool>(false)

    public init(_ configuration: MQTTConfiguration) throws(MQTTError) {
        _ = mosquittoLibrary
        self.configuration = configuration
        guard let mosq = mosquitto_new(configuration.clientID, configuration.cleanStart, nil) else {
            throw .mosquitto(call: "mosquitto_new", code: errno, message: "out of memory or invalid client id")
        }
        handle = mosq
        messages = MQTTMessages(queue: MessageQueue())
        (events, eventContinuation) = {
            let (s, c) = AsyncStream<MQTTConnectionEvent>.makeStream(bufferingPolicy: .bufferingNewest(64))
            return (MQTTConnectionEvents(stream: s), c)
        }()
        do {
            try configure()
        } catch {
            mosquitto_destroy(mosq)
            throw error
        }
    }

    deinit {
        messages.queue.finish()
        mosquitto_destroy(handle)
    }

    private func configure() throws(MQTTError) {
        try mosqCheck(mosquitto_int_option(handle, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5), "protocol version")
        try mosqCheck(mosquitto_threaded_set(handle, true), "mosquitto_threaded_set")
        if let user = configuration.username {
            try mosqCheck(mosquitto_username_pw_set(handle, user, configuration.password), "mosquitto_username_pw_set")
        }
        if configuration.broker.tls {
            // The CA is given, or the system's; libmosquitto then checks the broker's
            // certificate and that it names the host (tls_insecure stays false).
            try mosqCheck(mosquitto_tls_set(handle, configuration.caFile, configuration.caFile == nil ? "/etc/ssl/certs" : nil, nil, nil, nil), "mosquitto_tls_set")
            try mosqCheck(mosquitto_tls_opts_set(handle, 1, "tlsv1.2", nil), "mosquitto_tls_opts_set")
        }
        if let will = configuration.will {
            try mosqCheck(
                will.payload.withUnsafeBytes {
                    mosquitto_will_set_v5(handle, will.topic, Int32($0.count), $0.baseAddress, will.qos.rawValue, will.retain, nil)
                }, "mosquitto_will_set_v5")
        }
        mosquitto_user_data_set(handle, Unmanaged.passUnretained(self).toOpaque())
        mosquitto_connect_v5_callback_set(handle) { _, obj, rc, flags, _ in
            guard let obj else { return }
            Unmanaged<MQTTClient>.fromOpaque(obj).takeUnretainedValue().didConnect(rc: rc, sessionPresent: flags & 1 == 1)
        }
        mosquitto_publish_v5_callback_set(handle) { _, obj, mid, reason, _ in
            guard let obj else { return }
            Unmanaged<MQTTClient>.fromOpaque(obj).takeUnretainedValue().didAcknowledge(mid: mid, reason: reason)
        }
        mosquitto_subscribe_v5_callback_set(handle) { _, obj, mid, count, granted, _ in
            guard let obj else { return }
            // Granted QoS 0–2; 0x80 and above is a refusal (MQTT 5 reason codes).
            let ok = count > 0 && granted.map { g in (0..<Int(count)).allSatisfy { g[$0] < 0x80 } } ?? false
            Unmanaged<MQTTClient>.fromOpaque(obj).takeUnretainedValue().didSubscribe(mid: mid, granted: ok)
        }
        mosquitto_message_v5_callback_set(handle) { _, obj, message, props in
            guard let obj, let message else { return }
            Unmanaged<MQTTClient>.fromOpaque(obj).takeUnretainedValue().didReceive(message.pointee, properties: props)
        }
    }

    /// Starts the network thread. Returns at once; watch `events` for `.connected`.
    public func start() {
        let alreadyStarted = shared.withLock { s in
            defer { s.started = true }
            return s.started
        }
        guard !alreadyStarted else { return }
        let box = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            guard let raw else { return nil }
            let client = Unmanaged<MQTTClient>.fromOpaque(raw).takeRetainedValue()
            client.runNetworkLoop()
            return nil
        }, box)
        if rc == 0 {
            pthread_detach(thread)
        } else {
            Unmanaged<MQTTClient>.fromOpaque(box).release()
            markThreadDone()
        }
    }

    /// Messages received and not yet read from `messages`.
    public var unreadMessages: Int { messages.queue.unread.load(ordering: .relaxed) }

    /// Whether a session is up right now.
    public var isConnected: Bool { shared.withLock { $0.connected } }

    /// Subscribes now if connected, and again on every reconnect.
    public func subscribe(_ filter: String, qos: QoS = .atLeastOnce) {
        let connected = shared.withLock { s in
            s.subscriptions[filter] = qos
            return s.connected
        }
        if connected { send(subscribe: filter, qos: qos) }
    }

    /// Sends one SUBSCRIBE and notes its message id, to learn when the broker holds it.
    func send(subscribe filter: String, qos: QoS) {
        var mid: Int32 = 0
        guard mosquitto_subscribe_v5(handle, &mid, filter, qos.rawValue, 0, nil) == MOSQ_ERR_SUCCESS.rawValue else { return }
        shared.withLock { s in
            if let granted = s.earlySubacks.removeValue(forKey: mid) {
                if granted { s.held[filter] = (qos, .now) }
            } else {
                s.asked[mid] = (filter, qos)
            }
        }
    }

    /// Publishes one message. With QoS 1 it returns once the broker acknowledged it and throws
    /// if the connection is down or drops first; with QoS 0 once it is queued for sending.
    @discardableResult
    public func publish(
        _ topic: String, _ payload: [UInt8], qos: QoS = .atLeastOnce, retain: Bool = false, responseTopic: String? = nil,
        correlationData: [UInt8]? = nil
    ) async throws -> PublishAck {
        var mid: Int32 = 0
        var props: OpaquePointer?
        defer { mosquitto_property_free_all(&props) }
        if let responseTopic { _ = mosquitto_property_add_string(&props, Int32(MQTT_PROP_RESPONSE_TOPIC.rawValue), responseTopic) }
        if let correlationData {
            _ = correlationData.withUnsafeBytes {
                mosquitto_property_add_binary(&props, Int32(MQTT_PROP_CORRELATION_DATA.rawValue), $0.baseAddress, UInt16(min($0.count, 65535)))
            }
        }
        let rc = payload.withUnsafeBytes {
            mosquitto_publish_v5(handle, &mid, topic, Int32($0.count), $0.baseAddress, qos.rawValue, retain, props)
        }
        try mosqCheck(rc, "mosquitto_publish_v5(\(topic))")
        guard qos == .atLeastOnce else {
            shared.withLock { s in
                // Its completion may already have come (and been parked); otherwise skip it when it does.
                let now = ContinuousClock.now
                if s.takeEarlyAck(mid, now: now) == nil { s.unacknowledged[mid] = now }
                s.pruneParked(now: now)
            }
            return .sent
        }
        return try await withCheckedThrowingContinuation { (c: CheckedContinuation<PublishAck, any Error>) in
            enum Now { case wait, ack(Int32), lost }
            let now = shared.withLock { s -> Now in
                if let reason = s.takeEarlyAck(mid, now: .now) { return .ack(reason) }
                if !s.connected { return .lost }
                s.pendingAcks[mid] = c
                return .wait
            }
            switch now {
            case .ack(let reason): Self.resume(c, reason: reason)
            case .lost: c.resume(throwing: MQTTError.connectionLost)
            case .wait: break
            }
        }
    }

    /// MQTT 5 PUBACK reason codes: 0x10 is a success that reached nobody; >= 0x80 is a refusal.
    static func resume(_ c: CheckedContinuation<PublishAck, any Error>, reason: Int32) {
        switch reason {
        case 0x10: c.resume(returning: .noMatchingSubscribers)
        case 0x80...: c.resume(throwing: MQTTError.mosquitto(call: "PUBACK", code: reason, message: "broker refused the publish"))
        default: c.resume(returning: .delivered)
        }
    }

    /// Disconnects and stops the network thread. `sendWill` asks the broker to publish the
    /// last will anyway (MQTT 5 reason code 0x04), as for an unplanned exit.
    public func shutdown(sendWill: Bool = false) async {
        stopping.store(true, ordering: .sequentiallyConsistent)
        _ = mosquitto_disconnect_v5(handle, sendWill ? 4 : 0, nil)
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let done = shared.withLock { s in
                if s.threadDone || !s.started { return true }
                s.finished.append(c)
                return false
            }
            if done { c.resume() }
        }
        messages.queue.finish()
        eventContinuation.finish()
    }
}
