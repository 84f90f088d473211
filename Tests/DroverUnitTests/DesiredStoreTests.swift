import DroverCore
@testable import DroverController
import DroverProtocol
@testable import DroverStore
import Foundation
import GRDB
import Testing

/// The store keeps each device's desired generation and digest, and a start makes the specs
/// again from the rows: what it makes must be, device by device, what the controller held.
@Suite("Desired state in the store")
struct DesiredStoreTests {
    static let start: Int64 = 1_000_000

    /// One change of any kind that alters desired state: a workload applied anew (a new
    /// revision), scaled or deleted, a device cordoned, drained, lost or joining, or coming
    /// back with a generation this controller never sent.
    static func change(_ s: inout FleetState, _ rng: inout SplitMix64, now: Int64) throws -> Effects {
        let device = "gw-\(Int.random(in: 0..<8, using: &rng))"
        let name = ["spread", "big", "small"].randomElement(using: &rng) ?? "small"
        switch Int.random(in: 0..<7, using: &rng) {
        case 0 where s.devices[device] != nil:
            return try s.setSchedulability(device, [.normal, .cordoned, .draining].randomElement(using: &rng) ?? .normal, now: now)
        case 1:
            return s.hello(FleetFixture.hello(device, labels: ["site": FleetPlacementTests.sites.randomElement(using: &rng) ?? "north"]), now: now)
        case 2:
            var h = FleetFixture.hello(device)
            h.lastAppliedGeneration = Int64.random(in: 0...40, using: &rng)
            return s.hello(h, now: now)
        case 3:
            return s.state(DeviceState(device: device, state: .offline), now: now)
        case 4 where s.workloads[name] != nil:
            return try s.delete(workload: name, now: now)
        case 5:
            var spec = FleetPlacementTests.workloads().first { $0.name == name } ?? FleetFixture.workload(name, replicas: 2)
            spec.env = ["N": "\(Int.random(in: 0..<3, using: &rng))"]
            // Also what changes replicas without a new revision (storage), and rollouts, whose
            // replicas run the revisions they are assigned.
            spec.resources.storageBytes = Int64.random(in: 0...2, using: &rng) << 20
            if Bool.random(using: &rng) { spec.rollout = RolloutSpec() }
            return try s.apply(spec, now: now).1
        default:
            guard s.workloads[name] != nil else { return Effects() }
            return try s.scale(workload: name, replicas: Int.random(in: 0...8, using: &rng), reason: nil, now: now).1
        }
    }

    static func sorted(_ records: some Sequence<DesiredRecord>) -> [DesiredRecord] { records.sorted { $0.device < $1.device } }

