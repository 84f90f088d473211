import DroverAPI
import DroverCore
import DroverController
import DroverProtocol
import DroverScheduler
import Testing

/// The controller re-plans device changes through the incremental scheduler. Whatever the
/// sequence of events, what it holds must stay a plan a full re-plan would leave alone, its
/// rows and desired state must agree, and a restarted controller must read the same back.
@Suite("Fleet placement")
struct FleetPlacementTests {
    static let sites = ["north", "south", "east"]

    static func workloads() -> [WorkloadSpec] {
        var spread = FleetFixture.workload("spread", replicas: 4)
        spread.spread = SpreadConstraint(labelKey: "site", maxSkew: 1)
        spread.connectivity.tolerateOfflineSeconds = 0
        var big = FleetFixture.workload("big", replicas: 3)
        big.resources = Resources(cpuMillis: 900, memoryBytes: 256 << 20)
        big.priority = 10
        var small = FleetFixture.workload("small", replicas: 6)
        small.maxPerDevice = 2
        small.strategy = .binPack
        small.connectivity.tolerateOfflineSeconds = 30
        var every = FleetFixture.workload("every", replicas: 0)
        every.mode = .every
        every.selector = LabelSelector(matchLabels: ["site": "north"])
        return [spread, big, small, every]
    }

    /// Checks what must hold after every event.
    static func checkConsistent(_ fleet: Fleet, _ context: String, specs: [WorkloadSpec] = workloads()) async throws {
        let desired = Dictionary(uniqueKeysWithValues: await fleet.allDesired().map { ($0.device, $0) })
        var rows = 0
        for view in await fleet.deviceList() {
            let ids = view.replicas.map(\.id).sorted()
            #expect(ids == (desired[view.record.id]?.replicas.map(\.id) ?? []).sorted(), "\(context): rows and desired state of \(view.record.id) agree")
            #expect(view.allocated.cpuMillis <= view.record.facts.capacity.cpuMillis, "\(context): \(view.record.id) over-committed")
            #expect(view.allocated.memoryBytes <= view.record.facts.capacity.memoryBytes, "\(context): \(view.record.id) over-committed")
            rows += ids.count
        }
        #expect(rows == (await fleet.workloadList()).map(\.replicas.count).reduce(0, +), "\(context): every row is on a known device")
        for spec in specs {
            // A full plan of the fleet as it stands moves nothing: the incremental result is its fixed point.
            let preview = try await fleet.preview(spec)
            #expect(preview.changes.isEmpty, "\(context): a full plan would still \(preview.changes.map { "\($0.action) \($0.replica) on \($0.device)" })")
        }
    }

    @Test("random device events keep rows, desired state and a full re-plan in agreement, and survive a restart")
    func randomEvents() async throws {
        let (fleet, _, dir) = try await FleetFixture.fleet(unreachableAfter: .seconds(600))
        var ids = (0..<9).map { "gw-\($0)" }
        for (i, id) in ids.enumerated() { await fleet.hello(FleetFixture.hello(id, labels: ["site": Self.sites[i % 3]])) }
        for spec in Self.workloads() { _ = try await fleet.apply(spec) }
        try await Self.checkConsistent(fleet, "start")
        var rng = SplitMix64(state: 42)
        var offset: Int64 = 0
        for step in 0..<60 {
            let id = ids.randomElement(using: &rng) ?? "gw-0"
            let context = "step \(step)"
            switch Int.random(in: 0..<8, using: &rng) {
            case 7:
                // A device joins, its id anywhere in the order.
                let joined = "gw-\(Int.random(in: 0...9, using: &rng))-\(step)"
                ids.append(joined)
                await fleet.hello(FleetFixture.hello(joined, labels: ["site": Self.sites.randomElement(using: &rng) ?? "east"]))
            case 0: await fleet.state(DeviceState(device: id, state: .offline))
            case 1: await fleet.state(DeviceState(device: id, state: .online))
            case 2: _ = try await fleet.setSchedulability(id, .cordoned)
            case 3: _ = try await fleet.setSchedulability(id, .draining)
            case 4: _ = try await fleet.setSchedulability(id, .normal)
            case 5:
                // Facts changed: less memory, or another site.
                let site = Self.sites.randomElement(using: &rng) ?? "north"
                await fleet.hello(FleetFixture.hello(id, labels: ["site": site], memory: Bool.random(using: &rng) ? 1 << 30 : 384 << 20))
            default:
                offset += Int64.random(in: 0...40_000, using: &rng)
                await fleet.checkPresence(now: Fleet.nowMillis() + offset)
                await fleet.reconciled()
            }
            try await Self.checkConsistent(fleet, context)
        }
        let before = await fleet.workloadList().map { ($0.spec.name, $0.replicas.map(\.device)) }
        let (again, _, _) = try await FleetFixture.fleet(dir: dir, unreachableAfter: .seconds(600))
        let after = await again.workloadList().map { ($0.spec.name, $0.replicas.map(\.device)) }
        #expect(before.map(\.0) == after.map(\.0) && before.map(\.1) == after.map(\.1), "the store holds what memory held")
        #expect(await again.allDesired().map(\.generation) == (await fleet.allDesired()).map(\.generation))
    }

