import DroverCore
import DroverScheduler
import DroverStore

extension FleetState {
    /// Workloads with `autoscale`, in name order; the others lose their autoscaler state.
    mutating func autoscaled() -> [String] {
        for name in autoscalers.keys where workloads[name]?.spec.autoscale == nil { autoscalers[name] = nil }
        for name in unplaceableCache.keys where workloads[name]?.spec.autoscale == nil { unplaceableCache[name] = nil }
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
            // Not known yet (a large fleet: it is being worked out off the actor): next pass.
            guard let short = unplaceable(record.spec, replicas: wanted, now: now) else { return nil }
            // Never down on the way up (an answer worked out before the workload grew).
            wanted = max(record.spec.replicas, wanted - short)
        }
        guard wanted != record.spec.replicas, wanted >= 0 else { return nil }
        let mean = utilization.isEmpty ? 0 : utilization.reduce(0, +) / Double(utilization.count)
        return (wanted, "autoscaled at \(Int(mean))% CPU of request (target \(target.targetCPUPercent)%)")
    }

    /// How many of `replicas` the fleet could not place right now. A full plan is costly, so
    /// it runs again only when something placement depends on changed since. Nil while a
    /// large fleet's is worked out (see `largeFleetShortfall`).
    private mutating func unplaceable(_ spec: WorkloadSpec, replicas count: Int, now: Int64) -> Int? {
        if let cached = unplaceableCache[spec.name], cached.wanted == count, cached.version == placementVersion { return cached.count }
        guard devices.count <= shortfallInlineDevices else { return largeFleetShortfall(spec, replicas: count, now: now) }
        let result = ShortfallWork.shortfall(of: spec.name, shortfallInput(spec, replicas: count, now: now))
        unplaceableCache[spec.name] = (count, placementVersion, result, now)
        autoscalePlans += 1
        return result
    }

    /// In a large fleet, from the last check worked out off the actor while it is fresh (a
    /// busy fleet re-plans often, and a scale-up would otherwise wait for ever): how many
    /// fit does not depend on how many are wanted, so it answers for another count too.
    /// When more are wanted than it checked and all of those fit, it answers with those it
    /// checked and asks again. With no fresh check: asks, and returns nil.
    private mutating func largeFleetShortfall(_ spec: WorkloadSpec, replicas count: Int, now: Int64) -> Int? {
        var answer: Int?
        if let cached = unplaceableCache[spec.name], now - cached.at < Self.shortfallFresh {
            answer = max(0, count - (cached.wanted - cached.count))
            if cached.count > 0 || count <= cached.wanted { return answer }
        }
        if !shortfallRunning.contains(spec.name), !shortfallAsked.contains(where: { $0.workload == spec.name }) {
            shortfallAsked.append(ShortfallWork(workload: spec.name, wanted: count, version: placementVersion, input: shortfallInput(spec, replicas: count, now: now)))
        }
        return answer
    }

    /// A workload the autoscaler scaled up took room the fresh answers of the others counted
    /// on: they are asked again.
    mutating func autoscaledUp(_ name: String) {
        unplaceableCache = unplaceableCache.filter { $0.key == name || devices.count <= shortfallInlineDevices }
    }

    /// A result worked out off the actor stands this long even if placement changed since: a
    /// busy fleet re-plans often, and a scale-up would otherwise wait for ever.
    static let shortfallFresh: Int64 = 30_000

    /// The fleet as it stands with `spec` at `count` replicas.
    private func shortfallInput(_ spec: WorkloadSpec, replicas count: Int, now: Int64) -> SchedulingInput {
        var specs = workloads.mapValues(\.spec)
        var scaled = spec
        scaled.replicas = count
        specs[spec.name] = scaled
        return schedulingInput(workloads: Array(specs.values), now: now)
    }

    /// Takes a result worked out off the actor; it is fresh from `now`, when it came.
    mutating func shortfallComputed(_ work: ShortfallWork, count: Int, now: Int64) {
        shortfallRunning.remove(work.workload)
        unplaceableCache[work.workload] = (work.wanted, work.version, count, now)
        autoscalePlans += 1
    }
}

/// One "what fits" check: the fleet with a workload scaled to `wanted`, planned in full.
struct ShortfallWork: Sendable {
    let workload: String
    let wanted: Int
    let version: UInt64
    let input: SchedulingInput

    /// How many of the workload's replicas a full plan of `input` leaves unplaced.
    static func shortfall(of workload: String, _ input: SchedulingInput) -> Int {
        Scheduler.plan(input).unplaced.filter { $0.workload == workload }.count
    }
}

extension Fleet {
    /// One autoscaling pass over every autoscaled workload.
    public func autoscale(now: Int64) {
        for name in state.autoscaled() {
            guard let decision = state.autoscaleDecision(for: name, now: now) else { continue }
            do {
                let before = try state.workload(name).spec.replicas
                try scale(workload: name, replicas: decision.replicas, reason: decision.reason)
                if decision.replicas > before { state.autoscaledUp(name) }
            } catch {
                logger.warning("autoscale failed", metadata: ["workload": "\(name)", "error": "\(error)"])
            }
        }
        // A large fleet's "what fits" is a full plan: worked out beside the actor, used by the next pass.
        for work in state.shortfallAsked {
            state.shortfallRunning.insert(work.workload)
            shortfalls[work.workload] = Task.detached(priority: .utility) { [weak self] in
                let count = ShortfallWork.shortfall(of: work.workload, work.input)
                await self?.shortfallComputed(work, count: count)
            }
        }
        state.shortfallAsked.removeAll()
    }

    func shortfallComputed(_ work: ShortfallWork, count: Int) {
        shortfalls[work.workload] = nil
        state.shortfallComputed(work, count: count, now: Self.nowMillis())
    }

    /// Fleets up to `devices` answer "what fits" on the actor (tests).
    func answerShortfallsInline(upTo devices: Int) { state.shortfallInlineDevices = devices }

    /// Waits for the "what fits" checks under way (tests).
    func shortfallsWorkedOut() async {
        for task in shortfalls.values { await task.value }
    }
}
