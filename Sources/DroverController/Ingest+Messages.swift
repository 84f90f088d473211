import DroverCore
import DroverMQTT
import DroverProtocol
import Synchronization

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

/// Decoded items handed from the decoding stage to the applying one, and not yet applied.
final class Backlog: Sendable {
    let count = Atomic<Int>(0)
}

extension Ingest {
    /// Two stages side by side, in arrival order: this task decodes (strictly: anything
    /// malformed is counted and dropped) while a second applies what was decoded to the fleet.
    /// Beats and reports that arrive back to back (all those already decoded, up to 500) go to
    /// the fleet together, in one store transaction. At most 10,000 decoded items wait; then
    /// decoding waits, the client stops reading, and the broker holds the rest.
    func handleMessages() async {
        let (items, sink) = AsyncStream.makeStream(of: Incoming.self)
        let backlog = Backlog()
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                var batch: [Incoming] = []
                for await item in items {
                    backlog.count.subtract(1, ordering: .relaxed)
                    if item.batches {
                        batch.append(item)
                    } else {
                        await self.flush(&batch)
                        await self.apply(item)
                    }
                    if backlog.count.load(ordering: .relaxed) == 0 || batch.count >= 500 { await self.flush(&batch) }
                }
                await self.flush(&batch)
            }
            for await message in client.messages {
                guard let item = decode(message) else { continue }
                while backlog.count.load(ordering: .relaxed) >= 10_000, !Task.isCancelled { try? await Task.sleep(for: .milliseconds(1)) }
                backlog.count.add(1, ordering: .relaxed)
                sink.yield(item)
            }
            sink.finish()
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
            case .beat: return .beat(try WireCodec.decode(Beat.self, from: message.payload, topicDevice: device))
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
