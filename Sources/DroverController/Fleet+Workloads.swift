import DroverAPI
import DroverCore
import DroverProtocol
import DroverScheduler
import DroverStore

public enum FleetError: Error, Sendable {
    case notFound(kind: String, name: String)
    case invalid(ValidationFailure)
    case storage(String)
}

extension FleetState {
    /// A `mode: every` workload's replicas are `NAME-DEVICE`: another workload whose name is
    /// `NAME-` and more could have the same replica ids (`cam` on device `gw-1` and ordinal 1
    /// of `cam-gw` are both `cam-gw-1`). Such a pair is refused, whichever comes second.
    func replicaIDClash(_ spec: WorkloadSpec) -> FieldError? {
        for other in workloads.values.map(\.spec) where other.name != spec.name {
            let (short, long) = spec.name.utf8.count < other.name.utf8.count ? (spec, other) : (other, spec)
            guard short.mode == .every, long.name.utf8.starts(with: (short.name + "-").utf8) else { continue }
            return FieldError(
                path: "metadata.name",
                reason: "'\(spec.name)' cannot live beside '\(other.name)': replicas of \(short.name) (mode: every) are named \(short.name)-DEVICE, and could take the names of \(long.name)'s; rename one")
        }
        return nil
    }

    mutating func apply(_ spec: WorkloadSpec, now: Int64, cause: String = "apply") throws(FleetError) -> (ApplyOutcome, Effects) {
        clock = now
        let problems = spec.validate()
        guard problems.isEmpty else { throw .invalid(ValidationFailure(problems)) }
        if let clash = replicaIDClash(spec) { throw .invalid(ValidationFailure([clash])) }
        let outcome: ApplyOutcome
        var record: WorkloadRecord
        // Whether what the replicas run changed (a new revision, or resources a revision does not count).
        var respec = false
        var spec = spec
        if let existing = workloads[spec.name], let auto = spec.autoscale {
            // The autoscaler owns the count of an autoscaled workload: re-applying its
            // manifest must not reset it.
            spec.replicas = min(max(existing.spec.replicas, auto.minReplicas), auto.maxReplicas)
        }
        if var existing = workloads[spec.name] {
            guard existing.spec != spec else { return (.unchanged, Effects()) }
            // A new template is a new revision; scale or placement changes are not.
            let newRevision = existing.spec.templateKey != spec.templateKey
            respec = newRevision || existing.spec.replica(id: "-") != spec.replica(id: "-")
            // A new revision during (or after a failed) rollout starts from the last good one:
            // replicas told the unfinished revision go back, then the new one comes in waves.
            let previous = existing.lastGoodRevision
            existing.spec = spec
            existing.updatedAt = now
            if newRevision {
                existing.addRevision(spec, cause: cause, now: now)
                // With a rollout and replicas out there, the new revision goes live in waves;
                // without, everywhere at once.
                let placed = !(replicasOf[spec.name] ?? []).isEmpty
                existing.rollout = spec.rollout != nil && placed && existing.history.contains { $0.revision == previous }
                    ? RolloutState(from: previous, to: existing.revision, now: now) : nil
            } else if !existing.history.isEmpty {
                existing.history[existing.history.count - 1].spec = spec
            }
            record = existing
            outcome = .configured
        } else {
            record = WorkloadRecord(spec: spec, revision: 1, createdAt: now, updatedAt: now, history: [RevisionRecord(revision: 1, spec: spec, createdAt: now, cause: cause)])
            outcome = .created
        }
        var batch = StoreBatch()
        workloads[spec.name] = record
        batch.workloads.append(record)
        event("WorkloadApplied", spec.name, "workload \(spec.name) \(outcome.rawValue) (revision \(record.revision), \(spec.replicas) replicas)\(cause == "apply" ? "" : ", \(cause)")", into: &batch)
        // Devices whose replicas stay where they are hear of it only when what those run changed.
        var messages = replan(workload: spec.name, respec: respec, into: &batch)
        messages += advanceRollouts(into: &batch)
        try refuseOversized(messages, field: "spec")
        return (outcome, Effects(batch, publish: messages))
    }

    /// Rolls the template back to revision `target` (default: the one before the current),
    /// as a new revision; the scale and placement stay as they are now.
    mutating func undo(workload name: String, to target: Int?, now: Int64) throws(FleetError) -> (WorkloadRecord, Effects) {
        guard let record = workloads[name] else { throw .notFound(kind: "workload", name: name) }
        let earlier = record.history.filter { $0.revision != record.revision }
        guard let wanted = target.map({ t in earlier.first { $0.revision == t } }) ?? earlier.last else {
            let kept = earlier.map { String($0.revision) }.joined(separator: ", ")
            throw .invalid(ValidationFailure([FieldError(
                path: "revision", reason: target.map { "workload \(name) has no revision \($0) to go back to (kept: \(kept.isEmpty ? "none" : kept))" } ?? "workload \(name) has no earlier revision")]))
        }
        // The template of then, the scale and placement of now.
        let spec = record.spec.withTemplate(of: wanted.spec)
        let (_, effects) = try apply(spec, now: now, cause: "undo to revision \(wanted.revision)")
        return (workloads[name] ?? record, effects)
    }

    mutating func delete(workload name: String, now: Int64) throws(FleetError) -> Effects {
        clock = now
        guard workloads[name] != nil else { throw .notFound(kind: "workload", name: name) }
        var batch = StoreBatch()
        workloads[name] = nil
        batch.deletedWorkloads.append(name)
        event("WorkloadDeleted", name, "workload \(name) deleted", into: &batch)
        // A workload made again under this name must not get the old one's encoded specs.
        DesiredJSON.forget(workload: name)
        let messages = replan(workload: name, respec: false, into: &batch)
        return Effects(batch, publish: messages)
    }

