import DroverCore

/// Affinity and anti-affinity terms of one workload, resolved against what is placed so far.
struct AffinityFilter {
    struct Term {
        var workload: String
        var devices: Set<Int32>
        var labelKey: String?
        var values: Set<String>
    }

    var required: [Term] = []
    var forbidden: [Term] = []
    /// Devices where another workload's replica listens on one of this workload's ports.
    var portsTaken: [Int32: (port: Int, workload: String)] = [:]

    init(spec: WorkloadSpec, state: PlanState) {
        func resolve(_ t: AffinityTerm) -> Term {
            let w = state.workloadIndex[t.workload]
            let devices = Set(w.map { state.hosts[$0].filter { $0.value > 0 }.keys } ?? [:].keys)
            let values = t.labelKey.map { key in Set(devices.compactMap { state.devices[Int($0)].labels[key] }) } ?? []
            return Term(workload: t.workload, devices: devices, labelKey: t.labelKey, values: values)
        }
        required = spec.affinity.map(resolve)
        forbidden = spec.antiAffinity.map(resolve)
        guard !spec.ports.isEmpty else { return }
        let ports = Set(spec.ports)
        for (w, other) in state.workloads.enumerated() where other.name != spec.name {
            guard let port = other.ports.first(where: ports.contains) else { continue }
            for (device, count) in state.hosts[w] where count > 0 && portsTaken[device] == nil { portsTaken[device] = (port, other.name) }
        }
    }

    /// Whether placing this workload depends on where others are (no cached candidates).
    static func dependsOnOthers(_ spec: WorkloadSpec) -> Bool {
        !spec.affinity.isEmpty || !spec.antiAffinity.isEmpty || !spec.ports.isEmpty
    }

    private static func matches(_ t: Term, _ d: DeviceSnapshot, _ i: Int32) -> Bool {
        guard let key = t.labelKey else { return t.devices.contains(i) }
        return d.labels[key].map { t.values.contains($0) } ?? false
    }

    func rejection(_ d: DeviceSnapshot, _ i: Int32) -> RejectionReason? {
        for t in required where !Self.matches(t, d, i) { return .affinityUnmet(t.workload) }
        for t in forbidden where Self.matches(t, d, i) { return .antiAffinity(t.workload) }
        if let taken = portsTaken[i] { return .portTaken(port: taken.port, by: taken.workload) }
        return nil
    }
}

/// Chooses devices for one workload's replicas: a heap of candidates per spread domain (one
/// heap without spread), scores updated lazily as devices fill.
struct DevicePicker {
    let spec: WorkloadSpec
    let w: Int
    var heaps: [DeviceHeap]
    /// Per device: index of its domain among `domainCount` (spread only), else -1.
    var domainOf: [Int32] = []
    var domainCount: [Int]
    var versions: [Int32: Int32] = [:]
    /// Per heap: its top was checked and nothing was placed in its domain since. Only a
    /// placement makes a top stale, so a pick looks again only at the heap it placed from:
    /// looking at every domain's heap on every pick made a 5,000-replica workload spread over
    /// 100 sites four times as slow to place.
    var clean: [Bool] = []
    /// Set when the last failure was the spread constraint.
    var skewBlocked: SpreadConstraint?

    /// With spread, `state.ensureDomains(spec.spread.labelKey)` must have run.
    init(spec: WorkloadSpec, workload w: Int, candidates: [Int32], state: PlanState) {
        self.spec = spec
        self.w = w
        guard let spread = spec.spread, let index = state.domains[spread.labelKey] else {
            var heap = DeviceHeap()
            heap.build(candidates.map { DeviceHeap.Entry(score: state.score(spec, Int($0)), device: $0, version: 0) })
            heaps = [heap]
            domainCount = [0]
            clean = [false]
            return
        }
        // Only the domains that hold a candidate take part; they keep the global name order.
        var local = Array(repeating: Int32(-1), count: index.names.count)
        var entries: [[DeviceHeap.Entry]] = []
        domainOf = Array(repeating: -1, count: state.devices.count)
        for c in candidates {
            let g = Int(index.ofDevice[Int(c)])
            guard g >= 0 else { continue }
            if local[g] < 0 {
                local[g] = 0  // marked; numbered below in name order
            }
        }
        var next: Int32 = 0
        for g in local.indices where local[g] >= 0 {
            local[g] = next
            next += 1
        }
        entries = Array(repeating: [], count: Int(next))
        for c in candidates {
            let g = Int(index.ofDevice[Int(c)])
            guard g >= 0 else { continue }
            let k = local[g]
            domainOf[Int(c)] = k
            entries[Int(k)].append(DeviceHeap.Entry(score: state.score(spec, Int(c)), device: c, version: 0))
        }
        heaps = entries.map { e in
            var h = DeviceHeap()
            h.build(e)
            return h
        }
        clean = Array(repeating: false, count: heaps.count)
        // Replicas already in a domain count, wherever they run in it.
        domainCount = Array(repeating: 0, count: Int(next))
        for (d, n) in state.hosts[w] where n > 0 {
            let g = Int(index.ofDevice[Int(d)])
            if g >= 0, local[g] >= 0 { domainCount[Int(local[g])] += n }
        }
    }

    /// Drops stale entries and devices that can no longer take a replica from heap `k`.
    private mutating func cleanTop(_ k: Int, state: PlanState) -> Int32? {
        if clean[k] { return heaps[k].top?.device }
        clean[k] = true
        while let top = heaps[k].top {
            let d = top.device
            if top.version != versions[d, default: 0] || state.hosts[w][d, default: 0] >= spec.maxPerDevice
                || !state.fits(Int(d), spec.resources) {
                _ = heaps[k].pop()
                continue
            }
            return d
        }
        return nil
    }

    mutating func pick(state: PlanState) -> Int32? {
        skewBlocked = nil
        guard let spread = spec.spread else { return cleanTop(0, state: state) }
        guard let minimum = domainCount.min() else { return nil }
        var best: (k: Int, d: Int32)?
        for k in heaps.indices {
            guard let d = cleanTop(k, state: state) else { continue }
            if let b = best, domainCount[b.k] <= domainCount[k] { continue }
            best = (k, d)
        }
        guard let best else { return nil }
        guard domainCount[best.k] + 1 - minimum <= spread.maxSkew else {
            skewBlocked = spread
            return nil
        }
        return best.d
    }

    /// Whether one more replica on device `d` keeps the spread within maxSkew.
    func spreadAllows(_ d: Int32) -> Bool {
        guard let spread = spec.spread else { return true }
        guard Int(d) < domainOf.count, domainOf[Int(d)] >= 0, let minimum = domainCount.min() else { return false }
        return domainCount[Int(domainOf[Int(d)])] + 1 - minimum <= spread.maxSkew
    }

    mutating func placed(on d: Int32, state: PlanState) {
        let version = versions[d, default: 0] + 1
        versions[d] = version
        var k = 0
        if spec.spread != nil {
            guard Int(d) < domainOf.count, domainOf[Int(d)] >= 0 else { return }
            k = Int(domainOf[Int(d)])
        }
        domainCount[k] += 1
        clean[k] = false
        if state.hosts[w][d, default: 0] < spec.maxPerDevice, state.fits(Int(d), spec.resources) {
            heaps[k].push(DeviceHeap.Entry(score: state.score(spec, Int(d)), device: d, version: version))
        }
    }
}
