import DroverCore

/// What one incremental update changed.
public struct PlanDelta: Sendable {
    public var added: [Assignment]
    public var removed: [Assignment]
    /// Those of `removed` that made room for a higher-priority replica.
    public var preempted: [Assignment]

    public init(added: [Assignment], removed: [Assignment], preempted: [Assignment]) {
        (self.added, self.removed, self.preempted) = (added, removed, preempted)
    }
}

/// Placement that keeps its state between plans, so that a change to one device re-plans
/// only the workloads it touched instead of every replica in the fleet. Gives the same
/// placements as `Scheduler.plan` on the same input.
public final class IncrementalScheduler {
    private var state: PlanState
    /// Per workload without affinity terms or ports: the devices passing its static constraints.
    private var candidateCache: [Int: [Int32]] = [:]

    public init(_ input: SchedulingInput) {
        var s = PlanState(input)
        s.keepCurrent()
        // Spread indexes are built now rather than by the first update that needs one.
        for spec in s.workloads { if let spread = spec.spread { s.ensureDomains(spread.labelKey) } }
        for (w, spec) in s.workloads.enumerated() {
            // Candidates of workloads without affinity or ports depend on nothing but the devices: keep them.
            if !AffinityFilter.dependsOnOthers(spec) {
                let known = s.candidates(for: w, affinity: AffinityFilter(spec: spec, state: s))
                candidateCache[w] = known
                s.place(workload: w, candidates: known)
            } else {
                s.place(workload: w)
            }
        }
        state = s
    }

    /// The whole current plan (sorting a large fleet's assignments takes a while).
    public var plan: PlacementPlan { state.result() }

    /// Every replica of the fleet still unplaced, with its reasons.
    public var unplaced: [Unplaced] { state.unplaced }

    /// A device changed (lost, back, cordoned, drained, relabelled, resized) or joined:
    /// replicas that no longer qualify there move, and workloads with replicas still to place
    /// (or `mode: every`) try again. Gives what a full plan of the same fleet would.
    public func update(device: DeviceSnapshot, now: Int64) -> PlanDelta {
        let i: Int32
        if let known = state.deviceIndex[device.id] {
            i = known
        } else {
            i = state.insert(device: device)
            for w in Array(candidateCache.keys) { candidateCache[w]?.shift(from: i) }
        }
        let index = Int(i)
        state.now = now
        // Preemptions are reported once, by the update that made them.
        state.preempted.removeAll()
        let before = state.devices[index]
        state.devices[index] = device
        state.refresh(device: index, from: before)
        // What runs there keeps its place as in a full plan: released, then kept again in
        // priority order while it still qualifies and fits (capacity may have shrunk).
        let here = state.onDevice[index].compactMap { p in state.placed[Int(p)].map { (w: Int(state.placedWorkload[Int(p)]), a: $0) } }
        for p in state.onDevice[index] { state.release(p) }
        state.free[index] = device.capacity
        var removed: [Assignment] = []
        var affected = Set<Int>()
        for x in here.sorted(by: PlanState.keepOrder) where !state.keep(workload: x.w, assignment: x.a, device: i) {
            removed.append(x.a)
            affected.insert(x.w)
        }
        for (w, spec) in state.workloads.enumerated() {
            // The device's own static fitness may have changed for every cached workload
            // (edited in place: copying a 100k-entry list per workload costs milliseconds).
            guard let at = candidateCache[w]?.insertionPoint(of: i) else { continue }
            let listed = at < candidateCache[w]?.count ?? 0 && candidateCache[w]?[at] == i
            let fits = spec.newPlacementRejection(device) == nil
            if fits, !listed {
                candidateCache[w]?.insert(i, at: at)
            } else if !fits, listed {
                candidateCache[w]?.remove(at: at)
            }
        }
        return settle(affected: affected, removed: removed)
    }

    /// A workload was applied (new or changed), scaled, or deleted (`spec` nil): its replicas
    /// that no longer qualify or fit move, replicas it pushed out of their device move, and
    /// workloads with replicas still to place (or `mode: every`) try again. Gives what a full
    /// plan of the new set of workloads would.
    public func update(workload name: String, spec: WorkloadSpec?, now: Int64) -> PlanDelta {
        state.now = now
        state.preempted.removeAll()
        let (released, gone, remap) = state.replace(workload: name, with: spec)
        var cache: [Int: [Int32]] = [:]
        for (w, known) in candidateCache where remap[w] >= 0 && state.workloads[remap[w]].name != name { cache[remap[w]] = known }
        candidateCache = cache
        var removed = gone
        var affected = Set<Int>()
        if let spec, let w = state.workloadIndex[spec.name] { affected.insert(w) }
        for x in released.sorted(by: PlanState.keepOrder) {
            if let d = state.deviceIndex[x.a.device], state.keep(workload: x.w, assignment: x.a, device: d) { continue }
            removed.append(x.a)
            affected.insert(x.w)
        }
        return settle(affected: affected, removed: removed)
    }

    /// Places again the `affected` workloads, those with replicas waiting and those of
    /// `mode: every`, in priority order as a full plan would; returns what moved.
    private func settle(affected: Set<Int>, removed: [Assignment]) -> PlanDelta {
        var removed = removed
        var affected = affected
        // Unplaced replicas are listed workload by workload: one comparison per entry.
        var waiting = Set<String>()
        var last: String?
        for u in state.unplaced where u.workload != last {
            waiting.insert(u.workload)
            last = u.workload
        }
        for (w, spec) in state.workloads.enumerated() where spec.mode == .every || waiting.contains(spec.name) {
            affected.insert(w)
        }
        let names = Set(affected.map { state.workloads[$0].name })
        state.unplaced.removeAll { names.contains($0.workload) }
        state.journal = []
        defer { state.journal = nil }
        // Priority order, as in a full plan; replicas a preemption evicts are of lower priority
        // and are placed again when their workload's turn comes.
        var pending = affected
        while let w = pending.min() {
            pending.remove(w)
            let spec = state.workloads[w]
            var known: [Int32]?
            if !AffinityFilter.dependsOnOthers(spec) {
                if candidateCache[w] == nil {
                    candidateCache[w] = state.candidates(for: w, affinity: AffinityFilter(spec: spec, state: state))
                }
                known = candidateCache[w]
            }
            let evictedBefore = state.preempted.count
            state.place(workload: w, candidates: known)
            for a in state.preempted[evictedBefore...] {
                removed.append(a)
                if let victim = state.workloadIndex[a.workload] {
                    pending.insert(victim)
                    state.unplaced.removeAll { $0.workload == a.workload }
                }
            }
        }
        // A slot preempted and reused within this update is listed twice.
        let added = Set(state.journal ?? []).sorted().compactMap { state.placed[Int($0)] }
        return PlanDelta(added: added, removed: removed, preempted: state.preempted)
    }
}
