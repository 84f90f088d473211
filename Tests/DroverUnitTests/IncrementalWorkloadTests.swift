import DroverCore
import DroverScheduler
import PropertyBased
import Testing

@Suite("Incremental scheduler: workload changes")
struct IncrementalWorkloadTests {
    /// One random change to the fleet's workloads: a scale, a new size, a new priority, new
    /// constraints, another mode, a deletion, or a new workload. Returns the name and the
    /// new spec (nil: deleted).
    static func change(_ workloads: inout [WorkloadSpec], step: Int, _ rng: inout SplitMix64) -> (String, WorkloadSpec?) {
        guard let at = workloads.indices.randomElement(using: &rng), Int.random(in: 0..<8, using: &rng) != 0 else {
            let fresh = RandomFleet.workload("new\(step)", &rng)
            workloads.append(fresh)
            return (fresh.name, fresh)
        }
        var w = workloads[at]
        switch Int.random(in: 0..<8, using: &rng) {
        case 0:
            workloads.remove(at: at)
            return (w.name, nil)
        case 1: w.replicas = Int.random(in: 0...14, using: &rng)
        case 2: w.resources.cpuMillis = Int.random(in: 50...2500, using: &rng)
        case 3: w.priority = Int.random(in: 0...3, using: &rng)
        case 4: w.selector = LabelSelector(matchLabels: ["role": Bool.random(using: &rng) ? "gw" : "cam"])
        case 5: w.spread = w.spread == nil ? SpreadConstraint(labelKey: "site", maxSkew: 1) : nil
        case 6: w.mode = w.mode == .every ? .replicas : .every
        default: w.maxPerDevice = Int.random(in: 1...3, using: &rng)
        }
        workloads[at] = w
        return (w.name, w)
    }

    @Test("after a workload is applied, changed, scaled or deleted, the incremental plan equals a full plan, and its deltas add up")
    func sameAsFullPlan() async {
        await propertyCheck(count: 300, input: SchedulerPropertyTests.seeds) { seed in Self.check(seed: seed) }
    }

    static func check(seed: Int) {
        var input = RandomFleet.make(seed: seed)
        let first = Scheduler.plan(input)
        input.current = first.assignments
        let incremental = IncrementalScheduler(input)
        var rng = SplitMix64(state: UInt64(truncatingIfNeeded: seed) &+ 11)
        var applied = Dictionary(uniqueKeysWithValues: first.assignments.map { ($0.id, $0) })
        for step in 0..<4 {
            let (name, spec) = change(&input.workloads, step: step, &rng)
            let delta = incremental.update(workload: name, spec: spec, now: input.now)
            applied.apply(delta)
            let full = Scheduler.plan(input)
            #expect(incremental.plan.assignments == full.assignments, "seed \(seed) step \(step): \(name)")
            #expect(Set(incremental.unplaced.map(\.id)) == Set(full.unplaced.map(\.id)), "seed \(seed) step \(step)")
            #expect(Set(applied.values) == Set(full.assignments), "seed \(seed) step \(step): the deltas add up to the plan")
            #expect(Set(delta.preempted) == Set(full.preempted), "seed \(seed) step \(step): preemptions")
            // The next change starts from this plan, as the controller's does; and devices
            // still change in between (the two kinds of update share one state).
            input.current = full.assignments
            if let device = input.devices.randomElement(using: &rng) {
                var changed = device
                IncrementalSchedulerTests.change(&changed, now: input.now, &rng)
                input.devices = input.devices.map { $0.id == changed.id ? changed : $0 }
                applied.apply(incremental.update(device: changed, now: input.now))
                let again = Scheduler.plan(input)
                #expect(incremental.plan.assignments == again.assignments, "seed \(seed) step \(step): the device update after it")
                input.current = again.assignments
            }
        }
    }
}
