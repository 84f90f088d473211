import DroverCore
import DroverController
import DroverProtocol
import DroverStore
import Synchronization
import Testing

/// A store that fails its writes on demand, around the real SQLite store.
final class FailingStore: FleetStore {
    let inner: SQLiteFleetStore
    let failing = Atomic<Bool>(false)
    let failingLoad = Atomic<Bool>(false)
    init(_ inner: SQLiteFleetStore) { self.inner = inner }
    var location: String { inner.location }
    func load() throws -> FleetSnapshot {
        if failingLoad.load(ordering: .relaxed) { throw InjectedFailure() }
        return try inner.load()
    }
    func events(limit: Int, subject: String?) throws -> [EventRecord] { try inner.events(limit: limit, subject: subject) }
    struct InjectedFailure: Error {}
    func write(_ batch: StoreBatch) throws {
        if failing.load(ordering: .relaxed) { throw InjectedFailure() }
        try inner.write(batch)
    }
}

@Suite("Publishing desired state")
struct DesiredPublishingTests {
    static func desired(_ device: String, _ generation: Int64) -> Desired { Desired(device: device, generation: generation, replicas: []) }

    @Test("one publish per device at a time, the newest generation last, many devices side by side")
    func serializedPerDevice() async throws {
        let outbox = DesiredOutbox(parallel: 8)
        let inFlight = Mutex<[String: Int]>([:])
        let sent = Mutex<[Desired]>([])
        let overlap = Atomic<Int>(0)
        let worker = Task {
            await outbox.run { d in
                let n = inFlight.withLock { $0[d.device, default: 0] += 1; return $0[d.device] ?? 0 }
                if n > 1 { overlap.add(1, ordering: .relaxed) }
                try? await Task.sleep(for: .milliseconds(Int.random(in: 1...5)))
                sent.withLock { $0.append(d) }
                inFlight.withLock { $0[d.device, default: 1] -= 1 }
                return .acknowledged
            }
        }
        for generation in Int64(1)...40 {
            outbox.enqueue((0..<5).map { Self.desired("d\($0)", generation) })
            if generation % 7 == 0 { try await Task.sleep(for: .milliseconds(3)) }
        }
        // Out of order: an older generation handed in late never replaces a newer one.
        outbox.enqueue([Self.desired("d0", 3)])
        #expect(await waitUntil { outbox.pendingCount == 0 })
        worker.cancel()
        await worker.value
        #expect(overlap.load(ordering: .relaxed) == 0)
        let all = sent.withLock { $0 }
        for device in (0..<5).map({ "d\($0)" }) {
            let generations = all.filter { $0.device == device }.map(\.generation)
            #expect(generations.last == 40, "\(device): \(generations)")
            #expect(generations == generations.sorted(), "\(device) went backwards: \(generations)")
        }
    }

    @Test("a failed publish waits for the connection and is sent again, newest first")
    func failedPublishResumes() async throws {
        let outbox = DesiredOutbox()
        let connected = Atomic<Bool>(false)
        let sent = Mutex<[Desired]>([])
        let worker = Task {
            await outbox.run { d in
                guard connected.load(ordering: .relaxed) else { return .notConnected }
                sent.withLock { $0.append(d) }
                return .acknowledged
            }
        }
        outbox.enqueue([Self.desired("a", 1)])
        try await Task.sleep(for: .milliseconds(100))
        outbox.enqueue([Self.desired("a", 2)])
        try await Task.sleep(for: .milliseconds(100))
        #expect(sent.withLock { $0.isEmpty })
        connected.store(true, ordering: .relaxed)
        outbox.resume()
        #expect(await waitUntil { sent.withLock { $0.map(\.generation) } == [2] })
        worker.cancel()
        await worker.value
    }

    @Test("a resume that comes while a publish is failing for want of a connection is not lost")
    func resumeDuringFailure() async throws {
        let outbox = DesiredOutbox()
        let release = Atomic<Bool>(false)
        let attempts = Atomic<Int>(0)
        let sent = Mutex<[Int64]>([])
        let worker = Task {
            await outbox.run { d in
                if attempts.wrappingAdd(1, ordering: .relaxed).newValue == 1 {
                    while !release.load(ordering: .relaxed) { try? await Task.sleep(for: .milliseconds(5)) }
                    return .notConnected
                }
                sent.withLock { $0.append(d.generation) }
                return .acknowledged
            }
        }
        outbox.enqueue([Self.desired("a", 1)])
        #expect(await waitUntil { attempts.load(ordering: .relaxed) == 1 })
        // The connection comes back before the first publish has reported its failure.
        outbox.resume()
        release.store(true, ordering: .relaxed)
        #expect(await waitUntil { sent.withLock { $0 } == [1] })
        worker.cancel()
        await worker.value
    }

