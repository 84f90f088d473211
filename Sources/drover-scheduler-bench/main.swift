// Placement figures for synthetic fleets: whole-plan time, placements per second, peak memory,
// and the time to re-plan after one device with ten replicas is lost. Compared in the same run
// with a naive first-fit scan (every replica tries every device) where that finishes in time.
// Run through tools/bench (release build). Prints figures; never fails on a time.
import DroverCore
import DroverScheduler
import Foundation

#if canImport(Glibc)
import Glibc
#endif

func peakRSSMiB() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
}

func seconds(_ body: () -> Void) -> Double {
    let start = ContinuousClock.now
    body()
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

/// 100 sites, two roles, 4 cores and 4 GiB per device; 50 workloads, a fifth spread over
/// sites, a fifth with a role selector, a tenth bin-packed.
func fleet(devices n: Int, replicas total: Int) -> SchedulingInput {
    let devices = (0..<n).map { (i: Int) -> DeviceSnapshot in
        let id = "dev-" + String(String(i + 1_000_000).dropFirst())
        let labels: [String: String] = ["site": "site-\(i % 100)", "role": i % 3 == 0 ? "camera" : "gateway"]
        let link: LinkClass = i % 7 == 0 ? .cellular : .wired
        let uptime = 0.9 + Double(i % 10) / 100
        return DeviceSnapshot(
            id: id, labels: labels, capacity: Resources(cpuMillis: 4000, memoryBytes: 4 << 30),
            connectivity: ConnectivityRecord(linkClass: link, uptimeRatio: uptime))
    }
    let count = 50
    let workloads = (0..<count).map { k in
        var w = WorkloadSpec(name: "workload-\(k)", replicas: total / count, resources: Resources(cpuMillis: 100, memoryBytes: 64 << 20), command: ["/bin/true"])
        if k % 5 == 0 { w.spread = SpreadConstraint(labelKey: "site", maxSkew: 1) }
        if k % 5 == 1 { w.selector = LabelSelector(matchLabels: ["role": "gateway"]) }
        if k % 10 == 2 { w.strategy = .binPack }
        w.maxPerDevice = max(1, (total / count + n - 1) / n)
        return w
    }
    return SchedulingInput(devices: devices, workloads: workloads, current: [], now: 1_000_000_000)
}

/// The baseline: first fit, every replica scanning devices from the start.
func naiveFirstFit(_ input: SchedulingInput) -> Int {
    var free = input.devices.map(\.capacity)
    var placed = 0
    for w in input.workloads {
        for _ in 0..<w.replicas {
            for i in free.indices where w.selector.firstMismatch(input.devices[i].labels) == nil && free[i].fits(w.resources) {
                free[i] = free[i] - w.resources
                placed += 1
                break
            }
        }
    }
    return placed
}

// --updates N: only the incremental scheduler at 100k devices, N device losses and joins in a row (for profiling).
if let flag = CommandLine.arguments.firstIndex(of: "--updates"), flag + 1 < CommandLine.arguments.count, let count = Int(CommandLine.arguments[flag + 1]) {
    var input = fleet(devices: 100_000, replicas: 1_000_000)
    input.current = Scheduler.plan(input).assignments
    let incremental = IncrementalScheduler(input)
    for k in 0..<count {
        var device = input.devices[k * 997]
        device.presence = .unreachable
        device.connectivity.lastSeen = 0
        let t = seconds { _ = incremental.update(device: device, now: input.now) }
        device.id += "-joined"
        device.presence = .online
        let j = seconds { _ = incremental.update(device: device, now: input.now) }
        print(String(format: "lose %d: %.2f ms, join: %.2f ms", k, t * 1000, j * 1000))
    }
    exit(0)
}

let sizes: [(Int, Int)] = CommandLine.arguments.contains("--quick") ? [(1_000, 10_000), (10_000, 100_000)] : [(1_000, 10_000), (10_000, 100_000), (100_000, 1_000_000)]
print("devices   replicas  plan s   placements/s  unplaced  peak RSS MiB  lose 1 device: full re-plan / incremental   join 1  naive first-fit s  ratio")
for (n, r) in sizes {
    let input = fleet(devices: n, replicas: r)
    var plan = PlacementPlan(assignments: [], unplaced: [], preempted: [])
    let planTime = seconds { plan = Scheduler.plan(input) }
    let rss = peakRSSMiB()

    // Lose the device holding the most replicas, past every workload's tolerateOffline.
    let byDevice = plan.byDevice()
    let lost = byDevice.max { ($0.value.count, $1.key) < ($1.value.count, $0.key) }?.key ?? ""
    var after = input
    after.current = plan.assignments
    if let i = after.devices.firstIndex(where: { $0.id == lost }) {
        after.devices[i].presence = .unreachable
        after.devices[i].connectivity.lastSeen = 0
    }
    var replan = PlacementPlan(assignments: [], unplaced: [], preempted: [])
    let replanTime = seconds { replan = Scheduler.plan(after) }
    let moved = replan.assignments.filter { a in byDevice[lost]?.contains { $0.id == a.id } ?? false }.count

    // The same loss through the incremental scheduler, which keeps its state between plans.
    var kept = input
    kept.current = plan.assignments
    let incremental = IncrementalScheduler(kept)
    var delta: PlanDelta?
    let lostDevice = after.devices.first { $0.id == lost }
    let incrementalTime = seconds { delta = lostDevice.map { incremental.update(device: $0, now: after.now) } }
    let incrementalMoved = delta?.added.count ?? 0
    // A new device joins mid-order: renumbering, then whatever waits for room.
    var joining = input.devices[n / 2]
    joining.id += "-joined"
    let joinTime = seconds { _ = incremental.update(device: joining, now: after.now) }

    var naive = "skipped"
    var ratio = "-"
    if n * r <= 1_000_000_000 {
        let t = seconds { _ = naiveFirstFit(input) }
        naive = String(format: "%.3f", t)
        ratio = String(format: "%.1fx", t / planTime)
    }
    func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s + " " : s + String(repeating: " ", count: w - s.count) }
    print(pad("\(n)", 10) + pad("\(r)", 10) + pad(String(format: "%.3f", planTime), 9) + pad(String(format: "%.0f", Double(plan.assignments.count) / planTime), 14)
        + pad("\(plan.unplaced.count)", 10) + pad(String(format: "%.0f", rss), 14)
        + pad(String(format: "%.1f ms / %.2f ms (%d, %d of %d moved)", replanTime * 1000, incrementalTime * 1000, moved, incrementalMoved, byDevice[lost]?.count ?? 0), 44)
        + pad(String(format: "%.1f ms", joinTime * 1000), 8)
        + pad(naive, 19) + ratio)
}