    @Test("after any run of changes, each written as the changes since the last, the store loads the desired state the controller holds")
    func rowsFollowState() throws {
        for seed in 0..<25 {
            let dir = try Fixtures.temporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let store = try SQLiteFleetStore(path: dir + "/controller.db")
            var rng = SplitMix64(state: UInt64(seed))
            var s = FleetState(snapshot: FleetSnapshot(), unreachableAfter: .seconds(600), now: Self.start)
            s.sightRestored(now: Self.start)
            for i in 0..<4 { try store.write(s.hello(FleetFixture.hello("gw-\(i)", labels: ["site": FleetPlacementTests.sites[i % 3]]), now: Self.start).batch) }
            for spec in FleetPlacementTests.workloads() { try store.write(try s.apply(spec, now: Self.start).1.batch) }
            var most = 0
            for k in 0..<40 {
                if k == 20 {
                    // A restart: what the store holds is what the changes go on from.
                    s = FleetState(snapshot: try store.load(), unreachableAfter: .seconds(600), now: Self.start + Int64(k) * 1000)
                    s.sightRestored(now: Self.start + Int64(k) * 1000)
                }
                let before = s.desired
                let effects = try Self.change(&s, &rng, now: Self.start + Int64(k) * 1000)
                for (id, record) in s.desired where record.replicas != (before[id]?.replicas ?? []) {
                    #expect(record.generation > (before[id]?.generation ?? 0), "seed \(seed), change \(k), device \(id): new replicas, new generation")
                }
                try store.write(effects.batch)
                // A restart makes the same desired state from the rows, under the same
                // generations (the digests agree), and has nothing to write.
                let reloaded = FleetState(snapshot: try store.load(), unreachableAfter: .seconds(600), now: Self.start)
                #expect(reloaded.desired == s.desired, "seed \(seed), change \(k)")
                #expect(reloaded.loadedChanges.isEmpty, "seed \(seed), change \(k)")
                // Specs reused from the previous desired state (`updateDesired`) are what making
                // them all afresh gives.
                let specs = ReplicaSpecs(s.workloads)
                for id in Set(s.replicasOn.keys).union(s.desired.keys) {
                    let afresh = FleetState.specs(on: id, replicasOn: s.replicasOn, replicas: s.replicas, specs)
                    #expect((s.desired[id]?.replicas ?? []) == afresh, "seed \(seed), change \(k), device \(id)")
                }
                most = max(most, s.desired.values.reduce(0) { $0 + $1.replicas.count })
            }
            #expect(most > 4, "seed \(seed): replicas were placed")
        }
    }

    /// Three devices and a workload of three replicas, over a store that fails on demand.
    static func fleetOfThree(_ dir: String) async throws -> (FailingStore, Fleet) {
        let store = FailingStore(try SQLiteFleetStore(path: dir + "/controller.db"))
        let fleet = try Fleet(store: store, logger: FleetFixture.logger, unreachableAfter: .seconds(3600))
        await fleet.sightRestored(now: Fleet.nowMillis() - 3_600_000)
        for i in 0..<3 { await fleet.hello(FleetFixture.hello("gw-\(i)")) }
        _ = try await fleet.apply(FleetFixture.workload("a", replicas: 3))
        return (store, fleet)
    }

