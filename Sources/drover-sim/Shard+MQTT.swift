import CDroverEpoll
import CMosquitto
import DroverMQTT
import DroverProtocol
import DroverSim
import Glibc

/// The MQTT side of a shard: libmosquitto's callbacks, run on the shard's thread from inside
/// `mosquitto_loop_read`/`_write`/`_misc`, and the epoll interest of each socket.
extension Shard {
    static func setCallbacks(_ mosq: OpaquePointer) {
        mosquitto_connect_v5_callback_set(mosq) { _, obj, rc, flags, _ in
            guard let obj else { return }
            let conn = Unmanaged<Conn>.fromOpaque(obj).takeUnretainedValue()
            conn.shard.didConnect(conn.index, rc: rc, sessionPresent: flags & 1 == 1)
        }
        mosquitto_subscribe_v5_callback_set(mosq) { _, obj, _, count, granted, _ in
            guard let obj else { return }
            let conn = Unmanaged<Conn>.fromOpaque(obj).takeUnretainedValue()
            // Granted QoS 0–2; 0x80 and above is a refusal.
            let ok = count > 0 && granted.map { g in (0..<Int(count)).allSatisfy { g[$0] < 0x80 } } ?? false
            conn.shard.didSubscribe(conn.index, granted: ok)
        }
        mosquitto_disconnect_v5_callback_set(mosq) { _, obj, _, _ in
            guard let obj else { return }
            let conn = Unmanaged<Conn>.fromOpaque(obj).takeUnretainedValue()
            conn.shard.didDisconnect(conn.index)
        }
        mosquitto_message_v5_callback_set(mosq) { _, obj, message, props in
            guard let obj, let message else { return }
            let conn = Unmanaged<Conn>.fromOpaque(obj).takeUnretainedValue()
            conn.shard.didReceive(conn.index, message.pointee, props)
        }
    }

    /// Opens the TCP connection and sends CONNECT; the CONNACK arrives through epoll.
    func connect(_ index: Int) {
        guard !slots[index].connected, !stop.load(ordering: .relaxed) else { return }
        var props: OpaquePointer?
        _ = mosquitto_property_add_int32(&props, Int32(MQTT_PROP_SESSION_EXPIRY_INTERVAL.rawValue), 3600)
        defer { mosquitto_property_free_all(&props) }
        let broker = slots[index].broker
        let rc = mosquitto_connect_bind_v5(slots[index].mosq, broker.host, Int32(broker.port), options.keepalive, nil, props)
        guard rc == MOSQ_ERR_SUCCESS.rawValue else {
            retry(index)
            return
        }
        let fd = mosquitto_socket(slots[index].mosq)
        slots[index].fd = fd
        _ = drover_epoll_add(epfd, fd, 0, UInt64(index))
        slots[index].writing = false
        updateInterest(index)
    }

    /// Backoff as the agent's: 0.5 s doubling to 5 s, each drawn in [d/2, d]; after churn, the
    /// link's downtime first.
    func retry(_ index: Int) {
        let attempt = slots[index].attempts
        slots[index].attempts += 1
        let cap = min(5_000, 500 << min(attempt, 4))
        var delay = Int64(cap / 2 + Int(Int64(bitPattern: UInt64(index &* 2_654_435_761 &+ attempt)) & 0x7fff_ffff) % (cap / 2 + 1))
        if slots[index].churned {
            delay = options.churnDowntime
            slots[index].churned = false
        }
        timers.push(Self.now() + delay, Int32(index), Timer.reconnect.rawValue)
    }

    func didConnect(_ index: Int, rc: Int32, sessionPresent: Bool) {
        guard rc == 0 else {
            // Refused (a bad password, not authorised): libmosquitto closes the socket.
            stats.refused.add(1, ordering: .relaxed)
            return
        }
        slots[index].connected = true
        slots[index].attempts = 0
        stats.connected.add(1, ordering: .relaxed)
        stats.connects.add(1, ordering: .relaxed)
        // As the agent: a resumed session holds the subscriptions (subscribing again would
        // send the retained desired state again) and the controller has the hello.
        let subscriptions = slots[index].device.subscriptions
        if !sessionPresent || slots[index].subscribed < subscriptions.count {
            slots[index].subscribed = 0
            for topic in subscriptions { _ = mosquitto_subscribe_v5(slots[index].mosq, nil, topic, 1, 0, nil) }
        }
        let resumed = sessionPresent && slots[index].device.announced
        for p in resumed ? slots[index].device.resume() : slots[index].device.announce(now: Self.now()) { publish(index, p) }
        if !slots[index].beating {
            slots[index].beating = true
            timers.push(Self.now() + options.profile.beatInterval, Int32(index), Timer.beat.rawValue)
        }
        if let next = slots[index].device.nextStart { timers.push(next, Int32(index), Timer.start.rawValue) }
    }

