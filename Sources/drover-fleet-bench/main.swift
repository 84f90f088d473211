// What placement costs through the controller itself: the Fleet actor with its SQLite store,
// replica rows and per-device desired state, as workloads change and device events arrive.
// Workload and device changes go through the incremental scheduler; the baseline in the same
// run is a full plan of the same fleet (the periodic reconciliation). Run through tools/bench
// (release build). Prints figures; never fails on a time.
import DroverController
import DroverCore
import DroverProtocol
import DroverStore
import Foundation
import Logging

func millis(_ start: ContinuousClock.Instant) -> Double {
    let d = (ContinuousClock.now - start).components
    return Double(d.seconds) * 1000 + Double(d.attoseconds) / 1e15
}

func hello(_ i: Int) -> Hello {
    let facts = DeviceFacts(
        agentVersion: "bench", arch: "amd64", os: "linux", capacity: Resources(cpuMillis: 4000, memoryBytes: 4 << 30),
        labels: ["site": "site-\(i % 100)", "role": i % 3 == 0 ? "camera" : "gateway"], runtimes: [.exec])
    return Hello(device: "dev-" + String(String(i + 1_000_000).dropFirst()), facts: facts, bootID: "boot", lastAppliedGeneration: 0)
}

/// Devices join one by one, 20 workloads totalling `total` replicas are applied, then devices
/// are lost and join while everything is placed.
func run(devices n: Int, replicas total: Int) async throws -> String {
    let dir = NSTemporaryDirectory() + "drover-fleet-bench-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var logger = Logger(label: "bench")
    logger.logLevel = .error
    let fleet = try Fleet(store: try SQLiteFleetStore(path: dir + "/controller.db"), logger: logger, unreachableAfter: .seconds(3600))
    // A controller whose broker connection has been up for a day: past the grace after a
    // start (unreachableAfter, here an hour), so a will is acted on at once.
    await fleet.sightRestored(now: Fleet.nowMillis() - 86_400_000)

    var start = ContinuousClock.now
    for i in 0..<n { await fleet.hello(hello(i)) }
    let joinAll = millis(start)

    let count = 20
    var applies: [Double] = []
    for k in 0..<count {
        var w = WorkloadSpec(name: "workload-\(k)", replicas: total / count, resources: Resources(cpuMillis: 100, memoryBytes: 64 << 20), command: ["/bin/true"])
        if k % 5 == 0 { w.spread = SpreadConstraint(labelKey: "site", maxSkew: 1) }
        if k % 5 == 1 { w.selector = LabelSelector(matchLabels: ["role": "gateway"]) }
        w.maxPerDevice = max(1, (total / count + n - 1) / n)
        w.connectivity.tolerateOfflineSeconds = 0
        start = ContinuousClock.now
        _ = try await fleet.apply(w)
        applies.append(millis(start))
    }
    let changes = try await workloadChanges(fleet, perWorkload: total / count)
    let burst = try await rolloutBurst(fleet, workload: "workload-3")

    // Baseline: the periodic reconciliation, a full plan of the same fleet (moving nothing),
    // computed off the actor: how long anything else waits for the actor meanwhile.
    let probe = Task {
        var longest = Duration.zero
        while !Task.isCancelled {
            let asked = ContinuousClock.now
            _ = await fleet.unreachableAfter
            longest = max(longest, ContinuousClock.now - asked)
            try? await Task.sleep(for: .milliseconds(1))
        }
        return longest
    }
    try? await Task.sleep(for: .milliseconds(20))
    start = ContinuousClock.now
    await fleet.checkPresence(now: Fleet.nowMillis() + 300_001)
    await fleet.reconciled()
    let fullPlan = millis(start)
    probe.cancel()
    let stall = await probe.value
    let fullPlacement = await fleet.summary().placement.lastFullPlanMillis

    var losses: [Double] = []
    var joins: [Double] = []
    var moved = 0
    for k in 0..<5 {
        let lost = hello(k * 97).device
        let before = try await fleet.device(lost).replicas.count
        start = ContinuousClock.now
        await fleet.state(DeviceState(device: lost, state: .offline))
        losses.append(millis(start))
        moved += before
        start = ContinuousClock.now
        await fleet.hello(hello(n + k))
        joins.append(millis(start))
    }
    let stats = await fleet.summary().placement
    // A restart: the controller loads its store and rebuilds its state.
    start = ContinuousClock.now
    _ = try Fleet(store: try SQLiteFleetStore(path: dir + "/controller.db"), logger: logger, unreachableAfter: .seconds(3600))
    let restart = millis(start)
    let f = { (xs: [Double]) in xs.map { String(format: "%.1f", $0) }.joined(separator: ", ") }
    let sorted = applies.sorted()
    return String(format: "%6d devices %8d replicas: %d joins %.1f s (%.2f ms each); ", n, total, n, joinAll / 1000, joinAll / Double(n))
        + String(format: "apply a new workload of %d replicas: median %.0f ms, max %.0f ms; ", total / count, sorted[sorted.count / 2], sorted.last ?? 0)
        + changes + burst + String(format: "baseline, full plan (reconciliation) %.0f ms (placement and desired-state check %.0f, off the actor; longest wait for the actor %.0f ms); ", fullPlan, fullPlacement, Double(stall.components.attoseconds) / 1e15 + Double(stall.components.seconds) * 1000)
        + "lose a device (\(moved / 5) replicas) \(f(losses)) ms; join \(f(joins)) ms; "
        + "\(stats.fullPlans) full plans, \(stats.incrementalPlans) incremental; "
        + String(format: "restart (load the store, rebuild the state) %.0f ms", restart)
}

