import DroverCore

/// Capacity- and connectivity-aware placement. Pure and deterministic: same input, same plan,
/// whatever the order of the input arrays.
///
/// Workloads are placed by priority (highest first), then name. Replicas already placed stay
/// while their device still qualifies, so a change moves only what must move; missing replicas
/// go to the best-scoring feasible device (connectivity quality, then `spreadLoad` or
/// `binPack`, ties to the smallest device id). A replica that finds no room may evict replicas
/// of lower priority. Every replica left unplaced carries the reason of every device.
public enum Scheduler {
    public static func plan(_ input: SchedulingInput) -> PlacementPlan {
        var state = PlanState(input)
        state.keepCurrent()
        for w in state.workloads.indices { state.place(workload: w) }
        return state.result()
    }
}

struct PlanState {
    var devices: [DeviceSnapshot]
    var deviceIndex: [String: Int32]
    /// Priority descending, then name.
    var workloads: [WorkloadSpec]
    var workloadIndex: [String: Int]
    /// The time `keepRejection` compares offline devices against (tolerateOffline).
    var now: Int64
    let current: [Assignment]

    var free: [Resources]
    /// Per device, what scoring needs, kept out of `DeviceSnapshot` so that the hot loop copies
    /// no strings or dictionaries.
    var connectivityScore: [Double]
    var capacityCPU: [Int]
    var capacityMemory: [Int64]
    /// Per spread label key: the sorted label values, and each device's index into them (-1: none).
    var domains: [String: (names: [String], ofDevice: [Int32])] = [:]
    /// Every assignment made or kept, by slot; nil once released. Released slots are reused,
    /// so that moving replicas never grows (and reallocates) these million-entry arrays.
    var placed: [Assignment?] = []
    var placedWorkload: [Int32] = []
    var placedDevice: [Int32] = []
    var freeSlots: [Int32] = []
    /// Slots committed since `journal` was last emptied, when it is not nil (incremental updates).
    var journal: [Int32]?
    var onDevice: [[Int32]]
    /// Per workload: device → replicas of it there.
    var hosts: [[Int32: Int]]
    /// Per workload: ordinals already placed (mode: replicas).
    var ordinals: [Set<Int>]
    var unplaced: [Unplaced] = []
    var preempted: [Assignment] = []

    init(_ input: SchedulingInput) {
        let sortedDevices = input.devices.sorted { $0.id < $1.id }
        devices = sortedDevices
        deviceIndex = Dictionary(sortedDevices.enumerated().map { ($0.element.id, Int32($0.offset)) }, uniquingKeysWith: { a, _ in a })
        let sortedWorkloads = input.workloads.sorted { ($1.priority, $0.name) < ($0.priority, $1.name) }
        workloads = sortedWorkloads
        workloadIndex = Dictionary(sortedWorkloads.enumerated().map { ($0.element.name, $0.offset) }, uniquingKeysWith: { a, _ in a })
        now = input.now
        current = input.current
        free = sortedDevices.map(\.capacity)
        connectivityScore = sortedDevices.map(Self.connectivityScore)
        capacityCPU = sortedDevices.map(\.capacity.cpuMillis)
        capacityMemory = sortedDevices.map(\.capacity.memoryBytes)
        onDevice = Array(repeating: [], count: sortedDevices.count)
        hosts = Array(repeating: [:], count: sortedWorkloads.count)
        ordinals = Array(repeating: [], count: sortedWorkloads.count)
        placed.reserveCapacity(input.current.count)
    }

    /// Keeps what still qualifies, highest priority first, so that when capacity shrank the
    /// most important replicas keep their place.
    mutating func keepCurrent() {
        var keyed: [(w: Int, a: Assignment)] = []
        keyed.reserveCapacity(current.count)
        for a in current {
            if let w = workloadIndex[a.workload] { keyed.append((w, a)) }
        }
        keyed.sort(by: Self.keepOrder)
        var seen = Set<String>()
        for (w, a) in keyed {
            guard let d = deviceIndex[a.device], seen.insert(a.id).inserted else { continue }
            keep(workload: w, assignment: a, device: d)
        }
    }

    /// The order in which running replicas keep their place: priority, then ordinal.
    static func keepOrder(_ x: (w: Int, a: Assignment), _ y: (w: Int, a: Assignment)) -> Bool {
        (x.w, x.a.ordinal, x.a.id) < (y.w, y.a.ordinal, y.a.id)
    }

    /// Keeps a running replica where it is if it still qualifies and fits there.
    @discardableResult
    mutating func keep(workload w: Int, assignment a: Assignment, device d: Int32) -> Bool {
        let spec = workloads[w]
        switch spec.mode {
        case .replicas: guard a.ordinal >= 0, a.ordinal < spec.replicas else { return false }
        case .every: guard a.ordinal == -1 else { return false }
        }
        guard spec.keepRejection(devices[Int(d)], now: now) == nil, hosts[w][d, default: 0] < spec.maxPerDevice,
            free[Int(d)].fits(spec.resources)
        else { return false }
        commit(workload: w, assignment: a, device: d)
        return true
    }

    /// Connectivity quality in 0...1: uptime, link class and round-trip time.
    static func connectivityScore(_ d: DeviceSnapshot) -> Double {
        let c = d.connectivity
        let rtt = c.rttMillis.map { 1 - min(max($0, 0), 1000) / 1000 } ?? 0.5
        let link: Double = switch c.linkClass {
        case .satellite: 0
        case .cellular: 1.0 / 3
        case .wifi: 2.0 / 3
        case .wired: 1
        }
        return 0.5 * c.uptimeRatio + 0.3 * link + 0.2 * rtt
    }

