import DroverCore
import DroverMQTT
import DroverProtocol
import Logging
import Synchronization

/// The controller's MQTT side: decodes what devices send and hands it to the fleet,
/// publishes desired state retained through the `DesiredOutbox`, and after every (re)connect
/// queues every device's newest desired state again.
public final class Ingest: Sendable {
    let client: MQTTClient
    let fleet: Fleet
    /// Enrolled labels and revocations; nil in tests of the ingest alone.
    let access: AccessControl?
    let outbox: DesiredOutbox
    let logger: Logger
    /// Requests waiting for a device's reply, by correlation data.
    private let waiting = Mutex<[[UInt8]: (device: String, continuation: CheckedContinuation<CommandReply?, Never>)]>([:])

    public init(client: MQTTClient, fleet: Fleet, access: AccessControl? = nil, outbox: DesiredOutbox = DesiredOutbox(), logger: Logger) {
        self.client = client
        self.fleet = fleet
        self.access = access
        self.outbox = outbox
        self.logger = logger
        for filter in Topic.controllerSubscriptions { client.subscribe(filter, qos: .atLeastOnce) }
    }

    /// One desired state, retained.
    func publish(_ desired: Desired) async -> DesiredOutbox.Outcome {
        let start = ContinuousClock.now
        do {
            try await client.publish(Topic.device(desired.device, .desired), WireCodec.encode(desired), qos: .atLeastOnce, retain: true)
            fleet.metrics.published(ContinuousClock.now - start, .acknowledged)
            return .acknowledged
        } catch MQTTError.connectionLost, MQTTError.notConnected {
            // Published again once the connection is back; a device that missed it reads the retained one.
            fleet.metrics.published(ContinuousClock.now - start, .notConnected)
            return .notConnected
        } catch {
            fleet.metrics.published(ContinuousClock.now - start, .refused)
            logger.error("the broker refused desired state", metadata: ["device": "\(desired.device)", "generation": "\(desired.generation)", "error": "\(error)"])
            return client.isConnected ? .refused : .notConnected
        }
    }

    func publishDesired() async {
        await outbox.run { [self] desired in await self.publish(desired) }
    }

    func handleEvents() async {
        for await event in client.events {
            if case .refused(let reason) = event {
                logger.error("cannot join the broker: \(reason)")
                continue
            }
            guard case .connected = event else {
                logger.warning("broker connection lost; no device is judged until it is back")
                await fleet.sightLost(now: Fleet.nowMillis())
                continue
            }
            logger.info("connected to broker")
            await fleet.sightRestored(now: Fleet.nowMillis())
            _ = try? await client.publish(Topic.controllerState, Array("online".utf8), qos: .atLeastOnce, retain: true)
            // The broker may have lost retained messages (a crash before its autosave).
            outbox.enqueue(await fleet.allDesired())
            outbox.resume()
        }
    }

    /// Asks a device for a full report of its replicas (it queues one in its outbox).
    func askSnapshot(_ device: String) async {
        let request = WireCodec.encode(Command(device: device, command: .snapshot, correlation: Correlation.text([0])))
        _ = try? await client.publish(
            Topic.device(device, .cmd), request, qos: .atLeastOnce, responseTopic: Topic.device(device, .cmdReply), correlationData: [0])
    }

    /// Sends a request to a device and waits for its reply (MQTT 5 request/response), or nil
    /// when none comes within `timeout` or the request cannot be sent.
    public func request(_ command: Command, timeout: Duration = .seconds(5)) async -> CommandReply? {
        var generator = SystemRandomNumberGenerator()
        // Pings carry 8 bytes; requests 16, so the two never meet.
        let correlation = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        var correlated = command
        correlated.correlation = Correlation.text(correlation)
        let payload = WireCodec.encode(correlated)
        return await withCheckedContinuation { continuation in
            waiting.withLock { $0[correlation] = (command.device, continuation) }
            Task {
                do {
                    try await client.publish(
                        Topic.device(command.device, .cmd), payload, qos: .atLeastOnce,
                        responseTopic: Topic.device(command.device, .cmdReply), correlationData: correlation)
                } catch {
                    self.answer(correlation, with: nil)
                }
            }
            Task {
                try? await Task.sleep(for: timeout)
                self.answer(correlation, with: nil)
            }
        }
    }

    /// Resumes the request waiting on `correlation`, once; false when none waits.
    /// A reply counts only from the device that was asked.
    @discardableResult
    func answer(_ correlation: [UInt8], with reply: CommandReply?) -> Bool {
        let entry = waiting.withLock { w -> (device: String, continuation: CheckedContinuation<CommandReply?, Never>)? in
            guard let entry = w[correlation], reply == nil || reply?.device == entry.device else { return nil }
            return w.removeValue(forKey: correlation)
        }
        guard let entry else { return false }
        entry.continuation.resume(returning: reply)
        return true
    }

    /// Measures every online device's round trip with an MQTT 5 request/response ping.
    func pingAll() async {
        for (device, correlation) in await fleet.startPings() {
            let ping = WireCodec.encode(Command(device: device, command: .ping, correlation: Correlation.text(correlation)))
            _ = try? await client.publish(
                Topic.device(device, .cmd), ping, qos: .atLeastOnce, responseTopic: Topic.device(device, .cmdReply), correlationData: correlation)
        }
    }

    func drop(_ reason: DropReason, device: String, detail: String) async {
        if await fleet.recordDrop(reason, device: device) {
            logger.warning("dropped message", metadata: ["reason": "\(reason.rawValue)", "detail": "\(detail)"])
        }
    }
}
