import DroverCore
import DroverScheduler
import PropertyBased
import Testing

/// A small deterministic generator, so that one seed is one whole fleet.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension [String: Assignment] {
    /// What a controller does with a delta: removals first, then additions.
    mutating func apply(_ delta: PlanDelta) {
        for a in delta.removed { self[a.id] = nil }
        for a in delta.added { self[a.id] = a }
    }
}

enum RandomFleet {
    static func make(seed: Int) -> SchedulingInput {
        var rng = SplitMix64(state: UInt64(truncatingIfNeeded: seed))
        let sites = ["a", "b", "c"]
        let devices = (0..<Int.random(in: 1...40, using: &rng)).map { i in
            DeviceSnapshot(
                id: String(format: "d%03d", i),
                labels: ["site": sites.randomElement(using: &rng) ?? "a", "role": Bool.random(using: &rng) ? "gw" : "cam"],
                arch: Bool.random(using: &rng) ? "amd64" : "arm64",
                capacity: Resources(
                    cpuMillis: Int.random(in: 500...4000, using: &rng), memoryBytes: Int64.random(in: 128...2048, using: &rng) << 20,
                    storageBytes: 8 << 30, devices: Int.random(in: 0...3, using: &rng) == 0 ? ["gpu": Int.random(in: 1...2, using: &rng)] : [:]),
                presence: Int.random(in: 0..<10, using: &rng) == 0 ? .unreachable : .online,
                schedulability: Int.random(in: 0..<12, using: &rng) == 0 ? .cordoned : .normal,
                connectivity: ConnectivityRecord(linkClass: LinkClass.allCases.randomElement(using: &rng) ?? .wired, uptimeRatio: Double.random(in: 0.5...1, using: &rng),
                    lastSeen: Int64.random(in: 0...1_000_000, using: &rng)))
        }
        let workloads = (0..<Int.random(in: 1...8, using: &rng)).map { i in workload("w\(i)", &rng) }
        return SchedulingInput(devices: devices, workloads: workloads, current: [], now: 1_000_000)
    }

    /// One random workload: any mix of constraints, priorities, modes and strategies.
    static func workload(_ name: String, _ rng: inout SplitMix64) -> WorkloadSpec {
        var w = WorkloadSpec(
            name: name, replicas: Int.random(in: 0...12, using: &rng),
            resources: Resources(cpuMillis: Int.random(in: 50...1500, using: &rng), memoryBytes: Int64.random(in: 16...1024, using: &rng) << 20),
            command: ["/bin/true"])
        if Bool.random(using: &rng) { w.selector = LabelSelector(matchLabels: ["role": Bool.random(using: &rng) ? "gw" : "cam"]) }
        if Int.random(in: 0..<3, using: &rng) == 0 { w.selector.matchExpressions = [.init(key: "site", operator: .notIn, values: ["c"])] }
        if Int.random(in: 0..<3, using: &rng) == 0 { w.arch = ["arm64"] }
        if Int.random(in: 0..<4, using: &rng) == 0 { w.resources.devices = ["gpu": 1] }
        if Int.random(in: 0..<3, using: &rng) == 0 { w.spread = SpreadConstraint(labelKey: "site", maxSkew: Int.random(in: 1...2, using: &rng)) }
        if Int.random(in: 0..<4, using: &rng) == 0 { w.connectivity = ConnectivityNeeds(minLinkClass: .wifi, minUptime: 0.7) }
        if Int.random(in: 0..<3, using: &rng) == 0 { w.connectivity.tolerateOfflineSeconds = Int.random(in: 0...900, using: &rng) }
        if Int.random(in: 0..<5, using: &rng) == 0 { w.mode = .every }
        w.priority = Int.random(in: 0...3, using: &rng)
        w.maxPerDevice = Int.random(in: 1...2, using: &rng)
        w.strategy = Bool.random(using: &rng) ? .binPack : .spreadLoad
        return w
    }

    /// How many devices an unplaced replica's reasons count, and how many they should: one for
    /// a `mode: every` replica (named after its device), else the whole fleet.
    static func explained(_ u: Unplaced, devices: Int) -> (total: Int, expected: Int) {
        let total = u.reasons.compactMap { line in line.split(separator: " ").first.flatMap { Int($0) } }.reduce(0, +)
        return (total, u.id.hasPrefix("\(u.workload)-d") ? 1 : devices)
    }