    @Test("an older generation handed in while a newer one is in flight or sent is never published after it")
    func neverBackwards() async throws {
        let outbox = DesiredOutbox()
        let sent = Mutex<[Int64]>([])
        let gate = Atomic<Bool>(false)
        let worker = Task {
            await outbox.run { d in
                while !gate.load(ordering: .relaxed) { try? await Task.sleep(for: .milliseconds(5)) }
                sent.withLock { $0.append(d.generation) }
                return .acknowledged
            }
        }
        outbox.enqueue([Self.desired("a", 5)])
        try await Task.sleep(for: .milliseconds(50))  // 5 is in flight
        outbox.enqueue([Self.desired("a", 4)])        // e.g. a republish of what was stored before
        gate.store(true, ordering: .relaxed)
        #expect(await waitUntil { outbox.pendingCount == 0 })
        outbox.enqueue([Self.desired("a", 3), Self.desired("a", 5)])
        #expect(await waitUntil { sent.withLock { $0.count } == 2 })
        try await Task.sleep(for: .milliseconds(50))
        worker.cancel()
        await worker.value
        #expect(sent.withLock { $0 } == [5, 5], "the same generation again is fine, an older one never")
    }

    @Test("a publish the broker refuses does not hold up other devices")
    func refusedDoesNotPause() async throws {
        let outbox = DesiredOutbox()
        let sent = Mutex<[String]>([])
        let worker = Task {
            await outbox.run { d in
                guard d.device != "huge" else { return .refused }
                sent.withLock { $0.append(d.device) }
                return .acknowledged
            }
        }
        outbox.enqueue([Self.desired("huge", 1)])
        try await Task.sleep(for: .milliseconds(50))
        outbox.enqueue([Self.desired("b", 1), Self.desired("c", 1)])
        #expect(await waitUntil { sent.withLock { Set($0) } == ["b", "c"] })
        worker.cancel()
        await worker.value
    }

    @Test("a store that fails on write: no generation is published that the store does not hold")
    func failedWritePublishesNothing() async throws {
        let dir = try Fixtures.temporaryDirectory()
        let store = FailingStore(try SQLiteFleetStore(path: dir + "/controller.db"))
        let fleet = try Fleet(store: store, logger: FleetFixture.logger, unreachableAfter: .seconds(30))
        let publisher = RecordingPublisher()
        await fleet.setPublisher(publisher)
        await fleet.sightRestored(now: Fleet.nowMillis() - 3_600_000)
        for id in ["a", "b"] { await fleet.hello(FleetFixture.hello(id)) }
        _ = try await fleet.apply(FleetFixture.workload("w", replicas: 2))
        var every = FleetFixture.workload("e", replicas: 0)
        every.mode = .every
        _ = try await fleet.apply(every)
        let before = publisher.all.count
        store.failing.store(true, ordering: .relaxed)
        await #expect(throws: FleetError.self) { try await fleet.scale(workload: "w", replicas: 1) }
        await #expect(throws: FleetError.self) { try await fleet.apply(FleetFixture.workload("v", replicas: 1)) }
        await fleet.state(DeviceState(device: "a", state: .offline))
        // A joining device would get a replica of `e`, and "a" its newest state again.
        await fleet.hello(FleetFixture.hello("c"))
        await fleet.hello(FleetFixture.hello("a"))
        #expect(publisher.all.count == before, "published: \(publisher.all.dropFirst(before))")
        // Memory went back to what the store holds.
        #expect(try await fleet.workload("w").desiredReplicas == 2)
        #expect(await fleet.workloadList().map(\.name) == ["e", "w"])
        store.failing.store(false, ordering: .relaxed)
        let stored = try store.load().desired.map(\.generation).max() ?? 0
        #expect(publisher.all.map(\.generation).max() ?? 0 <= stored)
        _ = try await fleet.scale(workload: "w", replicas: 1)
        #expect(publisher.all.count > before)
    }

    @Test("a device that says it is behind gets the newest desired state again")
    func behindGetsNewest() async throws {
        let (fleet, publisher, _) = try await FleetFixture.fleet()
        await fleet.hello(FleetFixture.hello("a"))
        _ = try await fleet.apply(FleetFixture.workload("w", replicas: 1))
        let count = publisher.all.count
        await fleet.hello(FleetFixture.hello("a"))  // lastAppliedGeneration 0
        #expect(publisher.all.count == count + 1)
        #expect(publisher.last(for: "a")?.generation == 1)
    }

    func waitUntil(_ condition: () -> Bool) async -> Bool {
        for _ in 0..<500 {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }
}
