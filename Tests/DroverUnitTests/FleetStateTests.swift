import DroverCore
@testable import DroverController
import DroverProtocol
import DroverStore
import Testing

/// The controller's state changes without any I/O: given an event and a time, a transition
/// returns what to store and what to publish.
@Suite("Fleet state transitions")
struct FleetStateTests {
    static func run() throws -> [Effects] {
        var s = FleetState(snapshot: FleetSnapshot(), unreachableAfter: .seconds(30), now: 1_000)
        s.sightRestored(now: 1_000)
        var effects: [Effects] = []
        effects.append(s.hello(FleetFixture.hello("a"), now: 2_000))
        effects.append(s.hello(FleetFixture.hello("b"), now: 2_500))
        effects.append(try s.apply(FleetFixture.workload("w", replicas: 2), now: 3_000).1)
        effects.append(s.report(Report(device: "a", seq: 1, replicas: [ReplicaStatus(id: "w-0", workload: "w", phase: .running, generation: 1, pid: 7, time: 1)]), now: 4_000))
        effects.append(s.checkPresence(now: 20_000))
        effects.append(s.checkPresence(now: 40_000))
        return effects
    }

    @Test("each transition returns its store batch and its desired state; the same inputs give the same effects")
    func pureAndDeterministic() throws {
        let effects = try Self.run()
        #expect(effects[0].batch.devices.map(\.id) == ["a"])
        #expect(effects[0].batch.events.map(\.kind) == ["DeviceJoined"])
        #expect(effects[0].batch.events.map(\.time) == [2_000], "events carry the transition's time")
        #expect(effects[0].publish.isEmpty)
        #expect(effects[2].batch.workloads.map(\.spec.name) == ["w"])
        #expect(Set(effects[2].publish.map(\.device)) == ["a", "b"])
        #expect(effects[2].publish.allSatisfy { $0.generation == 1 && $0.replicas.count == 1 })
        #expect(effects[3].batch.replicas.map(\.pid) == [7])
        #expect(effects[3].publish.isEmpty)
        #expect(effects[4].batch.events.isEmpty, "20 s of silence: within unreachableAfter")
        #expect(effects[5].batch.events.filter { $0.kind == "DeviceUnreachable" }.map(\.subject).sorted() == ["a", "b"])
        #expect(effects[5].batch.meta[FleetState.lastAliveKey] == "40000")

        let again = try Self.run()
        #expect(again.map(\.publish) == effects.map(\.publish))
        #expect(again.map { $0.batch.events.map(\.message) } == effects.map { $0.batch.events.map(\.message) })
    }
}
