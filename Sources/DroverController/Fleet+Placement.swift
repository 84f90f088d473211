import DroverAPI
import DroverCore
import DroverProtocol
import DroverScheduler
import DroverStore

extension FleetState {
    /// How often placement runs over the whole fleet even when nothing asked for it: measured
    /// connectivity (uptime ratio, RTT) drifts with time, and `minUptime` is a hard constraint.
    static let reconcileInterval: Int64 = 300_000

    /// Plans the whole fleet afresh (the first plan after a start or a reload) and turns the
    /// plan into replica rows and per-device desired state. Only devices whose replica set
    /// changed get a new generation.
    mutating func replan(into batch: inout StoreBatch, now: Int64? = nil) -> [Desired] {
        let now = now ?? clock
        let start = ContinuousClock.now
        let fresh = IncrementalScheduler(schedulingInput(workloads: workloads.values.map(\.spec), now: now))
        return install(fresh, plan: fresh.plan, millis: Self.millis(since: start), into: &batch, now: now)
    }

    /// Makes `fresh`, a full plan, the placement: writes what it moved, and looks at the
    /// desired state of the devices it moved replicas on and of those `looking` names (nil:
    /// every device's). `changes`: what the plan places anew or moves and the replicas it no
    /// longer has, when known (nil: found here, against every row).
    mutating func install(
        _ fresh: IncrementalScheduler, plan: PlacementPlan, changes: (placed: [Assignment], stopped: Set<String>)? = nil, millis: Double,
        looking: Set<String>? = nil, into batch: inout StoreBatch, now: Int64
    ) -> [Desired] {
        scheduler = fresh
        lastFullPlan = now
        reconciling = nil
        placementStats.fullPlans += 1
        placementStats.lastFullPlanMillis = millis
        placementRuns.append((full: true, millis: millis))
        let (placed, stale) = changes ?? (plan.assignments, Set(replicas.keys).subtracting(plan.assignments.map(\.id)))
        let moved = record(placed: placed, stopped: stale, preempted: plan.preempted, into: &batch, now: now)
        // A device may have been left with a desired state it no longer has. What the safety
        // net found astray (or, with nothing named, every device) is made afresh, not reused.
        if let looking {
            for id in looking { desiredStamps[id] = nil }
        } else {
            desiredStamps = [:]
        }
        return desiredMessages(for: looking.map { moved.union($0) } ?? Set(devices.keys).union(desired.keys), into: &batch)
    }

    /// Devices changed (presence, schedulability, facts) or joined: re-plans only the
    /// workloads they touched, through the incremental scheduler. Falls back to a full plan
    /// when there is none yet.
    mutating func replan(devices ids: [String], into batch: inout StoreBatch, now: Int64? = nil) -> [Desired] {
        let now = now ?? clock
        guard let scheduler else { return replan(into: &batch, now: now) }
        reconciling?.devices.formUnion(ids)
        let start = ContinuousClock.now
        var added: [Assignment] = []
        var removed: [Assignment] = []
        var preempted: [Assignment] = []
        for id in ids {
            guard let d = devices[id] else { continue }
            let delta = scheduler.update(device: snapshot(d, now: now), now: now)
            // A replica moved twice within these updates: the later placement wins.
            let readded = Set(delta.removed.map(\.id))
            added.removeAll { readded.contains($0.id) }
            added += delta.added
            removed += delta.removed
            preempted += delta.preempted
        }
        let touched = recordIncremental(PlanDelta(added: added, removed: removed, preempted: preempted), since: start, into: &batch, now: now)
        return desiredMessages(for: touched, into: &batch)
    }

    /// Workload `name` was applied, scaled or deleted: re-plans it, and what it pushes or
    /// frees, through the incremental scheduler. Falls back to a full plan when there is none
    /// yet. Devices hosting it are sent a new desired state when `respec` (its replicas'
    /// spec may have changed), else only those whose replicas moved.
    mutating func replan(workload name: String, respec: Bool, into batch: inout StoreBatch, now: Int64? = nil) -> [Desired] {
        let now = now ?? clock
        guard let scheduler else { return replan(into: &batch, now: now) }
        reconciling?.workloads.insert(name)
        let start = ContinuousClock.now
        let delta = scheduler.update(workload: name, spec: workloads[name]?.spec, now: now)
        var touched = recordIncremental(delta, since: start, into: &batch, now: now)
        if respec { touched.formUnion(rows(of: name).map(\.device)) }
        return desiredMessages(for: touched, into: &batch)
    }

