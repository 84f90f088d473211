import DroverCore
import DroverProtocol
import DroverScheduler
import DroverStore

/// The periodic full plan (every `reconcileInterval`), computed off the actor: at 10,000
/// devices placement alone takes about half a second, which held every beat, report and API
/// request behind it. The fleet's state goes on changing meanwhile; what changed is noted
/// here and replayed through the fresh scheduler before it is installed, so that what lands
/// is a full plan of the fleet as it is when it lands.
struct Reconciliation {
    let token: Int
    /// When it began: the time its plan was computed for.
    let began: Int64
    /// `placementEdits` when it began.
    let edits: Int
    /// Devices and workloads re-planned since the reconciliation began.
    var devices: Set<String> = []
    var workloads: Set<String> = []
}

/// What a reconciliation works from, taken on the actor when it begins: the scheduling input,
/// and every device's desired state beside the rows it should follow (copy-on-write: taking
/// them copies nothing).
struct ReconciliationWork: Sendable {
    let input: SchedulingInput
    let replicasOn: [String: SortedIDs]
    let replicas: [String: ReplicaRow]
    let workloads: [String: WorkloadRecord]
    let desired: [String: DesiredRecord]

    /// Devices whose desired state is not what their rows give. The safety net of the
    /// periodic plan (a device left with a state it no longer has) looked at every device on
    /// the actor: at 10,000 devices most of the time the actor was held.
    func stale() -> Set<String> {
        let specs = ReplicaSpecs(workloads)
        var out = Set<String>()
        for id in Set(replicasOn.keys).union(desired.keys) where (desired[id]?.replicas ?? []) != FleetState.specs(on: id, replicasOn: replicasOn, replicas: replicas, specs) {
            out.insert(id)
        }
        return out
    }
}

/// A scheduler built off the actor and handed over whole: the task that built it keeps no
/// reference, so the actor is its only user from then on.
final class ComputedPlan: @unchecked Sendable {
    let scheduler: IncrementalScheduler
    let plan: PlacementPlan
    /// Devices whose desired state did not follow their rows when the work was taken.
    let stale: Set<String>
    /// What the plan changes against the rows it was computed from: placements that move or
    /// are new, and replicas it no longer has. (Found on the actor, over the whole fleet, this
    /// was most of the time a reconciliation held it.)
    let moved: [Assignment]
    let stopped: Set<String>
    let millis: Double

    init(_ work: ReconciliationWork) {
        let start = ContinuousClock.now
        scheduler = IncrementalScheduler(work.input)
        plan = scheduler.plan
        stale = work.stale()
        moved = plan.assignments.filter { work.replicas[$0.id]?.device != $0.device }
        let planned = Set(plan.assignments.map(\.id))
        stopped = Set(work.replicas.keys.lazy.filter { !planned.contains($0) })
        millis = FleetState.millis(since: start)
    }
}

extension FleetState {
    /// Starts a reconciliation when one is due and none runs: the input to plan from, and
    /// the token its result must carry back. Not while the controller is blind (presence is
    /// not judged then), nor before the first plan after a start or a reload (the sweep runs
    /// that one).
    mutating func beginReconciliation(now: Int64) -> (work: ReconciliationWork, token: Int)? {
        guard scheduler != nil, reconciling == nil, !sight.isBlind, now - lastFullPlan >= Self.reconcileInterval, !workloads.isEmpty else { return nil }
        reconcileToken &+= 1
        reconciling = Reconciliation(token: reconcileToken, began: now, edits: placementEdits)
        lastFullPlan = now
        let work = ReconciliationWork(
            input: schedulingInput(workloads: workloads.values.map(\.spec), now: now), replicasOn: replicasOn, replicas: replicas, workloads: workloads, desired: desired)
        return (work, reconcileToken)
    }

    /// Installs a reconciliation's plan, after replaying what changed while it was computed.
    /// Dropped when the state was reloaded, or planned afresh, meanwhile.
    mutating func finishReconciliation(_ computed: ComputedPlan, token: Int, now: Int64) -> Effects {
        guard let r = reconciling, r.token == token else { return Effects() }
        // Never before the time it was planned for (tests and benchmarks sweep ahead of the clock).
        let now = max(now, r.began)
        clock = max(clock, now)
        let start = ContinuousClock.now
        let fresh = computed.scheduler
        var plan = computed.plan
        if !r.workloads.isEmpty || !r.devices.isEmpty {
            // Each update reports only its own preemptions: all of them get their events.
            var preempted = plan.preempted
            for name in r.workloads.sorted() { preempted += fresh.update(workload: name, spec: workloads[name]?.spec, now: now).preempted }
            for id in r.devices.sorted() {
                if let d = devices[id] { preempted += fresh.update(device: snapshot(d, now: now), now: now).preempted }
            }
            plan = fresh.plan
            plan.preempted = preempted
        }
        var batch = StoreBatch()
        // Nothing re-planned or moved meanwhile: the rows are what the plan was computed
        // from, and what it changes was found off the actor.
        let changes = r.workloads.isEmpty && r.devices.isEmpty && r.edits == placementEdits ? (placed: computed.moved, stopped: computed.stopped) : nil
        // Devices changed meanwhile had their desired state made anew then; those the plan
        // moves are looked at by `install`.
        let messages = install(
            fresh, plan: plan, changes: changes, millis: computed.millis + Self.millis(since: start), looking: computed.stale, into: &batch, now: now)
        return Effects(batch, publish: messages)
    }
}

extension Fleet {
    /// Called by the periodic sweep: starts the reconciliation when one is due. Its plan is
    /// computed on a task of its own and installed by `finishReconciliation`.
    func reconcileIfDue(now: Int64) {
        guard let (work, token) = state.beginReconciliation(now: now) else { return }
        reconciliation = Task.detached(priority: .utility) { [weak self] in
            let computed = ComputedPlan(work)
            await self?.finishReconciliation(computed, token: token)
        }
    }

    func finishReconciliation(_ computed: ComputedPlan, token: Int) {
        // A failed write is logged by `perform`, which reloads the state: the next sweep plans
        // afresh (so does a reload here, which drops this plan).
        guard (try? resync()) != nil else { return }
        try? perform(state.finishReconciliation(computed, token: token, now: Self.nowMillis()))
    }

    /// Waits for the reconciliation under way, if any (tests and benchmarks).
    public func reconciled() async {
        await reconciliation?.value
    }
}
