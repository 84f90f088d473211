import DroverMQTT
import Testing

@Suite("MQTT connection state machine")
struct ConnectionStateMachineTests {
    let policy = BackoffPolicy(initial: .milliseconds(100), maximum: .seconds(2), multiplier: 2, jitter: 0.5)

    @Test("a first connect subscribes once the broker accepts")
    func happyPath() {
        var m = ConnectionStateMachine(policy: policy)
        #expect(m.start() == .connect)
        #expect(m.start() == .none)
        #expect(m.connected() == .subscribe)
        #expect(m.state == .connected)
    }

    @Test("failed attempts back off exponentially up to the maximum")
    func exponential() {
        var m = ConnectionStateMachine(policy: policy)
        _ = m.start()
        var delays: [Duration] = []
        for _ in 0..<8 {
            guard case .backoff(let d) = m.connectionLost(random: 0) else { Issue.record("no backoff"); return }
            delays.append(d)
            #expect(m.backoffElapsed() == .connect)
        }
        #expect(delays == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .milliseconds(1600), .seconds(2), .seconds(2), .seconds(2)])
    }

    @Test("the first steady attempts keep the initial delay, then it grows to the maximum")
    func steadyThenGrowing() {
        let policy = BackoffPolicy(initial: .milliseconds(500), maximum: .seconds(5), jitter: 0, steadyAttempts: 10)
        #expect((1...10).map { policy.delay(attempt: $0, random: 0) }.allSatisfy { $0 == .milliseconds(500) })
        #expect(policy.delay(attempt: 11, random: 0) == .seconds(1))
        #expect(policy.delay(attempt: 12, random: 0) == .seconds(2))
        #expect(policy.delay(attempt: 14, random: 0) == .seconds(5))
        #expect(policy.delay(attempt: Int.max, random: 0) == .seconds(5))
    }

    @Test("jitter shortens a delay by at most its fraction")
    func jitter() {
        #expect(policy.delay(attempt: 3, random: 0.999) >= .milliseconds(200))
        #expect(policy.delay(attempt: 3, random: 0.5) == .milliseconds(300))
        #expect(policy.delay(attempt: 3, random: 0) == .milliseconds(400))
    }

    @Test("a dropped connection that was up starts the backoff afresh")
    func resetAfterConnected() {
        var m = ConnectionStateMachine(policy: policy)
        _ = m.start()
        _ = m.connectionLost(random: 0)
        _ = m.backoffElapsed()
        _ = m.connectionLost(random: 0)
        _ = m.backoffElapsed()
        #expect(m.connected() == .subscribe)
        #expect(m.connectionLost(random: 0) == .backoff(.milliseconds(100)))
    }

    @Test("shutdown wins over everything")
    func shutdown() {
        var m = ConnectionStateMachine(policy: policy)
        _ = m.start()
        #expect(m.shutdown() == .stop)
        #expect(m.connectionLost(random: 0) == .stop)
        #expect(m.backoffElapsed() == .stop)
        #expect(m.connected() == .none)
    }

    @Test("broker URLs are parsed or refused with a reason")
    func urls() throws {
        #expect(try BrokerAddress(url: "mqtt://127.0.0.1:1884") == BrokerAddress(host: "127.0.0.1", port: 1884))
        #expect(try BrokerAddress(url: "mqtt://broker") == BrokerAddress(host: "broker", port: 1883))
        for bad in ["tcp://x:1", "mqtt://:1883", "mqtt://x:0", "mqtt://x:99999", "mqtt://x:y"] {
            #expect(throws: MQTTError.self) { try BrokerAddress(url: bad) }
        }
    }
}
