import DroverAPI
import DroverCore
@testable import DroverController
import DroverProtocol
import DroverStore
import Testing

/// The periodic full plan is computed off the Fleet actor while the fleet goes on changing;
/// what changed meanwhile is replayed before it lands.
@Suite("Reconciliation")
struct FleetReconcileTests {
    static let start: Int64 = 1_000_000

    /// Nine devices over three sites and the placement tests' workloads, planned.
    static func planned() throws -> FleetState {
        var s = FleetState(snapshot: FleetSnapshot(), unreachableAfter: .seconds(600), now: start)
        s.sightRestored(now: start)
        for i in 0..<9 { _ = s.hello(FleetFixture.hello("gw-\(i)", labels: ["site": FleetPlacementTests.sites[i % 3]]), now: start) }
        for spec in FleetPlacementTests.workloads() { _ = try s.apply(spec, now: start).1 }
        return s
    }

    /// Where every replica is.
    static func placement(_ s: FleetState) -> [String: String] { s.replicas.mapValues(\.device) }

    /// One change of the kind that reaches the scheduler: a device cordoned, drained or back,
    /// a device joining, or a workload scaled.
    static func change(_ s: inout FleetState, _ rng: inout SplitMix64, now: Int64) throws {
        let device = "gw-\(Int.random(in: 0..<11, using: &rng))"
        switch Int.random(in: 0..<3, using: &rng) {
        case 0 where s.devices[device] != nil:
            _ = try s.setSchedulability(device, [.normal, .cordoned, .draining].randomElement(using: &rng) ?? .normal, now: now)
        case 1:
            _ = s.hello(FleetFixture.hello(device, labels: ["site": FleetPlacementTests.sites.randomElement(using: &rng) ?? "north"]), now: now)
        default:
            let name = ["spread", "big", "small"].randomElement(using: &rng) ?? "small"
            _ = try s.scale(workload: name, replicas: Int.random(in: 0...8, using: &rng), reason: nil, now: now)
        }
    }

    @Test("changes made while the full plan is computed are replayed: what lands, a full plan of the fleet as it then stands leaves alone")
    func replay() throws {
        for seed in 0..<40 {
            var rng = SplitMix64(state: UInt64(seed))
            var s = try Self.planned()
            let begun = Self.start + FleetState.reconcileInterval
            let started = s.beginReconciliation(now: begun)
            let (work, token) = try #require(started)
            let second = s.beginReconciliation(now: begun + 1)
            #expect(second == nil, "one reconciliation at a time")
            for k in 0..<Int.random(in: 0...5, using: &rng) { try Self.change(&s, &rng, now: begun + Int64(k)) }
            let fullPlans = s.placementStats.fullPlans
            _ = s.finishReconciliation(ComputedPlan(work), token: token, now: begun + 100)
            #expect(s.reconciling == nil)
            #expect(s.placementStats.fullPlans == fullPlans + 1, "seed \(seed): it landed")
            // What landed looked only at some devices: every device's desired state is what its rows give.
            let specs = ReplicaSpecs(s.workloads)
            for id in Set(s.devices.keys).union(s.desired.keys) {
                let rows = FleetState.specs(on: id, replicasOn: s.replicasOn, replicas: s.replicas, specs)
                #expect((s.desired[id]?.replicas ?? []) == rows, "seed \(seed): \(id)'s desired state is its rows")
            }
            let landed = Self.placement(s)
            var batch = StoreBatch()
            _ = s.replan(into: &batch, now: begun + 100)
            #expect(Self.placement(s) == landed, "seed \(seed): a full plan after it moved \(Self.placement(s).filter { landed[$0.key] != $0.value })")
            for (device, ids) in s.replicasOn where !ids.isEmpty {
                #expect(s.desired[device].map { $0.replicas.map(\.id) } == ids.sorted(), "seed \(seed): \(device)'s desired state is its rows")
            }
        }
    }

