@testable import DroverMQTT
import Testing

/// The hand-off from the MQTT network thread to the one reader (`MessageQueue`).
@Suite("MQTT message queue")
struct MessageQueueTests {
    static func message(_ n: Int) -> MQTTMessage {
        MQTTMessage(topic: "t/\(n)", payload: [UInt8(n & 0xFF)], qos: .atLeastOnce, retain: false)
    }

    @Test("messages come out in order, one by one or in batches, and the unread count follows")
    func orderAndCount() async {
        let messages = MQTTMessages(queue: MessageQueue())
        for n in 0..<5 { messages.queue.push(Self.message(n)) }
        #expect(messages.queue.unread.load(ordering: .relaxed) == 5)
        var iterator = messages.makeAsyncIterator()
        let first = await iterator.next()
        #expect(first?.topic == "t/0")
        #expect(messages.queue.unread.load(ordering: .relaxed) == 4)
        for n in 5..<8 { messages.queue.push(Self.message(n)) }
        // The rest of the batch already taken, then what came since.
        let rest = await iterator.nextBatch()
        #expect(rest?.map(\.topic) == ["t/1", "t/2", "t/3", "t/4"])
        let next = await iterator.nextBatch()
        #expect(next?.map(\.topic) == ["t/5", "t/6", "t/7"])
        #expect(messages.queue.unread.load(ordering: .relaxed) == 0)
    }

    @Test("a waiting reader is woken by what the network loop read; after finish it gets what is left, then nil")
    func waitAndFinish() async {
        let messages = MQTTMessages(queue: MessageQueue())
        let reader = Task {
            var iterator = messages.makeAsyncIterator()
            var seen: [String] = []
            while let m = await iterator.next() { seen.append(m.topic) }
            return seen
        }
        try? await Task.sleep(for: .milliseconds(20))
        messages.queue.push(Self.message(0))
        messages.queue.wake()
        try? await Task.sleep(for: .milliseconds(20))
        // Pushed and not yet handed over when the client finishes: still read.
        for n in 1..<3 { messages.queue.push(Self.message(n)) }
        messages.queue.finish()
        messages.queue.push(Self.message(9))
        #expect(await reader.value == ["t/0", "t/1", "t/2"])
    }

    @Test("a cancelled reader stops waiting")
    func cancelled() async {
        let messages = MQTTMessages(queue: MessageQueue())
        let reader = Task {
            var iterator = messages.makeAsyncIterator()
            return await iterator.nextBatch()
        }
        try? await Task.sleep(for: .milliseconds(20))
        reader.cancel()
        let got = await reader.value
        #expect(got == nil)
    }
}