    func didSubscribe(_ index: Int, granted: Bool) {
        if granted { slots[index].subscribed += 1 }
    }

    func didDisconnect(_ index: Int) {
        if slots[index].connected {
            stats.connected.subtract(1, ordering: .relaxed)
            stats.drops.add(1, ordering: .relaxed)
        }
        slots[index].connected = false
        if slots[index].fd >= 0 { _ = drover_epoll_remove(epfd, slots[index].fd) }
        slots[index].fd = -1
        // A beat timer left in the heap finds the device disconnected and lapses.
        if !stop.load(ordering: .relaxed) { retry(index) }
    }

    func didReceive(_ index: Int, _ message: mosquitto_message, _ props: OpaquePointer?) {
        let topic = message.topic.map { String(cString: $0) } ?? ""
        let payload: [UInt8] = message.payloadlen > 0 && message.payload != nil ? Array(UnsafeRawBufferPointer(start: message.payload, count: Int(message.payloadlen))) : []
        let (responseTopic, correlation) = MQTTClient.requestProperties(props)
        if topic.hasSuffix("/desired") { stats.desired.add(1, ordering: .relaxed) }
        // The controller's retained `online` replayed on subscribe is not news: the device
        // announced itself on connecting.
        if message.retain, topic == Topic.controllerState { return }
        let before = slots[index].device.running
        let out = slots[index].device.received(topic: topic, payload: payload, responseTopic: responseTopic, correlation: correlation, now: Self.now())
        stats.running.add(slots[index].device.running - before, ordering: .relaxed)
        for p in out { publish(index, p) }
        if let next = slots[index].device.nextStart { timers.push(next, Int32(index), Timer.start.rawValue) }
    }

    /// QoS 1, as the agent publishes everything but its goodbye.
    func publish(_ index: Int, _ p: SimPublish) {
        var props: OpaquePointer?
        defer { mosquitto_property_free_all(&props) }
        if let correlation = p.correlation, !correlation.isEmpty {
            _ = correlation.withUnsafeBytes {
                mosquitto_property_add_binary(&props, Int32(MQTT_PROP_CORRELATION_DATA.rawValue), $0.baseAddress, UInt16(min($0.count, 65535)))
            }
        }
        let rc = p.payload.withUnsafeBytes { mosquitto_publish_v5(slots[index].mosq, nil, p.topic, Int32($0.count), $0.baseAddress, 1, p.retain, props) }
        guard rc == MOSQ_ERR_SUCCESS.rawValue else { return }
        stats.published.add(1, ordering: .relaxed)
        if p.topic.hasSuffix("/report") { stats.reports.add(1, ordering: .relaxed) }
        if p.topic.hasSuffix("/beat") { stats.beats.add(1, ordering: .relaxed) }
    }

    /// A failed read, write or housekeeping call means the connection is gone.
    func handle(_ index: Int, _ rc: Int32) {
        guard rc != MOSQ_ERR_SUCCESS.rawValue, slots[index].fd >= 0 else { return }
        // libmosquitto has closed the socket (and called back) for a lost connection; for
        // anything else close it here.
        if slots[index].connected || mosquitto_socket(slots[index].mosq) >= 0 { _ = mosquitto_disconnect(slots[index].mosq) }
        if slots[index].fd >= 0 { didDisconnect(index) }
    }

    /// Watches for writability only while libmosquitto has bytes queued.
    func updateInterest(_ index: Int) {
        guard slots[index].fd >= 0 else { return }
        let want = mosquitto_want_write(slots[index].mosq)
        guard want != slots[index].writing else { return }
        slots[index].writing = want
        _ = drover_epoll_modify(epfd, slots[index].fd, want ? 1 : 0, UInt64(index))
    }
}
