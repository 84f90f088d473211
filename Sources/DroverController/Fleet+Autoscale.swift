import DroverCore
import DroverScheduler
import DroverStore

extension FleetState {
    /// Workloads with `autoscale`, in name order; the others lose their autoscaler state.
    mutating func autoscaled() -> [String] {
        for name in autoscalers.keys where workloads[name]?.spec.autoscale == nil { autoscalers[name] = nil }
        return workloads.values.filter { $0.spec.autoscale != nil }.map(\.spec.name).sorted()
    }

    /// One autoscaling decision: compare the CPU the workload's running replicas use with its
    /// target; up at once, down only after the stabilisation window, and never beyond what the
    /// fleet can place. Returns the new count and why, or nil to leave it.
    mutating func autoscaleDecision(for name: String, now: Int64) -> (replicas: Int, reason: String)? {
        guard let record = workloads[name], let target = record.spec.autoscale else { return nil }
        let request = Double(record.spec.resources.cpuMillis > 0 ? record.spec.resources.cpuMillis : 1000)
        // A figure stands while its device is online (beats carry only figures that moved);
        // one from a device the replica has left says nothing.
        let utilization = rows(of: name).filter { $0.phase == .running }.compactMap { row in
            replicaCPU[row.id].flatMap { $0.device == row.device && devices[row.device]?.presence == .online ? Double($0.millis) / request * 100 : nil }
        }
        var scaler = autoscalers[name] ?? Autoscaler()
        var wanted = scaler.recommend(target, current: record.spec.replicas, utilization: utilization, now: now)
        autoscalers[name] = scaler
        if wanted > record.spec.replicas {
            wanted -= unplaceable(record.spec, replicas: wanted, now: now)
        }
        guard wanted != record.spec.replicas, wanted >= 0 else { return nil }
        let mean = utilization.isEmpty ? 0 : utilization.reduce(0, +) / Double(utilization.count)
        return (wanted, "autoscaled at \(Int(mean))% CPU of request (target \(target.targetCPUPercent)%)")
    }

    /// How many of `replicas` the fleet could not place right now. A full plan is costly, so
    /// it runs again only when something placement depends on changed since.
    private mutating func unplaceable(_ spec: WorkloadSpec, replicas count: Int, now: Int64) -> Int {
        if let cached = unplaceableCache[spec.name], cached.wanted == count, cached.version == placementVersion { return cached.count }
        let result = plannedShortfall(spec, replicas: count, now: now)
        unplaceableCache[spec.name] = (count, placementVersion, result)
        autoscalePlans += 1
        return result
    }

    private func plannedShortfall(_ spec: WorkloadSpec, replicas count: Int, now: Int64) -> Int {
        var specs = workloads.mapValues(\.spec)
        var scaled = spec
        scaled.replicas = count
        specs[spec.name] = scaled
        let plan = Scheduler.plan(schedulingInput(workloads: Array(specs.values), now: now))
        return plan.unplaced.filter { $0.workload == spec.name }.count
    }
}
