import DroverCore
import DroverController
import DroverProtocol
import DroverStore
import Testing

/// The controller's own absence (stopped, or cut off from its broker) never counts as a
/// device's silence.
@Suite("Controller blind time")
struct FleetSightTests {
    static func workload(tolerate seconds: Int) -> WorkloadSpec {
        var spec = FleetFixture.workload("w", replicas: 1)
        spec.connectivity.tolerateOfflineSeconds = seconds
        return spec
    }

    @Test("a controller stopped for longer than tolerateOffline moves nothing and judges nobody when it starts")
    func restartAfterLongAbsence() async throws {
        let (fleet, _, dir) = try await FleetFixture.fleet(unreachableAfter: .seconds(30))
        for id in ["a", "b"] { await fleet.hello(FleetFixture.hello(id)) }
        _ = try await fleet.apply(Self.workload(tolerate: 10))
        let placed = try await fleet.workload("w").replicas[0].device
        let t0 = Fleet.nowMillis()
        await fleet.checkPresence(now: t0)  // the controller's last sign of life

        // Started again a minute later; its broker connection comes up at once.
        let again = try Fleet(store: try SQLiteFleetStore(path: dir + "/controller.db"), logger: FleetFixture.logger, unreachableAfter: .seconds(30))
        let publisher = RecordingPublisher()
        await again.setPublisher(publisher)
        await again.sightRestored(now: t0 + 60_000)
        for second in stride(from: 1, through: 25, by: 2) {
            await again.checkPresence(now: t0 + 60_000 + Int64(second) * 1000)
        }
        #expect(try await again.workload("w").replicas.map(\.device) == [placed])
        #expect(await again.deviceList().allSatisfy { $0.record.presence == .online })
        #expect(publisher.all.isEmpty, "no device got a new desired state")
        let events = try SQLiteFleetStore(path: dir + "/controller.db").events(limit: 100, subject: nil).map(\.kind)
        #expect(!events.contains("DeviceUnreachable"))
        // Devices that stay silent once the controller is back are judged as always.
        await again.checkPresence(now: t0 + 60_000 + 31_000)
        #expect(await again.deviceList().allSatisfy { $0.record.presence == .unreachable })
    }

    @Test("an unreachable device's tolerateOffline does not run while the controller is away")
    func tolerateExcludesAbsence() async throws {
        let (fleet, _, dir) = try await FleetFixture.fleet(unreachableAfter: .seconds(30))
        for id in ["a", "b"] { await fleet.hello(FleetFixture.hello(id)) }
        _ = try await fleet.apply(Self.workload(tolerate: 10))
        let placed = try await fleet.workload("w").replicas[0].device
        let t0 = Fleet.nowMillis()
        await fleet.state(DeviceState(device: placed, state: .offline))
        await fleet.checkPresence(now: t0)

        let again = try Fleet(store: try SQLiteFleetStore(path: dir + "/controller.db"), logger: FleetFixture.logger, unreachableAfter: .seconds(30))
        await again.setPublisher(RecordingPublisher())
        await again.sightRestored(now: t0 + 60_000)
        await again.checkPresence(now: t0 + 60_000 + 5_000)
        #expect(try await again.workload("w").replicas.map(\.device) == [placed], "5 s of tolerateOffline have passed, not 65")
        // The sweep for devices past tolerateOffline runs every 10 s.
        await again.checkPresence(now: t0 + 60_000 + 16_000)
        #expect(try await again.workload("w").replicas.map(\.device) != [placed], "past tolerateOffline it moves")
    }

    @Test("while the broker connection is down nobody is judged, and that time is not counted after")
    func brokerOutage() async throws {
        let (fleet, _, _) = try await FleetFixture.fleet(unreachableAfter: .seconds(5))
        await fleet.hello(FleetFixture.hello("a"))
        let t0 = Fleet.nowMillis()
        await fleet.sightLost(now: t0 + 1_000)
        await fleet.checkPresence(now: t0 + 20_000)
        #expect(try await fleet.device("a").record.presence == .online)
        await fleet.sightRestored(now: t0 + 30_000)
        await fleet.checkPresence(now: t0 + 34_000)
        #expect(try await fleet.device("a").record.presence == .online, "1 s before and 4 s after the outage")
        // Silent for 1 + 9 s of sight, more than unreachableAfter, but the grace is 10 s at least.
        await fleet.checkPresence(now: t0 + 39_000)
        #expect(try await fleet.device("a").record.presence == .online, "within the grace")
        await fleet.checkPresence(now: t0 + 41_000)
        #expect(try await fleet.device("a").record.presence == .unreachable)
    }
}

extension FleetSightTests {
    @Test("an offline state within the grace after a start is no judgement; a device that stays silent is judged after it")
    func willQueuedDuringAbsence() async throws {
        let (fleet, _, dir) = try await FleetFixture.fleet(unreachableAfter: .seconds(5))
        await fleet.hello(FleetFixture.hello("a"))
        let t0 = Fleet.nowMillis()
        await fleet.checkPresence(now: t0)
        let again = try Fleet(store: try SQLiteFleetStore(path: dir + "/controller.db"), logger: FleetFixture.logger, unreachableAfter: .seconds(5))
        await again.sightRestored(now: Fleet.nowMillis())
        // The will the broker fired as it went down with the controller, delivered now.
        await again.state(DeviceState(device: "a", state: .offline))
        #expect(try await again.device("a").record.presence == .online)
        await again.checkPresence(now: Fleet.nowMillis() + 11_000)
        #expect(try await again.device("a").record.presence == .unreachable)
    }
}

extension FleetSightTests {
    /// How a device shows life within the grace: a hello, or `online` alone (a device back on
    /// its kept session sends no hello).
    enum Life: CaseIterable, Sendable { case hello, online }

    @Test("a will held through the grace is acted on when it ends, unless the device showed life (a hello, or online alone)", arguments: Life.allCases)
    func heldWill(_ life: Life) async throws {
        let (fleet, _, dir) = try await FleetFixture.fleet(unreachableAfter: .seconds(30))
        for id in ["a", "b"] { await fleet.hello(FleetFixture.hello(id)) }
        await fleet.checkPresence(now: Fleet.nowMillis())
        let again = try Fleet(store: try SQLiteFleetStore(path: dir + "/controller.db"), logger: FleetFixture.logger, unreachableAfter: .seconds(30))
        // Sight came back 5 s ago; both wills arrive now, and b shows life right after.
        let start = Fleet.nowMillis() - 5_000
        await again.sightRestored(now: start)
        for id in ["a", "b"] { await again.state(DeviceState(device: id, state: .offline)) }
        switch life {
        case .hello: await again.hello(FleetFixture.hello("b"))
        case .online: await again.state(DeviceState(device: "b", state: .online))
        }
        await again.checkPresence(now: start + 30_001)
        #expect(try await again.device("a").record.presence == .unreachable, "silent since its will")
        #expect(try await again.device("b").record.presence == .online, "came back within the grace")
    }
}
