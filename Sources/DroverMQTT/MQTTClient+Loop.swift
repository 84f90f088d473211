import CDroverTLS
import CMosquitto

#if canImport(Glibc)
import Glibc
#endif

extension MQTTClient {
    /// The network thread: runs the connection state machine until shutdown.
    func runNetworkLoop() {
        var machine = ConnectionStateMachine(policy: configuration.backoff)
        var action = machine.start()
        var firstConnect = true
        while true {
            if stopping.load(ordering: .sequentiallyConsistent), action != .stop { action = machine.shutdown() }
            switch action {
            case .connect:
                // The first connect stores the host and the CONNECT properties (session expiry);
                // later ones reuse them without blocking, so a broker whose host silently drops
                // packets costs `connectTimeout`, not the kernel's minutes of SYN retries.
                let rc = firstConnect ? connectOnce() : mosquitto_reconnect_async(handle)
                if rc != MOSQ_ERR_INVAL.rawValue { firstConnect = false }
                if rc == MOSQ_ERR_TLS.rawValue { diagnoseTLS() }
                if rc == MOSQ_ERR_SUCCESS.rawValue {
                    let began = ContinuousClock.now
                    // CONNACK and everything after arrive through the loop and its callbacks.
                    while !stopping.load(ordering: .sequentiallyConsistent) {
                        if isConnected, case .connecting = machine.state { _ = machine.connected() }
                        if !isConnected, ContinuousClock.now - began > Self.connectTimeout { break }
                        var loopRC = mosquitto_loop(handle, 100, 1)
                        if loopRC == MOSQ_ERR_SUCCESS.rawValue { loopRC = readWaiting() }
                        // The reader is woken once for what this pass read (see `readWaiting`).
                        messages.queue.wake()
                        if loopRC == MOSQ_ERR_TLS.rawValue, !isConnected { diagnoseTLS() }
                        if loopRC != MOSQ_ERR_SUCCESS.rawValue { break }
                    }
                    // Flush a clean DISCONNECT before leaving.
                    if stopping.load(ordering: .sequentiallyConsistent) { _ = mosquitto_loop(handle, 50, 1) }
                    connectionDropped()
                }
                action = machine.connectionLost(random: Double.random(in: 0..<1))
            case .backoff(let delay):
                sleepUnlessStopping(delay)
                action = machine.backoffElapsed()
            case .subscribe, .none:
                action = machine.connectionLost(random: Double.random(in: 0..<1))
            case .stop:
                markThreadDone()
                return
            }
        }
    }

    /// Reads the packets already waiting on the socket, after the one `mosquitto_loop` read
    /// (16 more at most: the broker holds back QoS 1 messages past about 20 unacknowledged,
    /// and the PUBACKs go out with the next loop). `mosquitto_loop` reads one packet per call,
    /// and waking the reader for each message cost the controller a tenth of its CPU under a
    /// flood of beats. Never while the reader is behind: a read would wait in `didReceive`
    /// with nothing written meanwhile (PUBACKs, pings), which the loop does every pass.
    func readWaiting() -> Int32 {
        let fd = mosquitto_socket(handle)
        guard fd >= 0 else { return MOSQ_ERR_SUCCESS.rawValue }
        var poll = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        for _ in 0..<16 {
            // (libmosquitto may have closed the socket, on a DISCONNECT from the broker.)
            guard mosquitto_socket(handle) == fd, messages.queue.unread.load(ordering: .relaxed) < configuration.maxBufferedMessages else { break }
            guard Glibc.poll(&poll, 1, 0) == 1, poll.revents & Int16(POLLIN) != 0 else { break }
            let rc = mosquitto_loop_read(handle, 1)
            guard rc == MOSQ_ERR_SUCCESS.rawValue else { return rc }
        }
        return MOSQ_ERR_SUCCESS.rawValue
    }

