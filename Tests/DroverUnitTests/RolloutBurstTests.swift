import DroverCore
import DroverController
import DroverProtocol
import Testing

/// Reports come in bursts (a thousand in one transaction): a rollout is stepped once per
/// burst, over the workload's replicas, not once per report (at 5,000 replicas, 42 s a burst).
@Suite("Rollouts stepped per burst")
struct RolloutBurstTests {
    /// Four devices, one replica each, and a new revision rolling out two at a time.
    static func rollingOut() async throws -> (Fleet, RecordingPublisher) {
        let (fleet, publisher, _) = try await FleetFixture.fleet(unreachableAfter: .seconds(3600))
        for i in 0..<4 { await fleet.hello(FleetFixture.hello("gw-\(i)")) }
        var w = FleetFixture.workload("w", replicas: 4)
        w.maxPerDevice = 1
        w.rollout = RolloutSpec(maxUnavailable: 2)
        _ = try await fleet.apply(w)
        w.command = ["/bin/sleep", "2000"]
        _ = try await fleet.apply(w)
        return (fleet, publisher)
    }

    @Test("a rollout goes on, wave after wave, when every report of a wave comes in one burst")
    func burstsStepTheRollout() async throws {
        let (fleet, publisher) = try await Self.rollingOut()
        var seq: Int64 = 0
        var bursts = 0
        while try await fleet.rollout("w").state?.isActive == true, bursts < 10 {
            seq += 1
            bursts += 1
            // Every device reports what it was last told, all in one burst.
            let reports = (0..<4).map { i in
                let told = publisher.last(for: "gw-\(i)")
                return Report(device: "gw-\(i)", seq: seq, replicas: (told?.replicas ?? []).map {
                    ReplicaStatus(id: $0.id, workload: "w", phase: .running, generation: told?.generation ?? 0, time: Fleet.nowMillis(), revision: $0.revision)
                })
            }
            await fleet.reports(reports)
        }
        let state = try await fleet.rollout("w").state
        #expect(state?.phase == .succeeded, "\(String(describing: state))")
        #expect(bursts >= 2, "two waves of two")
        for i in 0..<4 { #expect(publisher.last(for: "gw-\(i)")?.replicas.allSatisfy { $0.revision == 2 } == true) }
    }

    @Test("a replica of the new revision that fails and recovers within one burst still counts: the rollout rolls back")
    func failureWithinABurst() async throws {
        let (fleet, publisher) = try await Self.rollingOut()
        let told = (0..<4).compactMap { publisher.last(for: "gw-\($0)") }
        let updated = try #require(told.first { $0.replicas.contains { $0.revision == 2 } })
        let replica = try #require(updated.replicas.first { $0.revision == 2 })
        func status(_ phase: ReplicaPhase) -> ReplicaStatus {
            ReplicaStatus(id: replica.id, workload: "w", phase: phase, generation: updated.generation, restarts: phase == .restarting ? 1 : 0, time: Fleet.nowMillis(), revision: 2)
        }
        await fleet.reports([
            Report(device: updated.device, seq: 1, replicas: [status(.restarting)]),
            Report(device: updated.device, seq: 2, replicas: [status(.running)]),
        ])
        let state = try await fleet.rollout("w").state
        #expect(state?.phase == .rollingBack || state?.phase == .failed, "\(String(describing: state))")
    }
}
