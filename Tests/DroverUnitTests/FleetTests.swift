import DroverCore
import DroverController
import DroverProtocol
import DroverStore
import Logging
import Synchronization
import Testing

/// Records what the fleet would publish, in order.
final class RecordingPublisher: DesiredPublisher {
    let sent = Mutex<[Desired]>([])
    func enqueue(_ desired: [Desired]) { sent.withLock { $0.append(contentsOf: desired) } }
    var all: [Desired] { sent.withLock { $0 } }
    func last(for device: String) -> Desired? { all.last { $0.device == device } }
}

enum FleetFixture {
    static let logger = Logger(label: "test")

    static func fleet(dir: String? = nil, unreachableAfter: Duration = .seconds(30)) async throws -> (Fleet, RecordingPublisher, String) {
        let dir = try dir ?? Fixtures.temporaryDirectory()
        let fleet = try Fleet(store: try SQLiteFleetStore(path: dir + "/controller.db"), logger: logger, unreachableAfter: unreachableAfter)
        let publisher = RecordingPublisher()
        await fleet.setPublisher(publisher)
        // A controller whose broker connection has been up for an hour: past any grace.
        await fleet.sightRestored(now: Fleet.nowMillis() - 3_600_000)
        return (fleet, publisher, dir)
    }

    static func hello(_ id: String, labels: [String: String] = [:], memory: Int64 = 1 << 30) -> Hello {
        Hello(device: id, facts: DeviceFacts(agentVersion: "t", arch: "amd64", os: "test", capacity: Resources(cpuMillis: 2000, memoryBytes: memory), labels: labels, runtimes: [.exec]), bootID: "boot", lastAppliedGeneration: 0)
    }

    static func workload(_ name: String, replicas: Int, selector: [String: String] = [:]) -> WorkloadSpec {
        WorkloadSpec(name: name, replicas: replicas, selector: LabelSelector(matchLabels: selector), resources: Resources(cpuMillis: 100, memoryBytes: 32 << 20), command: ["/bin/sleep", "1000"])
    }
}

@Suite("Fleet")
struct FleetTests {
    @Test("applying a workload places replicas and publishes each device's whole desired state")
    func applyPublishes() async throws {
        let (fleet, publisher, _) = try await FleetFixture.fleet()
        for id in ["a", "b", "c"] { await fleet.hello(FleetFixture.hello(id, labels: ["role": id == "c" ? "other" : "gateway"])) }
        #expect(try await fleet.apply(FleetFixture.workload("w", replicas: 2, selector: ["role": "gateway"])) == .created)
        #expect(Set(publisher.all.map(\.device)) == ["a", "b"])
        #expect(publisher.all.allSatisfy { $0.generation == 1 && $0.replicas.count == 1 })
        #expect(try await fleet.apply(FleetFixture.workload("w", replicas: 2, selector: ["role": "gateway"])) == .unchanged)
    }

    @Test("generations only grow, and only for devices whose replica set changed")
    func generations() async throws {
        let (fleet, publisher, _) = try await FleetFixture.fleet()
        for id in ["a", "b"] { await fleet.hello(FleetFixture.hello(id)) }
        _ = try await fleet.apply(FleetFixture.workload("w", replicas: 2))
        let before = publisher.all.count
        _ = try await fleet.scale(workload: "w", replicas: 1)
        let after = Array(publisher.all.dropFirst(before))
        #expect(after.count == 1)
        #expect(after.first?.generation == 2)
        #expect(after.first?.replicas.isEmpty == true)
        try await fleet.delete(workload: "w")
        #expect(publisher.all.last?.generation == 2)
        #expect(publisher.all.last?.replicas.isEmpty == true)
    }

    @Test("a report is applied once and only for replicas placed on the reporting device")
    func reports() async throws {
        let (fleet, _, _) = try await FleetFixture.fleet()
        for id in ["a", "b"] { await fleet.hello(FleetFixture.hello(id)) }
        _ = try await fleet.apply(FleetFixture.workload("w", replicas: 1))
        let row = try await fleet.workload("w").replicas[0]
        let other = row.device == "a" ? "b" : "a"
        await fleet.report(Report(device: other, seq: 1, replicas: [ReplicaStatus(id: row.id, workload: "w", phase: .failed, generation: 1, time: 0)]))
        #expect(try await fleet.workload("w").replicas[0].phase == .pending)
        await fleet.report(Report(device: row.device, seq: 5, replicas: [ReplicaStatus(id: row.id, workload: "w", phase: .running, generation: 1, pid: 9, time: 0)]))
        #expect(try await fleet.workload("w").replicas[0].phase == .running)
        await fleet.report(Report(device: row.device, seq: 5, replicas: [ReplicaStatus(id: row.id, workload: "w", phase: .exited, generation: 1, time: 0)]))
        #expect(try await fleet.workload("w").runningReplicas == 1)
    }

