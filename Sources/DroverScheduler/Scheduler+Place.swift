import DroverCore

extension PlanState {
    /// Devices that pass every constraint of workload `w` except capacity.
    func candidates(for w: Int, affinity: AffinityFilter) -> [Int32] {
        let spec = workloads[w]
        var result: [Int32] = []
        result.reserveCapacity(devices.count)
        for (i, d) in devices.enumerated() where spec.newPlacementRejection(d) == nil && affinity.rejection(d, Int32(i)) == nil {
            result.append(Int32(i))
        }
        return result
    }

    /// Places the missing replicas of one workload, choosing among `known` candidates when the
    /// caller has them (the incremental scheduler keeps them between plans).
    mutating func place(workload w: Int, candidates known: [Int32]? = nil) {
        let spec = workloads[w]
        let missing: [Int]
        switch spec.mode {
        case .replicas:
            // The fast path that makes re-planning incremental: nothing to do for a workload
            // whose replicas all kept their place.
            guard ordinals[w].count < spec.replicas else { return }
            missing = (0..<spec.replicas).filter { !ordinals[w].contains($0) }
        case .every:
            missing = []
        }
        let affinity = AffinityFilter(spec: spec, state: self)
        let candidates = known ?? self.candidates(for: w, affinity: affinity)
        if spec.mode == .every {
            placeEvery(w, candidates)
            return
        }
        if let spread = spec.spread { ensureDomains(spread.labelKey) }
        // A few replicas: one scan each. Many: heaps, built once.
        let scanning = missing.count <= 4
        var picker = scanning ? nil : DevicePicker(spec: spec, workload: w, candidates: candidates, state: self)
        var reasons: [String]?
        var preemptionHopeless = false
        for ordinal in missing {
            var chosen: Int32?
            var skewBlocked: SpreadConstraint?
            var linear: LinearPick?
            if scanning {
                linear = LinearPick(workload: w, candidates: candidates, state: self)
                (chosen, skewBlocked) = (linear?.device, linear?.skewBlocked)
            } else {
                chosen = picker?.pick(state: self)
                skewBlocked = picker?.skewBlocked
            }
            // Preemption makes room, never an exception to spread: a replica blocked by its skew stays unplaced.
            if chosen == nil, !preemptionHopeless, skewBlocked == nil {
                // (No copy of the picker is kept: its heaps must stay uniquely owned, or every push copies them.)
                let allowed = candidates.filter { d in linear?.spreadAllows(d) ?? picker?.spreadAllows(d) ?? true }
                chosen = preempt(for: w, candidates: allowed)
                preemptionHopeless = chosen == nil
            }
            guard let d = chosen else {
                if reasons == nil { reasons = explain(w, affinity: affinity, skew: skewBlocked) }
                unplaced.append(Unplaced(workload: spec.name, id: WorkloadSpec.replicaID(workload: spec.name, ordinal: ordinal), reasons: reasons ?? []))
                continue
            }
            commit(workload: w, assignment: Assignment(workload: spec.name, ordinal: ordinal, device: devices[Int(d)].id), device: d)
            picker?.placed(on: d, state: self)
        }
    }

    /// `mode: every`: one replica on each feasible device that does not have one yet.
    private mutating func placeEvery(_ w: Int, _ candidates: [Int32]) {
        let spec = workloads[w]
        for d in candidates where hosts[w][d, default: 0] == 0 {
            if let shortfall = free[Int(d)].shortfall(spec.resources) {
                let id = "\(spec.name)-\(devices[Int(d)].id)"
                unplaced.append(Unplaced(workload: spec.name, id: id, reasons: Explanation.group([shortfall], deviceCount: 1)))
                continue
            }
            commit(workload: w, assignment: Assignment(everyOf: spec.name, device: devices[Int(d)].id), device: d)
        }
    }

    /// Evicts the fewest replicas of lower priority from one feasible device so that a
    /// replica of workload `w` fits; returns that device.
    private mutating func preempt(for w: Int, candidates: [Int32]) -> Int32? {
        let spec = workloads[w]
        var best: (device: Int32, victims: [Int32], worst: Int)?
        for d in candidates where hosts[w][d, default: 0] < spec.maxPerDevice {
            var room = free[Int(d)]
            var victims: [Int32] = []
            let lower = onDevice[Int(d)].filter { workloads[Int(placedWorkload[Int($0)])].priority < spec.priority }
                .sorted { a, b in
                    let (pa, pb) = (workloads[Int(placedWorkload[Int(a)])].priority, workloads[Int(placedWorkload[Int(b)])].priority)
                    return pa != pb ? pa < pb : (placed[Int(a)]?.id ?? "") > (placed[Int(b)]?.id ?? "")
                }
            for p in lower where !room.fits(spec.resources) {
                room.reserve(workloads[Int(placedWorkload[Int(p)])].resources, sign: -1)
                victims.append(p)
            }
            guard room.fits(spec.resources), !victims.isEmpty else { continue }
            let worst = victims.map { workloads[Int(placedWorkload[Int($0)])].priority }.max() ?? 0
            if let b = best, (b.victims.count, b.worst) <= (victims.count, worst) { continue }
            best = (d, victims, worst)
        }
        guard let best else { return nil }
        for p in best.victims { evict(p) }
        return best.device
    }

    /// Why each device said no, grouped.
    private func explain(_ w: Int, affinity: AffinityFilter, skew: SpreadConstraint?) -> [String] {
        let spec = workloads[w]
        var rejections: [RejectionReason] = []
        rejections.reserveCapacity(devices.count)
        for (i, d) in devices.enumerated() {
            let index = Int32(i)
            if let r = spec.newPlacementRejection(d) ?? affinity.rejection(d, index) {
                rejections.append(r)
            } else if hosts[w][index, default: 0] >= spec.maxPerDevice {
                rejections.append(.maxPerDevice(spec.maxPerDevice))
            } else if let r = free[i].shortfall(spec.resources) {
                rejections.append(r)
            } else if let skew {
                rejections.append(.spreadSkew(key: skew.labelKey, maxSkew: skew.maxSkew))
            }
        }
        return Explanation.group(rejections, deviceCount: devices.count)
    }
}