    /// Counts an incremental plan begun at `start` and writes what it moved (a replica removed
    /// and placed again is a move); returns the devices whose replica set changed.
    private mutating func recordIncremental(_ delta: PlanDelta, since start: ContinuousClock.Instant, into batch: inout StoreBatch, now: Int64) -> Set<String> {
        placementStats.incrementalPlans += 1
        placementStats.lastIncrementalMillis = Self.millis(since: start)
        placementRuns.append((full: false, millis: placementStats.lastIncrementalMillis))
        let stopped = Set(delta.removed.map(\.id)).subtracting(delta.added.map(\.id))
        var touched = record(placed: delta.added, stopped: stopped, preempted: delta.preempted, into: &batch, now: now)
        touched.formUnion(delta.removed.map(\.device))
        return touched
    }

    /// Up to this many replicas of a workload placed at once get an event each; more get
    /// one event that counts them (a 5,000-replica apply would otherwise write 5,000 events
    /// and push older ones out of the bounded log).
    static let placedEventsEach = 20

    /// Writes placements and removals to the replica rows; returns the devices whose replica
    /// set changed.
    @discardableResult
    private mutating func record(placed: [Assignment], stopped: Set<String>, preempted: [Assignment], into batch: inout StoreBatch, now: Int64) -> Set<String> {
        var touched = Set<String>(minimumCapacity: min(placed.count + stopped.count, devices.count))
        // Placements by workload, for their events.
        var placedOf: [String: [Assignment]] = [:]
        var placedOrder: [String] = []
        // Placements come in runs of one workload: the run's list is kept at hand, and the
        // workload's replica ids made room for at once.
        var run: (workload: String, list: [Assignment])?
        func endRun() {
            guard let (workload, list) = run else { return }
            if placedOf[workload] == nil { placedOrder.append(workload) }
            placedOf[workload, default: []] += list
            run = nil
        }
        for id in stopped.sorted() {
            guard let row = replicas.removeValue(forKey: id) else { continue }
            replicasOn[row.device]?.remove(id)
            replicasOf[row.workload]?.remove(id)
            touched.insert(row.device)
            batch.deletedReplicas.append(id)
        }
        for (index, a) in placed.enumerated() {
            let previous = replicas[a.id]
            if let previous, previous.device == a.device { continue }
            if let previous {
                replicasOn[previous.device]?.remove(a.id)
                touched.insert(previous.device)
            }
            let row = ReplicaRow(id: a.id, workload: a.workload, ordinal: a.ordinal, device: a.device, updatedAt: now)
            replicas[row.id] = row
            replicasOn[a.device, default: []].insert(a.id)
            if run?.workload != a.workload {
                endRun()
                run = (a.workload, [])
                // (Room for this run only: a full plan's placements come in runs of many workloads.)
                let length = placed[index...].prefix { $0.workload == a.workload }.count
                replicasOf[a.workload, default: []].reserveCapacity((replicasOf[a.workload]?.count ?? 0) + length)
            }
            replicasOf[a.workload, default: []].insert(a.id)
            touched.insert(a.device)
            batch.replicas.append(row)
            run?.list.append(a)
        }
        endRun()
        if !touched.isEmpty { placementEdits &+= 1 }
        for workload in placedOrder {
            let list = placedOf[workload] ?? []
            guard list.count > Self.placedEventsEach else {
                for a in list { event("ReplicaPlaced", a.workload, "replica \(a.id) placed on \(a.device)", into: &batch) }
                continue
            }
            let shown = list.prefix(5).map { "\($0.id) on \($0.device)" }.joined(separator: ", ")
            event("ReplicaPlaced", workload, "\(list.count) replicas of \(workload) placed on \(Set(list.map(\.device)).count) devices: \(shown), and \(list.count - 5) more", into: &batch)
        }
        for a in preempted {
            event("ReplicaPreempted", a.workload, "replica \(a.id) on \(a.device) preempted by a higher-priority workload", into: &batch)
        }
        return touched
    }

    /// New desired state for those of `ids` whose replica set differs from what they were sent.
    mutating func desiredMessages(for ids: Set<String>, into batch: inout StoreBatch) -> [Desired] {
        var messages: [Desired] = []
        let specs = ReplicaSpecs(workloads)
        workloadStamps.begin(workloads)
        for id in ids.sorted() {
            guard let write = updateDesired(of: id, specs) else { continue }
            batch.desired.append(write)
            messages.append(Desired(device: id, generation: write.record.generation, replicas: write.record.replicas))
        }
        return messages
    }