    @Test("after a failed write that cannot be read back, nothing changes until the store reads again; then state and store agree")
    func unsyncedUntilReadBack() async throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (store, fleet) = try await Self.fleetOfThree(dir)
        store.failing.store(true, ordering: .relaxed)
        store.failingLoad.store(true, ordering: .relaxed)
        await #expect(throws: FleetError.self) { _ = try await fleet.apply(FleetFixture.workload("b", replicas: 3)) }
        store.failing.store(false, ordering: .relaxed)
        await #expect(throws: FleetError.self, "the store still cannot be read") { _ = try await fleet.apply(FleetFixture.workload("c", replicas: 3)) }
        await fleet.hello(FleetFixture.hello("gw-3"))
        #expect(try store.inner.load().workloads.map(\.spec.name) == ["a"], "nothing landed meanwhile")
        #expect(await fleet.allDesired().isEmpty, "nothing the store may not hold is published again")
        store.failingLoad.store(false, ordering: .relaxed)
        // The first device message once the store reads again is kept.
        await fleet.hello(FleetFixture.hello("gw-4"))
        #expect(try store.inner.load().devices.contains { $0.id == "gw-4" })
        _ = try await fleet.apply(FleetFixture.workload("c", replicas: 3))
        let loaded = try store.inner.load()
        #expect(loaded.workloads.map(\.spec.name) == ["a", "c"])
        let held = await fleet.allDesired()
        let made = FleetState(snapshot: loaded, unreachableAfter: .seconds(600), now: Self.start).allDesired()
        #expect(made == held)
        #expect(held.contains { !$0.replicas.isEmpty })
    }

    @Test("a read-back whose new generations cannot be written keeps what beats told, and writes them once the store takes writes again")
    func readBackWriteFails() async throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (store, fleet) = try await Self.fleetOfThree(dir)
        let told = Fleet.nowMillis() + 60_000
        _ = await fleet.beat(Beat(device: "gw-0", time: told))
        let seen = try await fleet.device("gw-0").record.lastSeen
        let generation = await fleet.allDesired().first { $0.device == "gw-1" }?.generation ?? 0
        // gw-1's stored digest disagrees, so a read-back gives it a new generation to write.
        try Self.sql(dir + "/controller.db", "UPDATE desired SET record = json_set(record, '$.digest', '0123456789abcdef') WHERE device = 'gw-1'")
        store.failing.store(true, ordering: .relaxed)
        await #expect(throws: FleetError.self) { _ = try await fleet.apply(FleetFixture.workload("b", replicas: 3)) }
        #expect(try await fleet.device("gw-0").record.lastSeen == seen, "what the beat told is kept")
        store.failing.store(false, ordering: .relaxed)
        _ = try await fleet.apply(FleetFixture.workload("c", replicas: 3))
        #expect(try await fleet.device("gw-0").record.lastSeen == seen)
        let stored = try store.inner.load().desired.first { $0.device == "gw-1" }?.generation ?? 0
        #expect(stored > generation, "the new generation was written")
    }

    @Test("a device that gains or loses many replicas in one change (a merge, not insertions one by one) holds what its rows give")
    func manyAtOnce() throws {
        var s = FleetState(snapshot: FleetSnapshot(), unreachableAfter: .seconds(600), now: Self.start)
        s.sightRestored(now: Self.start)
        _ = s.hello(FleetFixture.hello("gw-0"), now: Self.start)
        var generation: Int64 = 0
        func check(_ what: String) {
            let afresh = FleetState.specs(on: "gw-0", replicasOn: s.replicasOn, replicas: s.replicas, ReplicaSpecs(s.workloads))
            #expect(s.desired["gw-0"]?.replicas == afresh, "\(what)")
            #expect((s.desired["gw-0"]?.generation ?? 0) > generation, "\(what): a new generation")
            generation = s.desired["gw-0"]?.generation ?? 0
        }
        var small = FleetFixture.workload("a", replicas: 3)
        small.maxPerDevice = 20
        small.resources = Resources(cpuMillis: 10, memoryBytes: 1 << 20)
        _ = try s.apply(small, now: Self.start)
        check("3 replicas")
        var many = FleetFixture.workload("b", replicas: 12)
        many.maxPerDevice = 20
        many.resources = small.resources
        _ = try s.apply(many, now: Self.start + 1)
        check("12 more, between and after the first")
        _ = try s.scale(workload: "b", replicas: 2, reason: nil, now: Self.start + 2)
        check("10 gone")
        _ = try s.scale(workload: "a", replicas: 14, reason: nil, now: Self.start + 3)
        check("11 more")
        _ = try s.delete(workload: "a", now: Self.start + 4)
        check("14 gone")
    }

    @Test("the store keeps each device's generation and digest, not its specs; the specs held in memory are the whole state")
    func storesHeadersOnly() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try SQLiteFleetStore(path: dir + "/controller.db")
        var s = FleetState(snapshot: FleetSnapshot(), unreachableAfter: .seconds(600), now: Self.start)
        s.sightRestored(now: Self.start)
        for i in 0..<4 { try store.write(s.hello(FleetFixture.hello("gw-\(i)"), now: Self.start).batch) }
        var every = FleetFixture.workload("base", replicas: 0)
        every.mode = .every
        try store.write(try s.apply(every, now: Self.start).1.batch)
        let (_, effects) = try s.apply(FleetFixture.workload("next", replicas: 4), now: Self.start + 1)
        try store.write(effects.batch)
        #expect(effects.batch.desired.count == 4)
        for w in effects.batch.desired { #expect(w.record.replicas.count == 2, "\(w.record.device): the record is the whole state") }
        let rows = try DatabaseQueue(path: dir + "/controller.db").read { db in
            try String.fetchAll(db, sql: "SELECT record FROM desired ORDER BY device")
        }
        #expect(rows.count == 4)
        for (row, id) in zip(rows, ["gw-0", "gw-1", "gw-2", "gw-3"]) {
            let digest = s.desired[id]?.digest ?? 0
            #expect(row == #"{"device":"\#(id)","digest":"\#(DesiredJSON.hex(digest))","generation":2,"replicas":[]}"#)
        }
        let tables = try DatabaseQueue(path: dir + "/controller.db").read { db in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'") }
        #expect(!tables.contains("desired_replicas"))
    }

    @Test("a device whose stored digest is not what its rows give gets a new generation at a restart, and only that device")
    func digestDisagreesAtLoad() async throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/controller.db"
        var before: [Desired] = []
        do {
            let (_, fleet) = try await Self.fleetOfThree(dir)
            before = await fleet.allDesired()
        }
        // As if this build made gw-1's specs otherwise than the one that stored them.
        try Self.sql(path, "UPDATE desired SET record = json_set(record, '$.digest', '0123456789abcdef') WHERE device = 'gw-1'")
        let fleet = try Fleet(store: try SQLiteFleetStore(path: path), logger: FleetFixture.logger, unreachableAfter: .seconds(3600))
        let after = await fleet.allDesired()
        #expect(after.map(\.replicas) == before.map(\.replicas))
        for (a, b) in zip(before, after) { #expect(b.generation == a.generation + (a.device == "gw-1" ? 1 : 0), "\(a.device)") }
        // Written at once: the next start finds the digests agree.
        let stored = try SQLiteFleetStore(path: path).load().desired
        #expect(stored.map(\.generation) == after.map(\.generation))
        #expect(FleetState(snapshot: try SQLiteFleetStore(path: path).load(), unreachableAfter: .seconds(600), now: Self.start).loadedChanges.isEmpty)
    }

    /// Runs one statement on the store at `path`.
    static func sql(_ path: String, _ statement: String) throws {
        try DatabaseQueue(path: path).write { db in try db.execute(sql: statement) }
    }

    /// A store at v4, its rows as Foundation's JSONEncoder wrote them (doubles and all), the
    /// desired state whole in its row.
    static func writeV4(_ path: String, desired: DesiredRecord, device: DeviceRecord, workload: WorkloadRecord, rows: [ReplicaRow]) throws {
        let queue = try DatabaseQueue(path: path)
        try SQLiteFleetStore.migrator.migrate(queue, upTo: "v4-security")
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        func json(_ value: some Encodable) throws -> String { String(decoding: try encoder.encode(value), as: UTF8.self) }
        let texts = (desired: try json(desired), device: try json(device), workload: try json(workload), rows: try rows.map { try json($0) })
        try queue.write { db in
            try db.execute(sql: "INSERT INTO desired (device, generation, record) VALUES (?, ?, ?)", arguments: [desired.device, desired.generation, texts.desired])
            try db.execute(sql: "INSERT INTO desired (device, generation, record) VALUES (?, ?, ?)", arguments: ["gw-2", 3, #"{"device":"gw-2","generation":3,"replicas":[]}"#])
            try db.execute(sql: "INSERT INTO desired (device, generation, record) VALUES (?, ?, ?)", arguments: ["gw-3", 1, #"{"device":"gw-3","generation":1}"#])
            try db.execute(sql: "INSERT INTO devices (id, record) VALUES (?, ?)", arguments: [device.id, texts.device])
            try db.execute(sql: "INSERT INTO workloads (name, record) VALUES (?, ?)", arguments: [workload.spec.name, texts.workload])
            for (r, text) in zip(rows, texts.rows) {
                try db.execute(sql: "INSERT INTO replicas (id, workload, device, record) VALUES (?, ?, ?, ?)", arguments: [r.id, r.workload, r.device, text])
            }
        }
    }

    @Test("a store from before desired headers is migrated: each device's desired state is made from its rows and sent once more, under a new generation")
    func migratesWholeRecords() async throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/controller.db"
        let workload = WorkloadRecord(spec: FleetFixture.workload("w", replicas: 2), revision: 2, createdAt: 1, updatedAt: 2)
        let rows = (0..<2).map { ReplicaRow(id: "w-\($0)", workload: "w", ordinal: $0, device: "gw-1", phase: .running, updatedAt: 3) }
        // What the device was sent (the rows give the same, less an env it had then).
        func spec(_ id: String) -> ReplicaSpec {
            var r = workload.replicaTemplate(workload.assignment(of: id))
            r.id = id
            return r
        }
        var sent = rows.map { spec($0.id) }
        sent[1].env = ["K": "v \" é"]
        let old = DesiredRecord(device: "gw-1", generation: 7, replicas: sent)
        var record = DeviceRecord(
            id: "gw-1", facts: FleetFixture.hello("gw-1").facts, presence: .online, lastSeen: 5, joinedAt: 1, bootID: "b", lastAppliedGeneration: 7)
        record.rttMillis = 12.75
        record.usage = Usage(cpuPercent: 12.5, memoryUsedBytes: 1 << 20, memoryTotalBytes: 1 << 30, diskUsedBytes: 5, diskTotalBytes: 10)
        try Self.writeV4(path, desired: old, device: record, workload: workload, rows: rows)
        let store = try SQLiteFleetStore(path: path)
        let loaded = try store.load()
        #expect(loaded.desired == [
            DesiredRecord(device: "gw-1", generation: 7, replicas: []), DesiredRecord(device: "gw-2", generation: 3, replicas: []),
            DesiredRecord(device: "gw-3", generation: 1, replicas: []),
        ])
        #expect(loaded.devices == [record])
        #expect(loaded.workloads == [workload])
        #expect(loaded.replicas == rows)
        let fleet = try Fleet(store: store, logger: FleetFixture.logger, unreachableAfter: .seconds(3600))
        let desired = await fleet.allDesired()
        #expect(desired.map(\.generation) == [8, 4, 2])
        let fromRows = rows.map { spec($0.id) }
        #expect(desired.first?.replicas == fromRows)
        #expect(desired.dropFirst().allSatisfy { $0.replicas.isEmpty })
        #expect(try store.load().desired.map(\.generation) == [8, 4, 2], "stored before anything is sent")
    }
}

/// A large apply places thousands of replicas at once; the event log (bounded) keeps telling
/// what else happened.
@Suite("Placement events")
struct PlacementEventTests {
    @Test("up to 20 replicas of a workload placed at once get an event each; more get one event that counts them")
    func counted() throws {
        var s = FleetState(snapshot: FleetSnapshot(), unreachableAfter: .seconds(600), now: DesiredStoreTests.start)
        s.sightRestored(now: DesiredStoreTests.start)
        for i in 0..<30 { _ = s.hello(FleetFixture.hello("gw-\(i)"), now: DesiredStoreTests.start) }
        let few = try s.apply(FleetFixture.workload("few", replicas: 20), now: DesiredStoreTests.start).1.batch.events.filter { $0.kind == "ReplicaPlaced" }
        #expect(few.count == 20)
        #expect(few.allSatisfy { $0.subject == "few" && $0.message.hasPrefix("replica few-") })
        let many = try s.apply(FleetFixture.workload("many", replicas: 21), now: DesiredStoreTests.start).1.batch.events.filter { $0.kind == "ReplicaPlaced" }
        #expect(many.count == 1)
        #expect(many.first?.subject == "many")
        let message = many.first?.message ?? ""
        #expect(message.hasPrefix("21 replicas of many placed on 21 devices: many-"), "\(message)")
        #expect(message.hasSuffix("and 16 more"), "\(message)")
    }
}
