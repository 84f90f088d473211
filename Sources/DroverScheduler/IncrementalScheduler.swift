import DroverCore

/// What one incremental update changed.
public struct PlanDelta: Sendable {
    public var added: [Assignment]
    public var removed: [Assignment]
    /// Replicas of the workloads it re-planned that are still unplaced, with their reasons.
    public var unplaced: [Unplaced]
}

/// Placement that keeps its state between plans, so that a change to one device re-plans
/// only the workloads it touched instead of every replica in the fleet. Gives the same
/// placements as `Scheduler.plan` on the same input.
public final class IncrementalScheduler {
    private var state: PlanState
    /// Per workload without affinity terms: the devices passing its static constraints.
    private var candidateCache: [Int: [Int32]] = [:]

    public init(_ input: SchedulingInput) {
        var s = PlanState(input)
        s.keepCurrent()
        for (w, spec) in s.workloads.enumerated() {
            // Candidates of workloads without affinity depend on nothing but the devices: keep them.
            if spec.affinity.isEmpty, spec.antiAffinity.isEmpty {
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

    /// A known device changed (lost, back, cordoned, drained, relabelled): replicas that no
    /// longer qualify there move, and workloads with replicas still to place try again.
    /// Returns nil for a device the scheduler does not know; plan afresh then.
    public func update(device: DeviceSnapshot, now: Int64) -> PlanDelta? {
        guard let i = state.deviceIndex[device.id] else { return nil }
        let index = Int(i)
        let before = state.devices[index]
        state.devices[index] = device
        state.refresh(device: index, from: before)
        if before.capacity != device.capacity {
            // Capacity changed: recompute what is free from what runs there.
            var free = device.capacity
            for p in state.onDevice[index] { free.reserve(state.workloads[Int(state.placedWorkload[Int(p)])].resources) }
            state.free[index] = free
        }
        var removed: [Assignment] = []
        var affected = Set<Int>()
        for p in state.onDevice[index] {
            let w = Int(state.placedWorkload[Int(p)])
            guard state.workloads[w].keepRejection(device, now: now) != nil, let a = state.release(p) else { continue }
            removed.append(a)
            affected.insert(w)
        }
        for (w, spec) in state.workloads.enumerated() {
            if spec.mode == .every || state.unplaced.contains(where: { $0.workload == spec.name }) { affected.insert(w) }
            // The device's own static fitness may have changed for every cached workload.
            guard var cached = candidateCache[w] else { continue }
            let fits = spec.newPlacementRejection(device) == nil
            let at = cached.firstIndex(of: i)
            if fits, at == nil {
                cached.append(i)
                cached.sort()
            } else if !fits, let at {
                cached.remove(at: at)
            }
            candidateCache[w] = cached
        }
        let names = Set(affected.map { state.workloads[$0].name })
        state.unplaced.removeAll { names.contains($0.workload) }
        let firstNew = state.placed.count
        // Priority order, as in a full plan; replicas a preemption evicts are of lower priority
        // and are placed again when their workload's turn comes.
        var pending = affected
        while let w = pending.min() {
            pending.remove(w)
            let spec = state.workloads[w]
            var known: [Int32]?
            if spec.affinity.isEmpty, spec.antiAffinity.isEmpty {
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
        let added = state.placed[firstNew...].compactMap { $0 }
        let touched = names.union(removed.map(\.workload))
        return PlanDelta(added: added, removed: removed, unplaced: state.unplaced.filter { touched.contains($0.workload) })
    }
}
