import DroverCore
import DroverProtocol
import DroverStore

/// Rollouts: the pure `RolloutEngine` stepped on every report, presence check and apply, its
/// state kept with the workload (so a controller restart resumes it), its assignments sent
/// to devices as the revision each replica is to run.
extension FleetState {
    /// Steps every active rollout (or those of `only`); returns the desired state to send for
    /// what changed.
    mutating func advanceRollouts(into batch: inout StoreBatch, only: Set<String>? = nil) -> [Desired] {
        var touched = Set<String>()
        var reverted: [String] = []
        let active = (only.map { Array($0) } ?? Array(workloads.keys)).filter { workloads[$0]?.rollout?.isActive == true }
        for name in active.sorted() {
            guard var record = workloads[name], let state = record.rollout, state.isActive else { continue }
            let rows = self.rows(of: name)
            let spec = record.spec.rollout ?? RolloutSpec()
            // A second instance on the host network would claim the same ports, and its http or
            // tcp probes would reach the first one: no surge then.
            let target = record.history.first { $0.revision == state.to }?.spec ?? record.spec
            let old = record.history.first { $0.revision == state.from }?.spec
            let surgeable = spec.maxSurge > 0 && target.ports.isEmpty && !target.probes.usePorts && (old?.ports.isEmpty ?? true)
            let view = rows.map { row in
                let device = devices[row.device]
                return RolloutReplica(
                    id: row.id, labels: device?.facts.labels ?? [:], online: device?.presence == .online,
                    runs: row.phase == .running ? row.revision : nil, ready: row.ready ?? (row.phase == .running),
                    failing: row.phase == .restarting || row.phase == .failed || (row.phase == .exited && row.exitCode != 0),
                    device: row.device, surgeCost: surgeable && row.phase == .running ? target.resources : nil)
            }
            let room = surgeable ? surgeRoom(on: Set(rows.map(\.device))) : [:]
            let step = RolloutEngine.step(state, spec: spec, replicas: view, now: clock, deviceRoom: room)
            guard step.state != state else { continue }
            record.rollout = step.state
            // Only when readiness bookkeeping changed: kept in memory, stored with the next
            // change that counts (a write of the whole record per report was most of the cost).
            guard !step.state.sameDurably(as: state) else {
                workloads[name] = record
                continue
            }
            if step.state.phase == .rollingBack, state.phase != .rollingBack {
                revert(&record, to: step.state)
                reverted.append(name)
            }
            if step.state.phase == .failed, state.phase != .rollingBack, let i = record.history.firstIndex(where: { $0.revision == state.to }) {
                record.history[i].outcome = "failed: \(step.state.message)"
            }
            workloads[name] = record
            batch.workloads.append(record)
            for e in step.events { event("Rollout", name, "\(name): \(e)", into: &batch) }
            // The devices whose replicas were told something new; all of them when the phase
            // changed (a rollback changes the template, an end drops the surge flags).
            if step.state.phase != state.phase {
                touched.formUnion(rows.map(\.device))
            } else {
                for row in rows where step.state.assigned[row.id] != state.assigned[row.id] || step.state.surged.contains(row.id) != state.surged.contains(row.id) {
                    touched.insert(row.device)
                }
            }
        }
        // A rollback puts the old revision's resources, runtime, ports and volumes back: the
        // scheduler re-plans the workload with them (and a reconciliation under way replays it).
        var moved: [Desired] = []
        for name in reverted { moved += replan(workload: name, respec: false, into: &batch) }
        return moved + (touched.isEmpty ? [] : desiredMessages(for: touched, into: &batch))
    }

    /// What each device has left for a second instance of a replica: its capacity less what
    /// its replicas ask for (by the revision each runs), less the surges under way there (a
    /// replica told to surge whose new instance is not yet running ready, so that its old one
    /// still runs).
    func surgeRoom(on ids: Set<String>) -> [String: Resources] {
        var room: [String: Resources] = [:]
        for id in ids {
            guard let device = devices[id] else { continue }
            var left = device.facts.capacity
            for r in replicasOn[id] ?? [] {
                guard let row = replicas[r], let workload = workloads[row.workload] else { continue }
                let runs = workload.history.first { $0.revision == row.revision }?.spec.resources ?? workload.spec.resources
                left = left - runs
                if let rollout = workload.rollout, rollout.isActive || rollout.phase == .paused, rollout.surged.contains(r), rollout.assigned[r] == rollout.to,
                    !(row.phase == .running && row.revision == rollout.to && row.ready != false) {
                    left = left - (workload.history.first { $0.revision == rollout.from }?.spec.resources ?? runs)
                }
            }
            room[id] = left
        }
        return room
    }

    /// A rollout that rolls back makes the old revision current again (its template, today's
    /// scale and placement); the new one is marked rolled back in the history.
    mutating func revert(_ record: inout WorkloadRecord, to state: RolloutState) {
        guard let old = record.history.first(where: { $0.revision == state.from })?.spec else { return }
        record.spec = record.spec.withTemplate(of: old)
        record.revision = state.from
        for i in record.history.indices {
            if record.history[i].revision == state.to { record.history[i].outcome = "rolled back: \(state.message)" }
            if record.history[i].revision == state.from { record.history[i].outcome = nil }
        }
    }

    /// `pause`, `resume` or `abort` (which rolls back) of a workload's rollout.
    mutating func control(rollout name: String, _ action: RolloutAction, now: Int64) throws(FleetError) -> (WorkloadRecord, Effects) {
        clock = now
        guard var record = workloads[name] else { throw .notFound(kind: "workload", name: name) }
        guard var state = record.rollout, state.isActive || state.phase == .paused else {
            throw .invalid(ValidationFailure([FieldError(path: "rollout", reason: "workload \(name) has no rollout going on")]))
        }
        var batch = StoreBatch()
        switch action {
        case .pause:
            guard state.phase != .paused else { return (record, Effects()) }
            state.pausedFrom = state.phase
            state.phase = .paused
            state.message = "paused in wave \(state.wave + 1)"
        case .resume:
            guard state.phase == .paused else { return (record, Effects()) }
            state.phase = state.pausedFrom ?? .progressing
            state.pausedFrom = nil
            // Its deadline counts afresh: a pause is not slowness.
            state.since = now
            state.assignedAt = state.assignedAt.mapValues { max($0, now) }
            state.message = "resumed in wave \(state.wave + 1)"
        case .abort:
            for (id, revision) in state.assigned where revision == state.to { state.assigned[id] = state.from }
            state.phase = .rollingBack
            state.pausedFrom = nil
            state.since = now
            state.message = "aborted: rolling back to revision \(state.from)"
            revert(&record, to: state)
        }
        record.rollout = state
        workloads[name] = record
        batch.workloads.append(record)
        event("Rollout", name, "\(name): rollout to revision \(state.to) \(action.rawValue)d", into: &batch)
        // An abort puts the old revision's template back: re-planned with it (see `advanceRollouts`).
        let moved = action == .abort ? replan(workload: name, respec: false, into: &batch) : []
        let devices = Set(rows(of: name).map(\.device))
        let messages = moved + desiredMessages(for: devices, into: &batch)
        let stepped = advanceRollouts(into: &batch)
        return (record, Effects(batch, publish: messages + stepped))
    }
}

public enum RolloutAction: String, Sendable {
    case pause, resume, abort
}