    /// Every hard constraint a new placement must satisfy, checked independently of the scheduler.
    static func violations(_ w: WorkloadSpec, _ d: DeviceSnapshot) -> [String] {
        var v: [String] = []
        if d.presence != .online { v.append("offline") }
        if d.schedulability != .normal { v.append("cordoned") }
        if w.selector.firstMismatch(d.labels) != nil { v.append("selector") }
        if !w.arch.isEmpty, !w.arch.contains(d.arch) { v.append("arch") }
        if let m = w.connectivity.minLinkClass, d.connectivity.linkClass < m { v.append("link") }
        if let m = w.connectivity.minUptime, d.connectivity.uptimeRatio < m { v.append("uptime") }
        if let s = w.spread, d.labels[s.labelKey] == nil { v.append("spread label") }
        return v
    }
}

@Suite("Scheduler properties over random fleets")
struct SchedulerPropertyTests {
    static let seeds = Gen.int(in: 0...1_000_000_000)

    @Test("no device is ever over-committed on any resource, nor over maxPerDevice")
    func neverOvercommitted() async {
        await propertyCheck(count: 300, input: Self.seeds) { seed in
            let input = RandomFleet.make(seed: seed)
            let plan = Scheduler.plan(input)
            let specs = Dictionary(uniqueKeysWithValues: input.workloads.map { ($0.name, $0) })
            for device in input.devices {
                let mine = plan.assignments.filter { $0.device == device.id }
                let used = mine.compactMap { specs[$0.workload]?.resources }.reduce(Resources.zero, +)
                #expect(device.capacity.fits(used), "seed \(seed): \(device.id) over-committed: \(used) > \(device.capacity)")
                for (w, list) in Dictionary(grouping: mine, by: \.workload) {
                    #expect(list.count <= specs[w]?.maxPerDevice ?? 1, "seed \(seed): \(w) has \(list.count) on \(device.id)")
                }
            }
        }
    }

    @Test("every placed replica satisfies every hard constraint")
    func hardConstraintsHold() async {
        await propertyCheck(count: 300, input: Self.seeds) { seed in
            let input = RandomFleet.make(seed: seed)
            let devices = Dictionary(uniqueKeysWithValues: input.devices.map { ($0.id, $0) })
            let specs = Dictionary(uniqueKeysWithValues: input.workloads.map { ($0.name, $0) })
            for a in Scheduler.plan(input).assignments {
                guard let w = specs[a.workload], let d = devices[a.device] else {
                    Issue.record("seed \(seed): \(a) names an unknown workload or device")
                    continue
                }
                #expect(RandomFleet.violations(w, d).isEmpty, "seed \(seed): \(a.id) on \(d.id) breaks \(RandomFleet.violations(w, d))")
            }
        }
    }

    @Test("the same input gives the same plan, whatever its order")
    func deterministic() async {
        await propertyCheck(count: 200, input: Self.seeds) { seed in
            let input = RandomFleet.make(seed: seed)
            var shuffled = input
            var rng = SplitMix64(state: UInt64(seed))
            shuffled.devices.shuffle(using: &rng)
            shuffled.workloads.shuffle(using: &rng)
            let a = Scheduler.plan(input)
            let b = Scheduler.plan(shuffled)
            #expect(a.assignments == b.assignments, "seed \(seed)")
            #expect(a.unplaced == b.unplaced, "seed \(seed)")
        }
    }

    @Test("spread skew stays within maxSkew across the domains a workload may use")
    func spreadSkew() async {
        await propertyCheck(count: 300, input: Self.seeds) { seed in
            let input = RandomFleet.make(seed: seed)
            let plan = Scheduler.plan(input)
            let devices = Dictionary(uniqueKeysWithValues: input.devices.map { ($0.id, $0) })
            for w in input.workloads where w.mode == .replicas {
                guard let spread = w.spread else { continue }
                let domains = Set(input.devices.filter { RandomFleet.violations(w, $0).isEmpty }.compactMap { $0.labels[spread.labelKey] })
                var counts = Dictionary(uniqueKeysWithValues: domains.map { ($0, 0) })
                for a in plan.assignments where a.workload == w.name {
                    if let v = devices[a.device]?.labels[spread.labelKey] { counts[v, default: 0] += 1 }
                }
                let skew = (counts.values.max() ?? 0) - (counts.values.min() ?? 0)
                #expect(skew <= spread.maxSkew, "seed \(seed): \(w.name) skew \(skew) > \(spread.maxSkew): \(counts)")
            }
        }
    }