    @Test("a plan that lands with nothing placed meanwhile moves and stops what it found off the actor; one with a change meanwhile looks at every row again")
    func changesFoundOffTheActor() throws {
        for changeMeanwhile in [false, true] {
            var s = try Self.planned()
            // Rows the plan will not keep: a replica beyond its workload's count, and one on a
            // device that is gone.
            let extra = ReplicaRow(id: "small-99", workload: "small", ordinal: 99, device: "gw-0", updatedAt: Self.start)
            s.replicas[extra.id] = extra
            s.replicasOn["gw-0", default: []].insert(extra.id)
            s.replicasOf["small", default: []].insert(extra.id)
            let strayID = try #require(s.replicasOf["big"]?.sorted().first)
            let stray = try #require(s.replicas[strayID])
            s.replicasOn[stray.device]?.remove(strayID)
            s.replicas[strayID]?.device = "gw-gone"
            s.replicasOn["gw-gone", default: []].insert(strayID)
            let begun = Self.start + FleetState.reconcileInterval
            let started = s.beginReconciliation(now: begun)
            let (work, token) = try #require(started)
            let computed = ComputedPlan(work)
            #expect(computed.stopped.contains(extra.id))
            #expect(computed.moved.contains { $0.id == strayID })
            // Meanwhile, the workload of a replica the plan moves is deleted.
            if changeMeanwhile { _ = try s.delete(workload: "big", now: begun + 1) }
            _ = s.finishReconciliation(computed, token: token, now: begun + 2)
            #expect(s.replicas[extra.id] == nil, "\(changeMeanwhile)")
            if changeMeanwhile {
                #expect(s.replicasOf["big"]?.isEmpty ?? true)
                #expect(!s.replicas.values.contains { $0.workload == "big" })
            } else {
                #expect(s.replicas[strayID].map { $0.device != "gw-gone" && s.devices[$0.device] != nil } == true)
            }
            #expect(s.replicasOn["gw-gone"]?.isEmpty ?? true)
            let specs = ReplicaSpecs(s.workloads)
            for id in Set(s.devices.keys).union(s.desired.keys) {
                #expect((s.desired[id]?.replicas ?? []) == FleetState.specs(on: id, replicasOn: s.replicasOn, replicas: s.replicas, specs), "\(changeMeanwhile): \(id)")
            }
            let landed = Self.placement(s)
            var batch = StoreBatch()
            _ = s.replan(into: &batch, now: begun + 3)
            #expect(Self.placement(s) == landed, "\(changeMeanwhile): a full plan after it moves nothing")
        }
    }

    @Test("the safety net, looked at off the actor: a device left with a desired state its rows do not give is sent the right one; the others are left alone")
    func strayDesiredFixed() throws {
        var s = try Self.planned()
        let placed = s.replicasOn.filter { !$0.value.isEmpty }.keys.sorted()
        let (stray, respecced) = (placed[0], placed[1])
        let right = try #require(s.desired[stray])
        var wrong = right
        wrong.replicas.removeLast()
        s.desired[stray] = wrong
        // The same replicas, one of them told another revision.
        let rightToo = try #require(s.desired[respecced])
        var older = rightToo
        older.replicas[0].revision = 7
        s.desired[respecced] = older
        s.desired["gone"] = DesiredRecord(device: "gone", generation: 3, replicas: right.replicas)
        let begun = Self.start + FleetState.reconcileInterval
        let started = s.beginReconciliation(now: begun)
        let (work, token) = try #require(started)
        // Meanwhile, on the actor: a workload scaled.
        _ = try s.scale(workload: "small", replicas: 1, reason: nil, now: begun + 1)
        let computed = ComputedPlan(work)
        #expect(computed.stale == [stray, respecced, "gone"])
        let effects = s.finishReconciliation(computed, token: token, now: begun + 2)
        #expect(Set(effects.publish.map(\.device)).isSuperset(of: [stray, respecced, "gone"]))
        let specs = ReplicaSpecs(s.workloads)
        for id in Set(s.devices.keys).union(s.desired.keys) {
            #expect((s.desired[id]?.replicas ?? []) == FleetState.specs(on: id, replicasOn: s.replicasOn, replicas: s.replicas, specs), "\(id)")
        }
        #expect(s.desired[respecced]?.replicas == rightToo.replicas)
        #expect(s.desired["gone"]?.replicas == [])
        #expect(effects.publish.first { $0.device == "gone" }?.generation == 4)
    }

    @Test("a plan computed from a state that was reloaded meanwhile does not land")
    func reloadDropsIt() throws {
        var s = try Self.planned()
        let begun = Self.start + FleetState.reconcileInterval
        let started = s.beginReconciliation(now: begun)
        let (work, token) = try #require(started)
        var snapshot = FleetSnapshot()
        (snapshot.devices, snapshot.workloads) = (Array(s.devices.values), Array(s.workloads.values))
        (snapshot.replicas, snapshot.desired) = (Array(s.replicas.values), Array(s.desired.values))
        s.load(snapshot)
        let effects = s.finishReconciliation(ComputedPlan(work), token: token, now: begun + 1)
        #expect(effects.batch.isEmpty && effects.publish.isEmpty)
        #expect(s.scheduler == nil, "the next change plans afresh")
    }

    @Test("the fleet starts the periodic full plan from its sweep and installs it when it is computed")
    func throughTheActor() async throws {
        let (fleet, _, _) = try await FleetFixture.fleet(unreachableAfter: .seconds(3600))
        for i in 0..<9 { await fleet.hello(FleetFixture.hello("gw-\(i)", labels: ["site": FleetPlacementTests.sites[i % 3]])) }
        for spec in FleetPlacementTests.workloads() { _ = try await fleet.apply(spec) }
        let before = await fleet.summary().placement.fullPlans
        await fleet.checkPresence(now: Fleet.nowMillis())
        await fleet.reconciled()
        #expect(await fleet.summary().placement.fullPlans == before, "not due yet")
        await fleet.checkPresence(now: Fleet.nowMillis() + FleetState.reconcileInterval + 1)
        // Changes while it is computed (or just after it landed: either way the same must hold).
        _ = try await fleet.setSchedulability("gw-4", .draining)
        _ = try await fleet.scale(workload: "small", replicas: 7)
        await fleet.reconciled()
        #expect(await fleet.summary().placement.fullPlans == before + 1)
        var specs = FleetPlacementTests.workloads()
        if let k = specs.firstIndex(where: { $0.name == "small" }) { specs[k].replicas = 7 }
        try await FleetPlacementTests.checkConsistent(fleet, "after the reconciliation", specs: specs)
        #expect(try await fleet.device("gw-4").replicas.isEmpty, "the drain held")
    }

