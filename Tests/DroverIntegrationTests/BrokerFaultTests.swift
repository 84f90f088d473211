import Foundation
import Testing

/// An external broker that crashes: what it held only in memory is gone, and the fleet must
/// still converge on the truth without restarting anything.
@Suite("Broker faults", .serialized)
struct BrokerFaultTests {
    @Test("a report the broker acknowledged and then lost in a crash is corrected by the snapshot after reconnect")
    func lostReportCorrected() async throws {
        // In a function of its own: swiftc 6.3.1 crashes (SendNonSendable) on this body as a closure.
        try await FleetTestbed.run("lostreport", externalBroker: true, Self.lostReport)
    }

    static func lostReport(_ bed: FleetTestbed) async throws {
        guard let old = try await bed.steadyOnGW1().first?.pid else { return }

        // The controller is away; its session on the broker takes the device's reports.
        await bed.killController()
        kill(old, SIGKILL)
        let replaced = await Harness.eventually(.seconds(10)) {
            Harness.processes(under: bed.agentDir("gw-1")).filter { $0 != old && Harness.isAlive($0) }.count == 1
        }
        #expect(replaced)
        let expected: [Int32] = Harness.processes(under: bed.agentDir("gw-1")).filter { $0 != old && Harness.isAlive($0) }
        try await Task.sleep(for: .seconds(1.5))  // the reports are acknowledged and gone from the outbox
        // The broker crashes before the controller is back: the queued reports are lost.
        await bed.external?.kill()
        try bed.external?.start()
        try await bed.startController()
        let corrected = await Harness.eventually(.seconds(20)) { (try? await bed.running("steady").map(\.pid)) == expected }
        let rows = String(describing: (try? await bed.replicas("steady")) ?? [])
        #expect(corrected, "controller: \(rows), process \(expected)")
    }

    @Test("kill -9 of the broker under load: every device reconnects, nothing restarts or moves, the view stays right")
    func brokerCrashUnderLoad() async throws {
        try await FleetTestbed.run("brokercrash", externalBroker: true) { bed in
            let ids = (1...6).map { "gw-\($0)" }
            for id in ids { try bed.startAgent(id, labels: "role=gateway", capacity: "cpu=2,memory=1Gi") }
            try await bed.waitForDevices(online: ids.count)
            try await bed.apply(FaultTests.manifest("steady", replicas: 6, tolerate: "1s"))
            #expect(await Harness.eventually { (try? await bed.running("steady").count) == 6 })
            let before = try await bed.running("steady").map { "\($0.id)@\($0.device):\($0.pid)" }.sorted()
            let eventsBefore = try await bed.events().count

            await bed.external?.kill()
            try await Task.sleep(for: .seconds(3))  // longer than tolerateOffline and unreachableAfter
            try bed.external?.start()
            try await bed.waitForDevices(online: ids.count)
            try await Task.sleep(for: .seconds(3))

            let after = try await bed.running("steady").map { "\($0.id)@\($0.device):\($0.pid)" }.sorted()
            #expect(after == before)
            #expect(try await bed.replicas("steady").allSatisfy { $0["restarts"] as? Int == 0 })
            let since = try await bed.events().dropFirst(eventsBefore)
            let bad = since.filter { ["DeviceUnreachable", "ReplicaPlaced", "ReplicaRestarting", "ReplicaExited"].contains($0.kind) }
            #expect(bad.isEmpty, "events after the crash: \(since.map { "\($0.kind) \($0.message)" })")
            for id in ids {
                #expect(bed.agents[id]?.log.contains("started replica") == true)
                #expect((bed.agents[id]?.log.components(separatedBy: "started replica").count ?? 0) == 2, "\(id) started a replica twice")
            }
        }
    }
}
