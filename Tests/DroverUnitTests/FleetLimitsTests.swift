import DroverCore
@testable import DroverController
import DroverManifest
import DroverProtocol
import DroverStore
import Testing

/// Everything grows within bounds, and every number from outside has a range.
@Suite("Fleet limits")
struct FleetLimitsTests {
    @Test("a change whose desired state would exceed what a device accepts is refused whole")
    func oversizedDesired() async throws {
        let (fleet, publisher, _) = try await FleetFixture.fleet()
        var hello = FleetFixture.hello("a")
        hello.facts.capacity = Resources(cpuMillis: 100_000, memoryBytes: 1 << 40)
        await fleet.hello(hello)
        var spec = FleetFixture.workload("fat", replicas: 1)
        spec.maxPerDevice = 100
        spec.env = ["BLOB": String(repeating: "x", count: 60 * 1024)]
        _ = try await fleet.apply(spec)
        let sent = publisher.all.count
        do {
            _ = try await fleet.scale(workload: "fat", replicas: 20)
            Issue.record("20 replicas of 60Ki on one device were accepted")
        } catch {
            #expect("\(error)".contains("desired state"))
        }
        #expect(try await fleet.workload("fat").desiredReplicas == 1)
        #expect(try await fleet.workload("fat").replicas.count == 1)
        #expect(publisher.all.count == sent)
        spec.env = ["BLOB": String(repeating: "x", count: 70 * 1024)]
        await #expect(throws: FleetError.self) { try await fleet.apply(spec) }
    }

    @Test("extreme numbers in a manifest are errors, never a crash")
    func manifestExtremes() throws {
        for (field, yaml) in [
            ("spec.priority", "priority: -9223372036854775808"),
            ("spec.connectivity.tolerateOffline", "connectivity: {tolerateOffline: 999999999999999999d}"),
            ("spec.resources.memory", "resources: {memory: 2Ei}"),
            ("spec.maxPerDevice", "maxPerDevice: 9223372036854775807"),
        ] {
            let text = "apiVersion: drover/v1\nkind: Workload\nmetadata: {name: w}\nspec:\n  command: [/bin/true]\n  \(yaml)\n"
            do {
                _ = try Manifest.parseWorkload(text)
                Issue.record("\(yaml) was accepted")
            } catch {
                #expect(error.errors.contains { $0.path == field }, "\(yaml): \(error)")
            }
        }
    }

    @Test("the autoscaler asks the scheduler what fits again only when something changed")
    func autoscalerPlansOnChange() async throws {
        let (fleet, _, _) = try await FleetFixture.fleet()
        await fleet.hello(FleetFixture.hello("a"))
        var spec = FleetFixture.workload("burn", replicas: 1)
        spec.resources = Resources(cpuMillis: 1500, memoryBytes: 1 << 20)
        spec.autoscale = AutoscaleSpec(minReplicas: 1, maxReplicas: 5, targetCPUPercent: 50, stabilizationSeconds: 60)
        _ = try await fleet.apply(spec)
        await fleet.report(Report(device: "a", seq: 1, replicas: [ReplicaStatus(id: "burn-0", workload: "burn", phase: .running, generation: 1, pid: 5, time: 1)]))
        for k in 0..<10 {
            var beat = Beat(device: "a", time: 1, usage: Usage(cpuPercent: 90, memoryUsedBytes: 1, memoryTotalBytes: 2, diskUsedBytes: 1, diskTotalBytes: 2), phases: ["running": 1])
            beat.replicaCPU = ["burn-0": 1500]
            await fleet.beat(beat)
            // Reports of replica phases change nothing placement depends on.
            let restarts = k % 2
            await fleet.reports([Report(device: "a", seq: Int64(k + 2), replicas: [ReplicaStatus(id: "burn-0", workload: "burn", phase: .running, generation: 1, pid: 5, restarts: restarts, time: 1)])])
            await fleet.autoscale(now: Fleet.nowMillis())
        }
        #expect(try await fleet.workload("burn").desiredReplicas == 1, "the fleet holds one")
        #expect(await fleet.autoscalePlans == 1)
        await fleet.hello(FleetFixture.hello("b"))
        await fleet.autoscale(now: Fleet.nowMillis())
        #expect(try await fleet.workload("burn").desiredReplicas == 2, "a new device makes room")
    }

