import DroverCore
import DroverMQTT
import DroverProtocol

/// What one message from a device says, once decoded.
enum Incoming: Sendable {
    case hello(Hello)
    case state(DeviceState)
    case beat(Beat)
    case report(Report)
    case reply(CommandReply, device: String, correlation: [UInt8]?)
    case dropped(DropReason, device: String, detail: String)

    /// The device it is from.
    var device: String {
        switch self {
        case .hello(let m): m.device
        case .state(let m): m.device
        case .beat(let m): m.device
        case .report(let m): m.device
        case .reply(_, let device, _), .dropped(_, let device, _): device
        }
    }

    /// Beats and reports are applied in batches (see `Fleet.take`).
    var batches: Bool {
        switch self {
        case .beat, .report: true
        default: false
        }
    }
}

extension Ingest {
    /// Everything received and not yet read is taken at once, decoded (strictly: anything
    /// malformed is counted and dropped) and applied in arrival order. Beats and reports that
    /// arrive back to back (up to 500) go to the fleet together, in one store transaction;
    /// while it runs, the next messages gather in the client, which reads no further once
    /// `maxBufferedMessages` wait, so the broker holds the rest. (Decoding beside applying,
    /// in a second task, cost a wake-up per message and was no faster: `ingest` bench.)
    func handleMessages() async {
        var batch: [Incoming] = []
        var messages = client.messages.makeAsyncIterator()
        while let received = await messages.nextBatch() {
            for message in received {
                guard let item = decode(message) else { continue }
                if item.batches {
                    batch.append(item)
                    if batch.count >= 500 { await flush(&batch) }
                } else {
                    await flush(&batch)
                    await apply(item)
                }
            }
            await flush(&batch)
        }
    }

    /// One incoming message, decoded and applied.
    public func handle(_ message: MQTTMessage) async {
        guard let item = decode(message) else { return }
        var batch = [item]
        if item.batches { await flush(&batch) } else { await apply(item) }
    }

    /// Strict decoding, and nothing else: no fleet state is read or changed here.
    func decode(_ message: MQTTMessage) -> Incoming? {
        // A retained message replayed on subscribe is history: a `state` may be a will the
        // broker fired while it went down with the controller, and anything else was judged
        // (and counted, if dropped) when it arrived live. Presence is judged from what
        // arrives live once the controller can hear the fleet again.
        if message.retain { return nil }
        guard let (device, channel) = Topic.parse(message.topic) else { return .dropped(.unknownTopic, device: "?", detail: message.topic) }
        // Revoked: whatever it says is not heard, even through a broker that still lets it in.
        if access?.revoked.contains(device) == true { return .dropped(.revoked, device: device, detail: message.topic) }
        // A retained `offline` that was cleared arrives as an empty payload: nothing to do.
        if channel == .state, message.payload.isEmpty { return nil }
        fleet.metrics.received(channel)
        do throws(WireError) {
            switch channel {
            case .hello: return .hello(try WireCodec.decode(Hello.self, from: message.payload, topicDevice: device))
            case .state: return .state(try WireCodec.decode(DeviceState.self, from: message.payload, topicDevice: device))
            case .beat: return .beat(try WireCodec.decodeBeat(from: message.payload, topicDevice: device))
            case .report: return .report(try WireCodec.decode(Report.self, from: message.payload, topicDevice: device))
            case .cmdReply:
                // The correlation from the MQTT 5 property, else from the payload (the reply
                // crossed an MQTT 3.1.1 bridge, which drops properties).
                let reply = try WireCodec.decode(CommandReply.self, from: message.payload, topicDevice: device)
                return .reply(reply, device: device, correlation: message.correlationData ?? reply.correlation.flatMap(Correlation.bytes))
            case .desired, .cmd: return nil
            }
        } catch {
            return .dropped(error.reason, device: device, detail: "\(message.topic): \(error.detail)")
        }
    }

    /// Beats and reports, in order, in one transition of the fleet.
    private func flush(_ batch: inout [Incoming]) async {
        guard !batch.isEmpty else { return }
        // Revoked between decoding and now: still not heard.
        if let revoked = access?.revoked, batch.contains(where: { revoked.contains($0.device) }) {
            for item in batch where revoked.contains(item.device) { await drop(.revoked, device: item.device, detail: "revoked while queued") }
            batch.removeAll { revoked.contains($0.device) }
        }
        for device in await fleet.take(batch) {
            // Not awaited here: the reader of messages never waits for a PUBACK, which the
            // network thread may be unable to read while messages queue.
            Task { await self.askSnapshot(device) }
        }
        batch.removeAll(keepingCapacity: true)
    }

    private func apply(_ item: Incoming) async {
        if case .dropped = item {} else if access?.revoked.contains(item.device) == true {
            await drop(.revoked, device: item.device, detail: "revoked while queued")
            return
        }
        switch item {
        case .hello(var hello):
            // What the admin gave at enrollment wins over what the device says of itself.
            if let enrolled = await access?.enrolledLabels(hello.device) { hello.facts.labels.merge(enrolled) { _, given in given } }
            await fleet.hello(hello)
        case .state(let state): await fleet.state(state)
        case .reply(let reply, let device, let correlation):
            if let correlation, answer(correlation, with: reply) { return }
            await fleet.pingAnswered(device: device, correlation: correlation)
        case .dropped(let reason, let device, let detail): await drop(reason, device: device, detail: detail)
        case .beat, .report: return
        }
    }
}