/// Applying and scaling through the incremental scheduler: each change timed through the
/// Fleet actor, store transaction included.
func workloadChanges(_ fleet: Fleet, perWorkload: Int) async throws -> String {
    func timed(_ body: () async throws -> Void) async rethrows -> String {
        let start = ContinuousClock.now
        try await body()
        let plan = await fleet.summary().placement.lastIncrementalMillis
        return String(format: "%.1f (placement %.1f)", millis(start), plan)
    }
    var small = WorkloadSpec(name: "small", replicas: 10, resources: Resources(cpuMillis: 100, memoryBytes: 64 << 20), command: ["/bin/true"])
    let create = try await timed { _ = try await fleet.apply(small) }
    small.priority = 5
    let priority = try await timed { _ = try await fleet.apply(small) }
    let scaleOne = try await timed { _ = try await fleet.scale(workload: "workload-1", replicas: perWorkload + 1) }
    let scaleUp = try await timed { _ = try await fleet.scale(workload: "workload-1", replicas: perWorkload + perWorkload / 10) }
    let scaleDown = try await timed { _ = try await fleet.scale(workload: "workload-1", replicas: perWorkload) }
    let delete = try await timed { try await fleet.delete(workload: "small") }
    var revised = try await fleet.workload("workload-2").spec
    revised.command = ["/bin/sleep", "1"]
    let revision = try await timed { _ = try await fleet.apply(revised) }
    return "new workload of 10 replicas \(create) ms, its priority changed \(priority) ms, deleted \(delete) ms; "
        + "scale \(perWorkload) by +1 \(scaleOne) ms, +10 % \(scaleUp) ms, -10 % \(scaleDown) ms; "
        + "new revision of \(perWorkload) replicas (all at once) \(revision) ms; "
}

/// A new revision rolled out (one replica at a time), then every device hosting the workload
/// reports at once, in one burst: the rollout is stepped once for the burst.
func rolloutBurst(_ fleet: Fleet, workload name: String) async throws -> String {
    var spec = try await fleet.workload(name).spec
    spec.rollout = RolloutSpec()
    _ = try await fleet.apply(spec)
    spec.command = ["/bin/sleep", "3"]
    _ = try await fleet.apply(spec)
    let rows = try await fleet.workload(name).replicas
    let now = Fleet.nowMillis()
    let reports = Dictionary(grouping: rows, by: \.device).map { device, mine in
        Report(device: device, seq: 1_000_000, replicas: mine.map { ReplicaStatus(id: $0.id, workload: name, phase: .running, generation: 1, time: now, revision: 1) })
    }
    let start = ContinuousClock.now
    await fleet.reports(reports)
    return String(format: "a rollout's %d replicas reported in one burst of %d reports %.0f ms; ", rows.count, reports.count, millis(start))
}

let sizes = CommandLine.arguments.contains("--quick") ? [(1_000, 10_000)] : [(1_000, 10_000), (10_000, 100_000)]
for (n, r) in sizes {
    do {
        print(try await run(devices: n, replicas: r))
    } catch {
        print("fleet of \(n) devices failed: \(error)")
        exit(1)
    }
}