    /// Connectivity, then load by the workload's strategy; in 0...1. Higher is better.
    @inline(__always)
    func score(_ spec: WorkloadSpec, _ i: Int) -> Double {
        var sum = 0.0
        var dims = 0.0
        if capacityCPU[i] > 0 {
            sum += Double(free[i].cpuMillis) / Double(capacityCPU[i])
            dims += 1
        }
        if capacityMemory[i] > 0 {
            sum += Double(free[i].memoryBytes) / Double(capacityMemory[i])
            dims += 1
        }
        let freeFraction = dims == 0 ? 0 : sum / dims
        let load = spec.strategy == .spreadLoad ? freeFraction : 1 - freeFraction
        return 0.7 * load + 0.3 * connectivityScore[i]
    }

    /// `free[i].fits(r)` without copying the free record out of the array.
    @inline(__always)
    func fits(_ i: Int, _ r: Resources) -> Bool {
        guard r.cpuMillis <= free[i].cpuMillis, r.memoryBytes <= free[i].memoryBytes, r.storageBytes <= free[i].storageBytes else { return false }
        return r.devices.isEmpty || free[i].fits(r)
    }

    /// Builds the label-value index for a spread key once.
    mutating func ensureDomains(_ key: String) {
        guard domains[key] == nil else { return }
        let names = Set(devices.compactMap { $0.labels[key] }).sorted()
        let index = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($0.element, Int32($0.offset)) })
        domains[key] = (names, devices.map { d in d.labels[key].flatMap { index[$0] } ?? -1 })
    }

    /// A device changed: refresh what is derived from it.
    mutating func refresh(device i: Int, from old: DeviceSnapshot) {
        let d = devices[i]
        connectivityScore[i] = Self.connectivityScore(d)
        capacityCPU[i] = d.capacity.cpuMillis
        capacityMemory[i] = d.capacity.memoryBytes
        if d.labels != old.labels { indexDomains(of: i) }
    }

    /// Puts device `i` in the spread domains of its labels.
    mutating func indexDomains(of i: Int) {
        for key in Array(domains.keys) {
            guard let value = devices[i].labels[key] else {
                domains[key]?.ofDevice[i] = -1
                continue
            }
            if let at = domains[key]?.names.sortedIndex(of: value) {
                domains[key]?.ofDevice[i] = Int32(at)
            } else {
                // A value no device had: renumber that key's domains.
                domains[key] = nil
                ensureDomains(key)
            }
        }
    }

    mutating func commit(workload w: Int, assignment a: Assignment, device d: Int32) {
        free[Int(d)].reserve(workloads[w].resources)
        let slot: Int32
        if let reused = freeSlots.popLast() {
            slot = reused
            placed[Int(slot)] = a
            placedWorkload[Int(slot)] = Int32(w)
            placedDevice[Int(slot)] = d
        } else {
            slot = Int32(placed.count)
            placed.append(a)
            placedWorkload.append(Int32(w))
            placedDevice.append(d)
        }
        onDevice[Int(d)].append(slot)
        journal?.append(slot)
        hosts[w][d, default: 0] += 1
        if a.ordinal >= 0 { ordinals[w].insert(a.ordinal) }
    }

    /// Removes a placed replica (preemption) and gives its resources back.
    mutating func evict(_ p: Int32) {
        if let a = release(p) { preempted.append(a) }
    }

    /// Removes a placed replica and gives its resources back; returns it.
    @discardableResult
    mutating func release(_ p: Int32) -> Assignment? {
        guard let a = placed[Int(p)] else { return nil }
        let w = Int(placedWorkload[Int(p)])
        let d = placedDevice[Int(p)]
        free[Int(d)].reserve(workloads[w].resources, sign: -1)
        hosts[w][d, default: 1] -= 1
        if a.ordinal >= 0 { ordinals[w].remove(a.ordinal) }
        placed[Int(p)] = nil
        freeSlots.append(p)
        onDevice[Int(d)].removeAll { $0 == p }
        return a
    }

    /// Assignments in workload order (priority, then name), then ordinal: integer comparisons
    /// only, which matters with a million assignments.
    func result() -> PlacementPlan {
        var keyed: [(w: Int32, a: Assignment)] = []
        keyed.reserveCapacity(placed.count)
        for (i, a) in placed.enumerated() {
            if let a { keyed.append((placedWorkload[i], a)) }
        }
        keyed.sort { x, y in
            if x.w != y.w { return x.w < y.w }
            if x.a.ordinal != y.a.ordinal { return x.a.ordinal < y.a.ordinal }
            return x.a.id < y.a.id
        }
        return PlacementPlan(assignments: keyed.map(\.a), unplaced: unplaced, preempted: preempted.sorted())
    }
}

extension Array where Element: Comparable {
    /// Index of `value` in this sorted array, by binary search.
    func sortedIndex(of value: Element) -> Int? {
        let at = insertionPoint(of: value)
        return at < count && self[at] == value ? at : nil
    }

    /// First index whose element is not less than `value`, in this sorted array.
    func insertionPoint(of value: Element) -> Int {
        var (low, high) = (0, count)
        while low < high {
            let mid = (low + high) / 2
            if self[mid] < value { low = mid + 1 } else { high = mid }
        }
        return low
    }
}