    @Test("an unplaced replica carries a reason for every device")
    func everyDeviceExplained() async {
        await propertyCheck(count: 300, input: Self.seeds) { seed in
            let input = RandomFleet.make(seed: seed)
            for u in Scheduler.plan(input).unplaced {
                let (total, expected) = RandomFleet.explained(u, devices: input.devices.count)
                #expect(total == expected, "seed \(seed): \(u.id) explains \(total) of \(expected) devices: \(u.reasons)")
            }
        }
    }
}

@Suite("Incremental scheduler")
struct IncrementalSchedulerTests {
    /// One random change to one device: lost (some time before `now`), drained, back,
    /// relabelled (also to a spread value no device had, or none), or resized.
    static func change(_ device: inout DeviceSnapshot, now: Int64, _ rng: inout SplitMix64) {
        switch Int.random(in: 0..<7, using: &rng) {
        case 0: device.presence = .unreachable; device.connectivity.lastSeen = Int64.random(in: 0...now, using: &rng)
        case 1: device.schedulability = .draining
        case 2: device.presence = .online; device.schedulability = .normal
        case 3: device.labels["role"] = device.labels["role"] == "gw" ? "cam" : "gw"
        case 4: device.labels["site"] = ["a", "b", "c", "d"].randomElement(using: &rng)
        case 5: device.labels["site"] = nil
        default: device.capacity.cpuMillis = Int.random(in: 0...4000, using: &rng)
        }
    }

    @Test("after a device changes or joins, the incremental plan equals a full plan, and its deltas add up")
    func sameAsFullPlan() async {
        await propertyCheck(count: 300, input: SchedulerPropertyTests.seeds) { seed in
            var input = RandomFleet.make(seed: seed)
            let first = Scheduler.plan(input)
            input.current = first.assignments
            let incremental = IncrementalScheduler(input)
            #expect(incremental.plan.assignments == first.assignments, "seed \(seed): the same start")
            var rng = SplitMix64(state: UInt64(seed) &+ 7)
            var applied = Dictionary(uniqueKeysWithValues: first.assignments.map { ($0.id, $0) })
            for step in 0..<3 {
                // Time passes: replicas on unreachable devices fall due past tolerateOffline, and
                // the controller's periodic check updates each such device. Several falling due
                // at once may land elsewhere than one full plan would put them: that is the new start.
                input.now += Int64.random(in: 0...400_000, using: &rng)
                for d in input.devices where d.presence == .unreachable {
                    applied.apply(incremental.update(device: d, now: input.now))
                }
                input.current = incremental.plan.assignments
                #expect(Set(applied.values) == Set(input.current), "seed \(seed) step \(step): the sweep's deltas add up")
                guard var device = input.devices.randomElement(using: &rng) else { return }
                if Int.random(in: 0..<4, using: &rng) == 0 {
                    // A device joins, its id anywhere in the order.
                    device.id = String(format: "d%03d", Int.random(in: 0...60, using: &rng)) + "-new\(step)"
                    device.presence = .online
                    device.schedulability = .normal
                    input.devices.append(device)
                } else {
                    Self.change(&device, now: input.now, &rng)
                    input.devices = input.devices.map { $0.id == device.id ? device : $0 }
                }
                applied.apply(incremental.update(device: device, now: input.now))
                let full = Scheduler.plan(input)
                #expect(incremental.plan.assignments == full.assignments, "seed \(seed) step \(step)")
                // The same replicas wait. Their reasons may differ in counts and "most free"
                // figures: an update explains against the fleet after all its moves, a full plan
                // against the fleet at that workload's turn.
                #expect(Set(incremental.unplaced.map(\.id)) == Set(full.unplaced.map(\.id)), "seed \(seed) step \(step)")
                for u in incremental.unplaced {
                    let (total, expected) = RandomFleet.explained(u, devices: input.devices.count)
                    #expect(total == expected, "seed \(seed): \(u.id) explains \(total) of \(expected) devices: \(u.reasons)")
                }
                #expect(Set(applied.values) == Set(full.assignments), "seed \(seed) step \(step): the deltas add up to the plan")
                input.current = full.assignments
            }
        }
    }
}