    /// What device `id` is to run as its rows stand, in id order.
    static func specs(on id: String, replicasOn: [String: SortedIDs], replicas: [String: ReplicaRow], _ specs: ReplicaSpecs) -> [ReplicaSpec] {
        // (Ids sorted before the specs are made: sorting the specs moved whole structs.)
        (replicasOn[id] ?? []).sorted().compactMap { r in replicas[r].flatMap { specs.spec(of: r, workload: $0.workload) } }
    }

    static func millis(since start: ContinuousClock.Instant) -> Double {
        let d = (ContinuousClock.now - start).components
        return Double(d.seconds) * 1000 + Double(d.attoseconds) / 1e15
    }

    /// A device as the scheduler sees it at `now`.
    func snapshot(_ d: DeviceRecord, now: Int64) -> DeviceSnapshot {
        DeviceSnapshot(
            id: d.id, labels: d.facts.labels, arch: d.facts.arch, capacity: d.facts.capacity, runtimes: Set(d.facts.runtimes),
            presence: d.presence, schedulability: Schedulability(rawValue: d.schedulability) ?? .normal,
            connectivity: ConnectivityRecord(
                linkClass: d.facts.link ?? .wired, uptimeRatio: d.uptimeRatio(at: now), flaps: d.flaps, lastSeen: sight.effectiveLastSeen(d.lastSeen, now: now), rttMillis: d.rttMillis))
    }

    /// Devices, the given workloads and the replicas as they stand, for the scheduler.
    func schedulingInput(workloads specs: [WorkloadSpec], now: Int64) -> SchedulingInput {
        let current = replicas.values.map { r in
            r.ordinal >= 0 ? Assignment(workload: r.workload, ordinal: r.ordinal, device: r.device) : Assignment(everyOf: r.workload, device: r.device)
        }
        return SchedulingInput(devices: devices.values.map { snapshot($0, now: now) }, workloads: specs, current: current, now: now)
    }
}

/// Replica specs made from their workloads' templates: a change re-sends the whole desired
/// state of every device it touches, mostly other workloads' replicas, and making each spec
/// from its workload record anew (a copy of the record per replica) was much of a large
/// apply's time. Here each workload's record is looked up once and each template made once.
final class ReplicaSpecs {
    private let workloads: [String: WorkloadRecord]
    private var made: [String: Templates] = [:]
    /// The workload asked for last (replicas of one workload come in runs).
    private var last: Templates?

    /// One workload's record and the templates made from it so far, each with the hash of
    /// its JSON.
    final class Templates {
        let record: WorkloadRecord
        var byAssignment: [ReplicaAssignment: (spec: ReplicaSpec, hash: UInt64)] = [:]
        init(_ record: WorkloadRecord) { self.record = record }
    }

    init(_ workloads: [String: WorkloadRecord]) { self.workloads = workloads }

    /// What replica `id` of `workload` runs (`WorkloadRecord.replicaSpec(id:)`); nil for a workload that is gone.
    func spec(of id: String, workload: String) -> ReplicaSpec? {
        made(id, workload)?.spec
    }

    /// The spec and its hash: the hash of its template's JSON, then of its id (FNV-1a 64).
    /// Equal specs hash the same in every run and on every machine; a device's digest is the
    /// sum of its replicas' hashes (`digest(_:)`).
    func made(_ id: String, _ workload: String) -> (spec: ReplicaSpec, hash: UInt64)? {
        let templates: Templates
        if let last, last.record.spec.name == workload {
            templates = last
        } else if let known = made[workload] {
            templates = known
        } else {
            guard let record = workloads[workload] else { return nil }
            templates = Templates(record)
            made[workload] = templates
        }
        last = templates
        let assignment = templates.record.assignment(of: id)
        var template: (spec: ReplicaSpec, hash: UInt64)
        if let known = templates.byAssignment[assignment] {
            template = known
        } else {
            let spec = templates.record.replicaTemplate(assignment)
            template = (spec, DesiredJSON.fnv(DesiredJSON.encode(replica: spec)))
            templates.byAssignment[assignment] = template
        }
        template.spec.id = id
        return (template.spec, DesiredJSON.fnv(id.utf8, from: template.hash))
    }

    /// A device's digest: the sum of its replicas' hashes (the order does not matter).
    static func digest(_ hashes: some Sequence<UInt64>) -> UInt64 {
        hashes.reduce(0, &+)
    }
}