    mutating func scale(workload name: String, replicas count: Int, reason: String?, now: Int64) throws(FleetError) -> (WorkloadRecord, Effects) {
        clock = now
        guard var record = workloads[name] else { throw .notFound(kind: "workload", name: name) }
        guard (0...WorkloadSpec.maxReplicas).contains(count) else {
            throw .invalid(ValidationFailure([FieldError(path: "replicas", reason: "must be between 0 and \(WorkloadSpec.maxReplicas)")]))
        }
        guard record.spec.replicas != count else { return (record, Effects()) }
        let from = record.spec.replicas
        record.spec.replicas = count
        record.updatedAt = now
        var batch = StoreBatch()
        workloads[name] = record
        batch.workloads.append(record)
        event(reason == nil ? "WorkloadScaled" : "WorkloadAutoscaled", name, "workload \(name) scaled from \(from) to \(count)\(reason.map { " (\($0))" } ?? "")", into: &batch)
        let messages = replan(workload: name, respec: false, into: &batch)
        try refuseOversized(messages, field: "replicas")
        return (record, Effects(batch, publish: messages))
    }

    /// A change whose desired state for some device would exceed what a device accepts is
    /// refused whole (the `Fleet` actor puts memory back to what the store holds): otherwise
    /// the device would silently never hear of it.
    func refuseOversized(_ messages: [Desired], field: String) throws(FleetError) {
        // Each replica's spec is at most ~66 KiB (command and env 64 KiB): only devices with
        // many replicas can be too large, and only those are encoded to find out.
        let safe = WireCodec.maxDesiredBytes / (WorkloadSpec.Limits.commandAndEnvBytes + 2048)
        guard let big = messages.first(where: { $0.replicas.count > safe && WireCodec.encode($0).count > WireCodec.maxDesiredBytes }) else { return }
        let size = WireCodec.encode(big).count
        throw .invalid(ValidationFailure([FieldError(
            path: field, reason: "device \(big.device) would be sent \(size / 1024)Ki of desired state (\(big.replicas.count) replicas), over the \(WireCodec.maxDesiredBytes / 1024)Ki a device accepts; use smaller env or command, or fewer replicas per device")]))
    }

    /// What applying `spec` would do, computed by the same scheduler; changes nothing.
    func preview(_ spec: WorkloadSpec, now: Int64) throws(FleetError) -> PlanPreview {
        let problems = spec.validate()
        guard problems.isEmpty else { throw .invalid(ValidationFailure(problems)) }
        let existing = workloads[spec.name]
        let outcome: ApplyOutcome = existing == nil ? .created : existing?.spec == spec ? .unchanged : .configured
        var specs = workloads
        specs[spec.name] = WorkloadRecord(spec: spec, revision: 0, createdAt: 0, updatedAt: 0)
        let plan = Scheduler.plan(schedulingInput(workloads: specs.values.map(\.spec), now: now))
        var changes: [PlannedChange] = []
        var planned = Set<String>()
        for a in plan.assignments {
            planned.insert(a.id)
            if let row = replicas[a.id] {
                if row.device != a.device { changes.append(PlannedChange(action: "move", replica: a.id, workload: a.workload, device: a.device, from: row.device)) }
            } else {
                changes.append(PlannedChange(action: "place", replica: a.id, workload: a.workload, device: a.device, from: nil))
            }
        }
        let preempted = Set(plan.preempted.map(\.id))
        for row in replicas.values.sorted(by: { $0.id < $1.id }) where !planned.contains(row.id) {
            changes.append(PlannedChange(action: preempted.contains(row.id) ? "preempt" : "stop", replica: row.id, workload: row.workload, device: row.device, from: nil))
        }
        let pending = plan.unplaced.map { PendingReplica(id: $0.id, reasons: $0.reasons) }
        return PlanPreview(workload: spec.name, outcome: outcome, changes: changes, unplaced: pending)
    }

    // MARK: reads

    func workloadList() -> [WorkloadView] {
        workloads.values.sorted { $0.spec.name < $1.spec.name }.map(view)
    }

    func workload(_ name: String) throws(FleetError) -> WorkloadView {
        guard let record = workloads[name] else { throw .notFound(kind: "workload", name: name) }
        return view(record)
    }

    func view(_ record: WorkloadRecord) -> WorkloadView {
        let rows = self.rows(of: record.spec.name)
        // The scheduler keeps what waits, with its reasons, from its last plan or update.
        let pending = (scheduler?.unplaced ?? []).filter { $0.workload == record.spec.name }.map {
            PendingReplica(id: $0.id, reasons: $0.reasons)
        }
        return WorkloadView(
            name: record.spec.name, revision: record.revision, spec: record.spec,
            desiredReplicas: record.spec.mode == .every ? rows.count + pending.count : record.spec.replicas,
            runningReplicas: rows.filter { $0.phase == .running }.count, replicas: rows, unplaced: pending,
            createdAt: record.createdAt, updatedAt: record.updatedAt)
    }

    /// How many replicas each workload asks for: `replicas`, or for `mode: every` one per
    /// matching device (placed or waiting).
    func desiredCounts() -> [String: Int] {
        var counts = workloads.mapValues { $0.spec.mode == .every ? 0 : $0.spec.replicas }
        guard workloads.values.contains(where: { $0.spec.mode == .every }) else { return counts }
        for row in replicas.values where workloads[row.workload]?.spec.mode == .every { counts[row.workload, default: 0] += 1 }
        for u in scheduler?.unplaced ?? [] where workloads[u.workload]?.spec.mode == .every { counts[u.workload, default: 0] += 1 }
        return counts
    }
}