    @Test("a device without beats for longer than the bound becomes unreachable and gets no new replicas")
    func presence() async throws {
        let (fleet, _, _) = try await FleetFixture.fleet(unreachableAfter: .seconds(5))
        await fleet.hello(FleetFixture.hello("a"))
        await fleet.checkPresence(now: Fleet.nowMillis() + 6000)
        #expect(try await fleet.device("a").record.presence == .unreachable)
        _ = try await fleet.apply(FleetFixture.workload("w", replicas: 1))
        let view = try await fleet.workload("w")
        #expect(view.replicas.isEmpty)
        #expect(view.unplaced.first?.reasons == ["1 device: offline"])
        await fleet.state(DeviceState(device: "a", state: .online))
        #expect(try await fleet.workload("w").replicas.count == 1)
    }

    @Test("replicas on a device unreachable past tolerateOffline move to another device")
    func movedAfterTolerateOffline() async throws {
        let (fleet, publisher, _) = try await FleetFixture.fleet(unreachableAfter: .seconds(60))
        await fleet.hello(FleetFixture.hello("a"))
        var spec = FleetFixture.workload("w", replicas: 1)
        spec.connectivity.tolerateOfflineSeconds = 5
        _ = try await fleet.apply(spec)
        await fleet.hello(FleetFixture.hello("b"))
        let first = try await fleet.workload("w").replicas[0].device
        await fleet.state(DeviceState(device: first, state: .offline))
        #expect(try await fleet.workload("w").replicas.map(\.device) == [first], "kept within tolerateOffline")
        await fleet.checkPresence(now: Fleet.nowMillis() + 20_000)
        let moved = try await fleet.workload("w").replicas.map(\.device)
        #expect(moved.count == 1 && moved != [first], "replica still on \(moved)")
        #expect(publisher.last(for: first)?.replicas.isEmpty == true, "the lost device is told to stop it when it returns")
    }

    @Test("cordon keeps replicas but takes no new ones; drain moves them; uncordon restores")
    func cordonDrain() async throws {
        let (fleet, publisher, _) = try await FleetFixture.fleet()
        for id in ["a", "b"] { await fleet.hello(FleetFixture.hello(id)) }
        _ = try await fleet.apply(FleetFixture.workload("w", replicas: 1))
        let first = try await fleet.workload("w").replicas[0].device
        let other = first == "a" ? "b" : "a"
        _ = try await fleet.setSchedulability(first, .cordoned)
        #expect(try await fleet.workload("w").replicas.map(\.device) == [first])
        _ = try await fleet.setSchedulability(other, .cordoned)
        _ = try await fleet.apply(FleetFixture.workload("v", replicas: 1))
        #expect(try await fleet.workload("v").unplaced.first?.reasons == ["2 devices: cordoned"])
        _ = try await fleet.setSchedulability(other, .normal)
        #expect(try await fleet.workload("v").replicas.map(\.device) == [other])
        _ = try await fleet.setSchedulability(first, .draining)
        #expect(try await fleet.workload("w").replicas.map(\.device) == [other])
        #expect(publisher.last(for: first)?.replicas.isEmpty == true)
        #expect(try await fleet.device(first).record.schedulability == "draining")
        await #expect(throws: FleetError.self) { try await fleet.setSchedulability("ghost", .cordoned) }
    }

    @Test("a restarted controller has the same fleet, and generations continue from the store")
    func restart() async throws {
        let (fleet, _, dir) = try await FleetFixture.fleet()
        await fleet.hello(FleetFixture.hello("a"))
        _ = try await fleet.apply(FleetFixture.workload("w", replicas: 1))
        let (again, publisher, _) = try await FleetFixture.fleet(dir: dir)
        #expect(try await again.workload("w").replicas.map(\.device) == ["a"])
        #expect(await again.allDesired().map(\.generation) == [1])
        _ = try await again.scale(workload: "w", replicas: 0)
        #expect(publisher.last(for: "a")?.generation == 2)
    }

    @Test("a device ahead of the controller's generation gets its state resent past it")
    func generationResync() async throws {
        let (fleet, publisher, _) = try await FleetFixture.fleet()
        await fleet.hello(FleetFixture.hello("a"))
        _ = try await fleet.apply(FleetFixture.workload("w", replicas: 1))
        #expect(publisher.last(for: "a")?.generation == 1)
        var hello = FleetFixture.hello("a")
        hello.lastAppliedGeneration = 1
        await fleet.hello(hello)
        #expect(publisher.all.count == 1, "an up-to-date device needs nothing")
        hello.lastAppliedGeneration = 9
        await fleet.hello(hello)
        #expect(publisher.last(for: "a")?.generation == 10)
        #expect(publisher.last(for: "a")?.replicas.map(\.id) == ["w-0"])
    }

    @Test("an invalid spec changes nothing")
    func invalidSpec() async throws {
        let (fleet, publisher, _) = try await FleetFixture.fleet()
        await fleet.hello(FleetFixture.hello("a"))
        var spec = FleetFixture.workload("w", replicas: 1)
        spec.command = []
        await #expect(throws: FleetError.self) { try await fleet.apply(spec) }
        #expect(await fleet.workloadList().isEmpty)
        #expect(publisher.all.isEmpty)
        await #expect(throws: FleetError.self) { try await fleet.scale(workload: "missing", replicas: 1) }
    }
}