    @Test("in a large fleet the autoscaler's 'what fits' is worked out beside the actor, and the next pass uses it")
    func autoscalerPlansBesideTheActor() async throws {
        let (fleet, _, _) = try await FleetFixture.fleet()
        await fleet.answerShortfallsInline(upTo: 0)
        for id in ["a", "b"] { await fleet.hello(FleetFixture.hello(id)) }
        var spec = FleetFixture.workload("burn", replicas: 1)
        spec.resources = Resources(cpuMillis: 1500, memoryBytes: 1 << 20)
        spec.autoscale = AutoscaleSpec(minReplicas: 1, maxReplicas: 5, targetCPUPercent: 50, stabilizationSeconds: 60)
        _ = try await fleet.apply(spec)
        let placed = try #require(try await fleet.workload("burn").replicas.first)
        await fleet.report(Report(device: placed.device, seq: 1, replicas: [ReplicaStatus(id: "burn-0", workload: "burn", phase: .running, generation: 1, pid: 5, time: 1)]))
        func hot(_ millis: Int = 1500) async {
            var beat = Beat(device: placed.device, time: 1, usage: Usage(cpuPercent: 90, memoryUsedBytes: 1, memoryTotalBytes: 2, diskUsedBytes: 1, diskTotalBytes: 2), phases: ["running": 1])
            beat.replicaCPU = ["burn-0": millis]
            await fleet.beat(beat)
        }
        await hot()
        await fleet.autoscale(now: Fleet.nowMillis())
        #expect(try await fleet.workload("burn").desiredReplicas == 1, "not known yet: no change")
        await fleet.shortfallsWorkedOut()
        #expect(await fleet.autoscalePlans == 1)
        await hot()
        await fleet.autoscale(now: Fleet.nowMillis())
        #expect(try await fleet.workload("burn").desiredReplicas == 2, "two devices hold one each")
        // Now 4 are wanted (2 at 100 % of request), more than were checked, all of which fit: asked again.
        await hot()
        await fleet.autoscale(now: Fleet.nowMillis())
        await fleet.shortfallsWorkedOut()
        #expect(await fleet.autoscalePlans == 2)
        // Then 3 (2 at 75 %): the last check answers for that count too, with no other plan.
        for _ in 0..<2 {
            await hot(1125)
            await fleet.autoscale(now: Fleet.nowMillis())
            await fleet.shortfallsWorkedOut()
        }
        #expect(try await fleet.workload("burn").desiredReplicas == 2, "two devices hold one each")
        #expect(await fleet.autoscalePlans == 2, "another count, answered by the same check")
        // Scaled by hand beyond what fits: an answer from before never takes the count down.
        _ = try await fleet.scale(workload: "burn", replicas: 3)
        await hot()
        await fleet.autoscale(now: Fleet.nowMillis())
        await fleet.shortfallsWorkedOut()
        #expect(try await fleet.workload("burn").spec.replicas == 3)
    }

    @Test("mode every asks for one replica per matching device")
    func everyCounts() async throws {
        let (fleet, _, _) = try await FleetFixture.fleet()
        for id in ["a", "b", "c"] { await fleet.hello(FleetFixture.hello(id)) }
        var spec = FleetFixture.workload("agent", replicas: 0)
        spec.mode = .every
        _ = try await fleet.apply(spec)
        #expect(try await fleet.workload("agent").desiredReplicas == 3)
        #expect(await fleet.summary().desiredReplicas == 3)
    }

    @Test("the applied generation follows reports and beats, not only hello")
    func appliedGeneration() async throws {
        let (fleet, _, _) = try await FleetFixture.fleet()
        await fleet.hello(FleetFixture.hello("a"))
        _ = try await fleet.apply(FleetFixture.workload("w", replicas: 1))
        await fleet.report(Report(device: "a", seq: 1, replicas: [ReplicaStatus(id: "w-0", workload: "w", phase: .running, generation: 1, time: 1)]))
        #expect(try await fleet.device("a").record.lastAppliedGeneration == 1)
    }

    @Test("drop logging is bounded over all devices, not only per device")
    func dropLogBound() {
        var ledger = DropLedger()
        let logged = (0..<20_000).filter { ledger.record(.malformed, device: "d\($0)", now: 5) }.count
        #expect(logged == 20)
        #expect(ledger.total == 20_000)
        let later = ledger.record(.malformed, device: "fresh", now: 70)
        #expect(later, "a new minute logs again")
    }

    @Test("events older than 30 days are dropped as new ones arrive")
    func eventAge() throws {
        let store = try SQLiteFleetStore(path: try Fixtures.temporaryDirectory() + "/controller.db")
        let now = Fleet.nowMillis()
        var old = StoreBatch()
        old.events = [EventRecord(time: now - 31 * 86_400_000, kind: "Old", subject: "x", message: "old")]
        try store.write(old)
        var fresh = StoreBatch()
        fresh.events = [EventRecord(time: now, kind: "New", subject: "x", message: "new")]
        try store.write(fresh)
        #expect(try store.events(limit: 10, subject: nil).map(\.kind) == ["New"])
    }
}

extension FleetLimitsTests {
    @Test("dropped-message counts survive a controller restart")
    func dropCountsPersist() async throws {
        let (fleet, _, dir) = try await FleetFixture.fleet()
        for _ in 0..<3 { _ = await fleet.recordDrop(.malformed, device: "x") }
        _ = await fleet.recordDrop(.oversized, device: "y")
        await fleet.checkPresence(now: Fleet.nowMillis())
        let again = try Fleet(store: try SQLiteFleetStore(path: dir + "/controller.db"), logger: FleetFixture.logger, unreachableAfter: .seconds(30))
        #expect(await again.summary().droppedMessages == ["malformed": 3, "oversized": 1])
    }
}
