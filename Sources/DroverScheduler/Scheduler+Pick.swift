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

    init(spec: WorkloadSpec, state: PlanState) {
        func resolve(_ t: AffinityTerm) -> Term {
            let w = state.workloadIndex[t.workload]
            let devices = Set(w.map { state.hosts[$0].filter { $0.value > 0 }.keys } ?? [:].keys)
            let values = t.labelKey.map { key in Set(devices.compactMap { state.devices[Int($0)].labels[key] }) } ?? []
            return Term(workload: t.workload, devices: devices, labelKey: t.labelKey, values: values)
        }
        required = spec.affinity.map(resolve)
        forbidden = spec.antiAffinity.map(resolve)
    }

    private static func matches(_ t: Term, _ d: DeviceSnapshot, _ i: Int32) -> Bool {
        guard let key = t.labelKey else { return t.devices.contains(i) }
        return d.labels[key].map { t.values.contains($0) } ?? false
    }

    func rejection(_ d: DeviceSnapshot, _ i: Int32) -> RejectionReason? {
        for t in required where !Self.matches(t, d, i) { return .affinityUnmet(t.workload) }
        for t in forbidden where Self.matches(t, d, i) { return .antiAffinity(t.workload) }
        return nil
    }
}

/// Chooses devices for one workload's replicas: a heap of candidates per spread domain (one
/// heap without spread), scores updated lazily as devices fill.
struct DevicePicker {
    let spec: WorkloadSpec
    let w: Int
    var heaps: [DeviceHeap]
    var domainNames: [String]
    var domainOf: [Int32: Int] = [:]
    var domainCount: [Int]
    var versions: [Int32: Int32] = [:]
    /// Set when the last failure was the spread constraint.
    var skewBlocked: SpreadConstraint?

    init(spec: WorkloadSpec, workload w: Int, candidates: [Int32], state: PlanState) {
        self.spec = spec
        self.w = w
        guard let spread = spec.spread else {
            var heap = DeviceHeap()
            heap.build(candidates.map { DeviceHeap.Entry(score: Self.score(spec, state.devices[Int($0)], state.free[Int($0)]), device: $0, version: 0) })
            heaps = [heap]
            domainNames = [""]
            domainCount = [0]
            return
        }
        var names = Set<String>()
        for c in candidates { if let v = state.devices[Int(c)].labels[spread.labelKey] { names.insert(v) } }
        domainNames = names.sorted()
        let index = Dictionary(uniqueKeysWithValues: domainNames.enumerated().map { ($0.element, $0.offset) })
        var entries = Array(repeating: [DeviceHeap.Entry](), count: domainNames.count)
        for c in candidates {
            guard let v = state.devices[Int(c)].labels[spread.labelKey], let k = index[v] else { continue }
            domainOf[c] = k
            entries[k].append(DeviceHeap.Entry(score: Self.score(spec, state.devices[Int(c)], state.free[Int(c)]), device: c, version: 0))
        }
        heaps = entries.map { e in
            var h = DeviceHeap()
            h.build(e)
            return h
        }
        // Replicas already in a domain count, wherever they run in it.
        domainCount = Array(repeating: 0, count: domainNames.count)
        for (d, n) in state.hosts[w] where n > 0 {
            if let v = state.devices[Int(d)].labels[spread.labelKey], let k = index[v] { domainCount[k] += n }
        }
    }

    /// Connectivity quality, then load by the workload's strategy; in 0...1.
    static func score(_ spec: WorkloadSpec, _ d: DeviceSnapshot, _ free: Resources) -> Double {
        let c = d.connectivity
        let rtt = c.rttMillis.map { 1 - min(max($0, 0), 1000) / 1000 } ?? 0.5
        let link: Double = switch c.linkClass {
        case .satellite: 0
        case .cellular: 1.0 / 3
        case .wifi: 2.0 / 3
        case .wired: 1
        }
        let connectivity = 0.5 * c.uptimeRatio + 0.3 * link + 0.2 * rtt
        // No array here: this runs for every candidate of every workload placed.
        var sum = 0.0
        var dims = 0.0
        if d.capacity.cpuMillis > 0 {
            sum += Double(free.cpuMillis) / Double(d.capacity.cpuMillis)
            dims += 1
        }
        if d.capacity.memoryBytes > 0 {
            sum += Double(free.memoryBytes) / Double(d.capacity.memoryBytes)
            dims += 1
        }
        let freeFraction = dims == 0 ? 0 : sum / dims
        let load = spec.strategy == .spreadLoad ? freeFraction : 1 - freeFraction
        return 0.7 * load + 0.3 * connectivity
    }

    /// Drops stale entries and devices that can no longer take a replica from heap `k`.
    private mutating func cleanTop(_ k: Int, state: PlanState) -> Int32? {
        while let top = heaps[k].top {
            let d = top.device
            if top.version != versions[d, default: 0] || state.hosts[w][d, default: 0] >= spec.maxPerDevice
                || !state.free[Int(d)].fits(spec.resources) {
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
        for k in domainNames.indices {
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
        guard let k = domainOf[d], let minimum = domainCount.min() else { return false }
        return domainCount[k] + 1 - minimum <= spread.maxSkew
    }

    mutating func placed(on d: Int32, state: PlanState) {
        let version = versions[d, default: 0] + 1
        versions[d] = version
        let k = spec.spread == nil ? 0 : domainOf[d]
        guard let k else { return }
        domainCount[k] += 1
        if state.hosts[w][d, default: 0] < spec.maxPerDevice, state.free[Int(d)].fits(spec.resources) {
            heaps[k].push(DeviceHeap.Entry(score: Self.score(spec, state.devices[Int(d)], state.free[Int(d)]), device: d, version: version))
        }
    }
}