    @Test("random workload changes go through the incremental scheduler and keep rows, desired state and a full re-plan in agreement")
    func randomWorkloadChanges() async throws {
        let (fleet, publisher, _) = try await FleetFixture.fleet(unreachableAfter: .seconds(600))
        for i in 0..<9 {
            // Devices with storage to offer, so that a workload's storage can change and still fit.
            var hello = FleetFixture.hello("gw-\(i)", labels: ["site": Self.sites[i % 3]])
            hello.facts.capacity.storageBytes = 8 << 30
            await fleet.hello(hello)
        }
        var specs = Dictionary(uniqueKeysWithValues: Self.workloads().map { ($0.name, $0) })
        for spec in specs.values.sorted(by: { $0.name < $1.name }) { _ = try await fleet.apply(spec) }
        let fullPlans = await fleet.summary().placement.fullPlans
        var rng = SplitMix64(state: 7)
        for step in 0..<40 {
            try await Self.changeWorkload(fleet, &specs, step: step, &rng)
            try await Self.checkConsistent(fleet, "step \(step)", specs: Array(specs.values))
        }
        #expect(await fleet.summary().placement.fullPlans == fullPlans, "no workload change ran a full plan")
        // A new revision reaches every device that runs the workload, and only those.
        var revised = FleetFixture.workload("revised", replicas: 5)
        revised.resources.storageBytes = 1 << 30
        _ = try await fleet.apply(revised)
        let sent = publisher.all.count
        revised.command = ["/bin/sleep", "2"]
        _ = try await fleet.apply(revised)
        let hosts = Set(try await fleet.workload("revised").replicas.map(\.device))
        #expect(!hosts.isEmpty)
        #expect(Set(publisher.all.dropFirst(sent).map(\.device)) == hosts)
        #expect(publisher.all.dropFirst(sent).allSatisfy { d in d.replicas.filter { $0.workload == "revised" }.allSatisfy { $0.command == ["/bin/sleep", "2"] } })
        // So does a change of what they run that is not a new revision (storage, devices).
        let again = publisher.all.count
        revised.resources.storageBytes = 512 << 20
        _ = try await fleet.apply(revised)
        #expect(try await fleet.workload("revised").replicas.map(\.device).sorted() == hosts.sorted(), "nothing moved")
        #expect(Set(publisher.all.dropFirst(again).map(\.device)) == hosts)
        #expect(publisher.all.dropFirst(again).allSatisfy { d in d.replicas.filter { $0.workload == "revised" }.allSatisfy { $0.resources.storageBytes == 512 << 20 } })
    }

    /// One random change: a scale, a new size or priority, a new workload, or a deletion.
    static func changeWorkload(_ fleet: Fleet, _ specs: inout [String: WorkloadSpec], step: Int, _ rng: inout SplitMix64) async throws {
        let names = specs.keys.sorted()
        guard let name = names.randomElement(using: &rng), Int.random(in: 0..<6, using: &rng) != 0 else {
            var fresh = FleetFixture.workload("new-\(step)", replicas: Int.random(in: 1...6, using: &rng))
            fresh.priority = Int.random(in: 0...12, using: &rng)
            specs[fresh.name] = fresh
            _ = try await fleet.apply(fresh)
            return
        }
        guard var spec = specs[name] else { return }
        switch Int.random(in: 0..<5, using: &rng) {
        case 0:
            specs[name] = nil
            try await fleet.delete(workload: name)
            return
        case 1:
            spec.replicas = Int.random(in: 0...8, using: &rng)
            _ = try await fleet.scale(workload: name, replicas: spec.replicas)
            specs[name] = spec
            return
        case 2: spec.resources.cpuMillis = Int.random(in: 100...1200, using: &rng)
        case 3: spec.priority = Int.random(in: 0...12, using: &rng)
        default: spec.maxPerDevice = Int.random(in: 1...3, using: &rng)
        }
        specs[name] = spec
        _ = try await fleet.apply(spec)
    }

    @Test("losing a device re-publishes only the devices whose replicas changed; a join places without a full plan")
    func lossTouchesFew() async throws {
        let (fleet, publisher, _) = try await FleetFixture.fleet()
        let ids = (0..<12).map { "gw-\($0)" }
        for id in ids { await fleet.hello(FleetFixture.hello(id)) }
        var spec = FleetFixture.workload("w", replicas: 6)
        spec.connectivity.tolerateOfflineSeconds = 0
        _ = try await fleet.apply(spec)
        let lost = try #require(try await fleet.workload("w").replicas.first?.device)
        let sent = publisher.all.count
        let stats = await fleet.summary().placement
        await fleet.state(DeviceState(device: lost, state: .offline))
        let after = await fleet.summary().placement
        #expect(after.fullPlans == stats.fullPlans && after.incrementalPlans == stats.incrementalPlans + 1, "re-planned incrementally: \(after)")
        let republished = publisher.all.dropFirst(sent).map(\.device)
        let now = try await fleet.workload("w").replicas.map(\.device)
        #expect(!now.contains(lost))
        #expect(now.count == 6)
        // The lost device (told to stop) and the one that took its replica; nobody else.
        #expect(republished.count == 2, "republished: \(republished)")
        #expect(Set(republished).contains(lost))

        // A device joining takes the replica that had nowhere to go, without a full plan.
        _ = try await fleet.scale(workload: "w", replicas: 12)
        #expect(try await fleet.workload("w").unplaced.count == 1)
        let full = await fleet.summary().placement.fullPlans
        await fleet.hello(FleetFixture.hello("gw-10-new"))
        #expect(try await fleet.workload("w").replicas.contains { $0.device == "gw-10-new" })
        #expect(try await fleet.workload("w").unplaced.isEmpty)
        #expect(await fleet.summary().placement.fullPlans == full)
    }
}
