import DroverMQTT
import Foundation
import Testing

/// The MQTT client against a real mosquitto on a random loopback port.
@Suite("MQTT client with a real broker", .serialized)
struct MQTTClientTests {
    static func client(_ broker: TestBroker, id: String, cleanStart: Bool = true, expiry: UInt32 = 0, will: LastWill? = nil) throws -> MQTTClient {
        try MQTTClient(MQTTConfiguration(
            broker: try BrokerAddress(url: broker.url), clientID: id, username: id, sessionExpirySeconds: expiry,
            cleanStart: cleanStart, will: will, backoff: BackoffPolicy(initial: .milliseconds(100), maximum: .seconds(1))))
    }

    static func waitConnected(_ client: MQTTClient) async -> Bool {
        await Harness.eventually(.seconds(10)) { client.isConnected }
    }

    /// The next message within `timeout`, or nil.
    static func next(_ client: MQTTClient, within timeout: Duration = .seconds(10)) async -> MQTTMessage? {
        await withTaskGroup(of: MQTTMessage?.self) { group in
            group.addTask {
                var iterator = client.messages.makeAsyncIterator()
                return await iterator.next()
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    @Test("QoS 1 publish is acknowledged and delivered; retained messages reach late subscribers")
    func publishSubscribeRetain() async throws {
        let broker = try TestBroker(dir: try Harness.temporaryDirectory("mqtt"))
        let sub = try Self.client(broker, id: "sub")
        let pub = try Self.client(broker, id: "pub")
        defer { Task { await broker.stop() } }
        sub.subscribe("t/#", qos: .atLeastOnce)
        sub.start()
        pub.start()
        #expect(await Self.waitConnected(sub))
        #expect(await Self.waitConnected(pub))
        try await Task.sleep(for: .milliseconds(200))  // SUBACK
        try await pub.publish("t/a", Array("hello".utf8), qos: .atLeastOnce)
        let got = await Self.next(sub)
        #expect(got?.topic == "t/a")
        #expect(got?.payload == Array("hello".utf8))

        try await pub.publish("r/x", Array("kept".utf8), qos: .atLeastOnce, retain: true)
        let late = try Self.client(broker, id: "late")
        late.subscribe("r/x")
        late.start()
        let retained = await Self.next(late)
        #expect(retained?.retain == true)
        #expect(retained?.payload == Array("kept".utf8))
        for c in [sub, pub, late] { await c.shutdown() }
        await broker.stop()
    }

    @Test("the last will is published when a client leaves without a clean disconnect")
    func lastWill() async throws {
        let broker = try TestBroker(dir: try Harness.temporaryDirectory("will"))
        let watcher = try Self.client(broker, id: "watcher")
        watcher.subscribe("dev/state")
        watcher.start()
        let device = try Self.client(broker, id: "device", will: LastWill(topic: "dev/state", payload: Array("offline".utf8), qos: .atLeastOnce, retain: true))
        device.start()
        #expect(await Self.waitConnected(device))
        #expect(await Self.waitConnected(watcher))
        try await Task.sleep(for: .milliseconds(200))
        await device.shutdown(sendWill: true)
        let will = await Self.next(watcher)
        #expect(will?.payload == Array("offline".utf8))
        await watcher.shutdown()
        await broker.stop()
    }

    @Test("a persistent session keeps QoS 1 messages sent while the client was away")
    func persistentSession() async throws {
        let broker = try TestBroker(dir: try Harness.temporaryDirectory("session"))
        let first = try Self.client(broker, id: "keeper", cleanStart: false, expiry: 300)
        first.subscribe("q/1", qos: .atLeastOnce)
        first.start()
        #expect(await Self.waitConnected(first))
        try await Task.sleep(for: .milliseconds(200))
        await first.shutdown()

        let pub = try Self.client(broker, id: "pub2")
        pub.start()
        #expect(await Self.waitConnected(pub))
        try await pub.publish("q/1", Array("while away".utf8), qos: .atLeastOnce)

        // No subscribe call this time: the session remembers the subscription.
        let again = try Self.client(broker, id: "keeper", cleanStart: false, expiry: 300)
        again.start()
        let queued = await Self.next(again)
        #expect(queued?.payload == Array("while away".utf8))
        await again.shutdown()
        await pub.shutdown()
        await broker.stop()
    }

    @Test("the client reconnects by itself after the broker restarts, and resubscribes")
    func reconnect() async throws {
        let broker = try TestBroker(dir: try Harness.temporaryDirectory("reconnect"))
        let client = try Self.client(broker, id: "survivor")
        client.subscribe("back/#")
        client.start()
        #expect(await Self.waitConnected(client))
        try await broker.restart()
        #expect(await Harness.eventually(.seconds(15)) { client.isConnected })
        try await Task.sleep(for: .milliseconds(300))
        let pub = try Self.client(broker, id: "pub3")
        pub.start()
        #expect(await Self.waitConnected(pub))
        try await pub.publish("back/1", Array("after restart".utf8), qos: .atLeastOnce)
        #expect(await Self.next(client)?.payload == Array("after restart".utf8))
        await client.shutdown()
        await pub.shutdown()
        await broker.stop()
    }

    @Test("a QoS 1 publish that reached no subscriber says so (MQTT 5 reason 0x10)")
    func noSubscribers() async throws {
        let broker = try TestBroker(dir: try Harness.temporaryDirectory("nosub"))
        let pub = try Self.client(broker, id: "lonely-pub")
        pub.start()
        #expect(await Self.waitConnected(pub))
        #expect(try await pub.publish("nobody/listens", [1], qos: .atLeastOnce) == .noMatchingSubscribers)
        let sub = try Self.client(broker, id: "listener")
        sub.subscribe("nobody/listens")
        sub.start()
        #expect(await Self.waitConnected(sub))
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await pub.publish("nobody/listens", [2], qos: .atLeastOnce) == .delivered)
        await pub.shutdown()
        await sub.shutdown()
        await broker.stop()
    }

    @Test("QoS 0 completions are never taken for a PUBACK, even after the 16-bit message id wraps")
    func qos0NeverAcknowledgesQos1() async throws {
        let broker = try TestBroker(dir: try Harness.temporaryDirectory("mid-wrap"))
        let pub = try Self.client(broker, id: "beats")
        pub.start()
        #expect(await Self.waitConnected(pub))
        // More QoS 0 messages than there are message ids.
        for i in 0..<70_000 {
            _ = try await pub.publish("beats/x", [UInt8(i & 0xff)], qos: .atMostOnce)
            if i % 5000 == 0 { try await Task.sleep(for: .milliseconds(20)) }
        }
        try await Task.sleep(for: .milliseconds(500))
        for _ in 0..<20 {
            // Nobody subscribes: a real PUBACK says so; a stale QoS 0 completion would say "delivered".
            #expect(try await pub.publish("nobody/listens", [1], qos: .atLeastOnce) == .noMatchingSubscribers)
        }
        await pub.shutdown()
        await broker.stop()
    }

    @Test("a reader that falls behind holds about maxBufferedMessages; the rest waits at the broker and nothing is lost")
    func boundedBuffer() async throws {
        let broker = try TestBroker(dir: try Harness.temporaryDirectory("bounded"))
        var config = MQTTConfiguration(broker: try BrokerAddress(url: broker.url), clientID: "slow-reader", backoff: BackoffPolicy(initial: .milliseconds(100), maximum: .seconds(1)))
        config.maxBufferedMessages = 500
        let reader = try MQTTClient(config)
        reader.subscribe("flood", qos: .atLeastOnce)
        reader.start()
        #expect(await Self.waitConnected(reader))
        let pub = try Self.client(broker, id: "flooder")
        pub.start()
        #expect(await Self.waitConnected(pub))
        let total = 5000
        let sender = Task {
            for i in 0..<total { _ = try? await pub.publish("flood", Array("\(i)".utf8), qos: .atLeastOnce) }
        }
        try await Task.sleep(for: .seconds(1.5))
        // The bound is soft: past a second of waiting, one message goes through, so that a
        // reader blocked on this thread can never deadlock it.
        #expect(reader.unreadMessages <= 505, "\(reader.unreadMessages) unread")
        let received = await withTaskGroup(of: [Int]?.self) { group in
            group.addTask {
                var iterator = reader.messages.makeAsyncIterator()
                var numbers: [Int] = []
                while numbers.count < total, let m = await iterator.next() { numbers.append(Int(String(decoding: m.payload, as: UTF8.self)) ?? -1) }
                return numbers
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(30))
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first ?? []
        }
        await sender.value
        #expect(received == Array(0..<total))
        await pub.shutdown()
        await reader.shutdown()
        await broker.stop()
    }

    @Test("publishing while disconnected fails at once instead of hanging")
    func notConnected() async throws {
        let port = try Harness.freePort()
        let client = try MQTTClient(MQTTConfiguration(broker: BrokerAddress(host: "127.0.0.1", port: port), clientID: "lonely"))
        client.start()
        await #expect(throws: MQTTError.self) { try await client.publish("x", [1], qos: .atLeastOnce) }
        await client.shutdown()
    }
}