    @Test("after a restart, the first sweep plans the fleet: a quiet fleet has no other event that would")
    func firstPlanAfterRestart() async throws {
        let (fleet, _, dir) = try await FleetFixture.fleet(unreachableAfter: .seconds(3600))
        for i in 0..<3 { await fleet.hello(FleetFixture.hello("gw-\(i)")) }
        _ = try await fleet.apply(FleetFixture.workload("w", replicas: 4))
        let placed = try await fleet.workload("w").replicas.map(\.id).sorted()
        #expect(!placed.isEmpty)
        let (again, _, _) = try await FleetFixture.fleet(dir: dir, unreachableAfter: .seconds(3600))
        #expect(await again.summary().placement.fullPlans == 0)
        await again.checkPresence(now: Fleet.nowMillis())
        #expect(await again.summary().placement.fullPlans == 1, "planned at once, on the actor")
        #expect(try await again.workload("w").replicas.map(\.id).sorted() == placed, "the same placement, now held by a scheduler")
    }

    @Test("an aborted rollout puts the old revision's resources back in the plan: what the new one booked is free again")
    func abortReplans() async throws {
        let (fleet, _, _) = try await FleetFixture.fleet(unreachableAfter: .seconds(3600))
        for id in ["a", "b"] { await fleet.hello(FleetFixture.hello(id)) }
        var w = FleetFixture.workload("w", replicas: 2)
        w.maxPerDevice = 1
        w.rollout = RolloutSpec()
        _ = try await fleet.apply(w)
        var big = w
        big.resources.cpuMillis = 1500
        big.command = ["/bin/sleep", "2000"]
        _ = try await fleet.apply(big)
        #expect(try await fleet.rollout("w").state?.isActive == true)
        _ = try await fleet.control(rollout: "w", .abort)
        // 100 + 1800 fit a device of 2000; 1500 + 1800 would not.
        var filler = FleetFixture.workload("filler", replicas: 2)
        filler.maxPerDevice = 1
        filler.resources.cpuMillis = 1800
        _ = try await fleet.apply(filler)
        #expect(try await fleet.workload("filler").replicas.count == 2, "the rollback freed what revision 2 booked")
        #expect(try await fleet.preview(w).changes.isEmpty, "a full plan of the fleet as it stands moves nothing")
    }
}

/// Replica ids of a `mode: every` workload (`NAME-DEVICE`) must not be able to meet another
/// workload's.
@Suite("Replica id clashes")
struct ReplicaIDClashTests {
    @Test("a mode: every workload and one whose name extends its name with '-' are refused together, in either order, naming the field")
    func refused() async throws {
        for (first, second) in [("cam", "cam-gw"), ("cam-gw", "cam")] {
            let (fleet, _, _) = try await FleetFixture.fleet()
            await fleet.hello(FleetFixture.hello("gw-1"))
            await fleet.hello(FleetFixture.hello("1"))
            var a = FleetFixture.workload(first, replicas: first == "cam" ? 0 : 2)
            if first == "cam" { a.mode = .every }
            var b = FleetFixture.workload(second, replicas: second == "cam" ? 0 : 2)
            if second == "cam" { b.mode = .every }
            _ = try await fleet.apply(a)
            do {
                _ = try await fleet.apply(b)
                Issue.record("\(second) was applied beside \(first)")
            } catch {
                guard case .invalid(let failure) = error else { Issue.record("\(error)"); continue }
                #expect(failure.errors.map(\.path) == ["metadata.name"] && failure.description.contains("mode: every"), "\(failure)")
            }
            let ids = await fleet.deviceList().flatMap { $0.replicas.map(\.id) }
            #expect(Set(ids).count == ids.count, "no two replicas share an id: \(ids)")
        }
        // Names that only share a prefix without '-', or workloads of ordinals only, live together.
        let (fleet, _, _) = try await FleetFixture.fleet()
        await fleet.hello(FleetFixture.hello("gw-1"))
        var cam = FleetFixture.workload("cam", replicas: 0)
        cam.mode = .every
        _ = try await fleet.apply(cam)
        _ = try await fleet.apply(FleetFixture.workload("camera", replicas: 1))
        _ = try await fleet.apply(FleetFixture.workload("web", replicas: 1))
        _ = try await fleet.apply(FleetFixture.workload("web-1", replicas: 1))
    }
}