    /// libmosquitto says only that TLS failed; a handshake of our own says why (the broker's
    /// certificate from another CA, or not naming the host), once per new reason.
    func diagnoseTLS() {
        var error = [CChar](repeating: 0, count: 512)
        let ca = configuration.caFile.flatMap(Self.readText)
        let rc = drover_tls_probe(configuration.broker.host, Int32(configuration.broker.port), ca, 5, &error, error.count)
        let detail = String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        switch rc {
        case 1: refused("\(detail) (broker \(configuration.broker), CA \(configuration.caFile ?? "the system's")); not connecting")
        case 0: refused("TLS with the broker \(configuration.broker) failed, though its certificate is trusted")
        default: refused("TLS with the broker \(configuration.broker) failed: \(detail)")
        }
    }

    static func readText(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 1 << 20 {
            let n = fread(&buffer, 1, buffer.count, file)
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    func refused(_ reason: String) {
        let isNew = shared.withLock { s in
            defer { s.lastRefusal = reason }
            return s.lastRefusal != reason
        }
        if isNew { emit(.refused(reason: reason)) }
    }

    /// A connection that has not been accepted (CONNACK) in this time is given up and tried again.
    static let connectTimeout: Duration = .seconds(10)

    private func connectOnce() -> Int32 {
        var props: OpaquePointer?
        if configuration.sessionExpirySeconds > 0 {
            _ = mosquitto_property_add_int32(&props, Int32(MQTT_PROP_SESSION_EXPIRY_INTERVAL.rawValue), configuration.sessionExpirySeconds)
        }
        defer { mosquitto_property_free_all(&props) }
        return mosquitto_connect_bind_v5(
            handle, configuration.broker.host, Int32(configuration.broker.port), configuration.keepAliveSeconds, nil, props)
    }

    private func sleepUnlessStopping(_ delay: Duration) {
        var remaining = Int64(delay.seconds * 1000)
        while remaining > 0, !stopping.load(ordering: .sequentiallyConsistent) {
            let step = min(remaining, 50)
            usleep(UInt32(step * 1000))
            remaining -= step
        }
    }

    private func connectionDropped() {
        let (wasConnected, pending) = shared.withLock { s in
            defer {
                s.connected = false
                s.pendingAcks = [:]
                s.earlyAcks = [:]
                s.unacknowledged = [:]
            }
            return (s.connected, s.pendingAcks)
        }
        for (_, c) in pending { c.resume(throwing: MQTTError.connectionLost) }
        if wasConnected { emit(.disconnected) }
    }

    func markThreadDone() {
        let waiters = shared.withLock { s in
            s.threadDone = true
            defer { s.finished = [] }
            return s.finished
        }
        for w in waiters { w.resume() }
    }

    // MARK: callbacks, on the network thread

    func didConnect(rc: Int32, sessionPresent: Bool) {
        // A refused CONNACK: the broker closes the socket and the loop backs off.
        guard rc == 0 else {
            let reason = String(cString: mosquitto_reason_string(rc))
            refused("the broker refused the connection: \(reason) (reason code \(rc))")
            return
        }
        shared.withLock { $0.lastRefusal = nil }
        let now = ContinuousClock.now
        let filters = shared.withLock { s in
            s.connected = true
            // A new session holds nothing; ids asked on the old connection are void.
            if let trusted = configuration.keepsSubscriptionsOnResume, sessionPresent {
                s.held = s.held.filter { now - $0.value.at < trusted }
            } else {
                s.held = [:]
            }
            s.asked = [:]
            s.earlySubacks = [:]
            return s.subscriptions.filter { s.held[$0.key]?.qos != $0.value }
        }
        for (filter, qos) in filters.sorted(by: { $0.key < $1.key }) { send(subscribe: filter, qos: qos) }
        emit(.connected(sessionPresent: sessionPresent))
    }

    func didSubscribe(mid: Int32, granted: Bool) {
        shared.withLock { s in
            if let asked = s.asked.removeValue(forKey: mid) {
                if granted { s.held[asked.filter] = (asked.qos, .now) }
            } else {
                s.earlySubacks[mid] = granted
            }
        }
    }

    func didAcknowledge(mid: Int32, reason: Int32) {
        let waiter = shared.withLock { s -> CheckedContinuation<PublishAck, any Error>? in
            if let c = s.pendingAcks.removeValue(forKey: mid) { return c }
            let now = ContinuousClock.now
            if let sent = s.unacknowledged.removeValue(forKey: mid), now - sent < Shared.parkedLifetime { return nil }
            s.earlyAcks[mid] = (reason, now)
            s.pruneParked(now: now)
            return nil
        }
        if let waiter { Self.resume(waiter, reason: reason) }
    }

    func didReceive(_ message: mosquitto_message, properties: OpaquePointer?) {
        let topic = message.topic.map { String(cString: $0) } ?? ""
        let payload: [UInt8] = message.payloadlen > 0 && message.payload != nil
            ? Array(UnsafeRawBufferPointer(start: message.payload, count: Int(message.payloadlen)))
            : []
        let qos: QoS = message.qos >= 1 ? .atLeastOnce : .atMostOnce
        var received = MQTTMessage(topic: topic, payload: payload, qos: qos, retain: message.retain)
        (received.responseTopic, received.correlationData) = Self.requestProperties(properties)
        // Backpressure (see `MQTTMessages`): wait while the reader is this far behind, but
        // never so long that keepalive, PUBACKs and disconnects go unnoticed: a reader that
        // waits on this thread for an acknowledgement must not deadlock it.
        var waited = 0
        if messages.queue.unread.load(ordering: .relaxed) >= configuration.maxBufferedMessages { messages.queue.wake() }
        while messages.queue.unread.load(ordering: .relaxed) >= configuration.maxBufferedMessages, !stopping.load(ordering: .relaxed), waited < 1000 {
            usleep(1000)
            waited += 1
        }
        messages.queue.push(received)
    }

    /// The MQTT 5 request/response properties of a received message: its response topic and
    /// correlation data.
    public static func requestProperties(_ properties: OpaquePointer?) -> (responseTopic: String?, correlation: [UInt8]?) {
        guard let properties else { return (nil, nil) }
        var responseTopic: String?
        var correlation: [UInt8]?
        var text: UnsafeMutablePointer<CChar>?
        if mosquitto_property_read_string(properties, Int32(MQTT_PROP_RESPONSE_TOPIC.rawValue), &text, false) != nil, let text {
            responseTopic = String(cString: text)
            free(text)
        }
        var data: UnsafeMutableRawPointer?
        var length: UInt16 = 0
        if mosquitto_property_read_binary(properties, Int32(MQTT_PROP_CORRELATION_DATA.rawValue), &data, &length, false) != nil, let data {
            correlation = Array(UnsafeRawBufferPointer(start: data, count: Int(length)))
            free(data)
        }
        return (responseTopic, correlation)
    }

    func emit(_ event: MQTTConnectionEvent) {
        eventContinuation.yield(event)
    }
}
