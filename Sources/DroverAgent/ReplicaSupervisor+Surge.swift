import DroverAgentStore
import DroverCore
import DroverProtocol

/// Surges (a rollout's `maxSurge`): a replica told to surge to a new revision keeps its
/// running instance as `retiring` and starts the new one beside it, in its other slot (its
/// own directory and container name); the old one stops once the new one runs ready, so the
/// replica never has a gap. A rollback before then makes the old instance the replica again
/// at once, and stops the new one.
///
/// A retiring instance is on disk under `ID+retiring`, so that an agent that restarts adopts
/// it again (or finishes its stop): no process ever runs untracked.
extension ReplicaSupervisor {
    struct Retiring: Sendable {
        var record: ReplicaRecord
        var process: RuntimeProcess
    }

    /// An instance whose process `reconcile` stops: `key` is its record's key in `agent.db`.
    struct InstanceStop: Sendable {
        var key: String
        var replica: String
        var process: RuntimeProcess
        var driver: any RuntimeDriver

        init(key: String, process: RuntimeProcess, driver: any RuntimeDriver, replica: String? = nil) {
            self.key = key
            self.replica = replica ?? key
            self.process = process
            self.driver = driver
        }
    }

    /// Moves the running instance of `id` aside, to run on until its replacement is ready,
    /// when it is told to surge and can: it runs, and no other instance of it is retiring or
    /// stopping. Returns whether it did.
    func retire(_ id: String) -> Bool {
        guard desired[id]?.surge == true, retiring[id] == nil, stopping[ReplicaRecord.retiringKey(id)] == nil,
            var record = records[id], record.phase == .running, let process = live[id]?.process
        else { return false }
        record.retiring = true
        // In one transaction: a crash leaves it under one key or the other, never both or none.
        store(deleting: [id], saving: [record])
        retiring[id] = Retiring(record: record, process: process)
        records[id] = nil
        live[id] = nil
        logger.info("surge: the old instance runs until the new one is ready", metadata: ["replica": "\(id)", "pid": "\(process.pid)"])
        return true
    }

    /// Part of `reconcile`: a retiring instance whose template is wanted again (a rollback)
    /// becomes the replica again, and the new instance is stopped; one whose replica is gone,
    /// or changed to a third template, is stopped. Returns the replicas that changed.
    func reconcileRetiring(_ stops: inout [InstanceStop]) -> [ReplicaStatus] {
        var changed: [ReplicaStatus] = []
        for (id, old) in retiring.sorted(by: { $0.key < $1.key }) {
            let key = ReplicaRecord.retiringKey(id)
            guard let driver = drivers[old.record.spec.runtime] else { continue }
            if let want = desired[id], want.revisionKey == old.record.spec.revisionKey {
                // (A new instance being started is dealt with once its start is done.)
                guard live[id]?.starting != true else { continue }
                var promoted = old.record
                promoted.retiring = nil
                promoted.spec = want
                // The two change places in one transaction: a crash loses neither.
                var saving = [promoted]
                if let current = records[id], let process = live[id]?.process, let newDriver = drivers[current.spec.runtime] {
                    var gone = current
                    gone.retiring = true
                    gone.stopping = true
                    saving.append(gone)
                    stopping[key] = process
                    stops.append(InstanceStop(key: key, process: process, driver: newDriver, replica: id))
                }
                store(deleting: [key], saving: saving)
                records[id] = promoted
                var state = Live(process: old.process, startedAt: .now)
                state.probes.startupPassed = true
                live[id] = state
                retiring[id] = nil
                changed.append(status(of: promoted, phase: promoted.phase))
                logger.info("surge undone: the old instance is the replica again", metadata: ["replica": "\(id)", "pid": "\(old.process.pid)"])
            } else if desired[id]?.surge != true || (records[id] != nil && desired[id]?.revisionKey != records[id]?.spec.revisionKey) {
                // Gone, changed to a third template, or the surge is over (the rollout ended:
                // the replica is what the new instance is). With no record beside it (an agent
                // that went down right after moving it aside) it stays: the new one starts now.
                var gone = old.record
                gone.stopping = true
                save(gone)
                stopping[key] = old.process
                stops.append(InstanceStop(key: key, process: old.process, driver: driver, replica: id))
                retiring[id] = nil
            }
        }
        return changed
    }

    /// Part of every supervision pass: a retiring instance stops once the new one runs ready
    /// (or is forgotten when it ended by itself). The stop runs in the background; the
    /// instance is tracked in `stopping` until it is gone.
    func finishSurges() {
        for (id, old) in retiring.sorted(by: { $0.key < $1.key }) {
            guard let driver = drivers[old.record.spec.runtime] else { continue }
            var ended = false
            if case .ended = driver.state(of: old.process) { ended = true }
            let startedUp = live[id]?.probes.startupPassed == true || records[id]?.spec.probes.startup == nil
            let replaced = records[id]?.phase == .running && live[id]?.process != nil && live[id]?.starting != true && records[id]?.ready != false && startedUp
            guard ended || replaced else { continue }
            let key = ReplicaRecord.retiringKey(id)
            var gone = old.record
            gone.stopping = true
            save(gone)
            retiring[id] = nil
            stopping[key] = old.process
            logger.info(ended ? "surge: the old instance ended" : "surge: the new instance is ready; stopping the old one", metadata: ["replica": "\(id)", "pid": "\(old.process.pid)"])
            let grace = stopGrace
            Task {
                await driver.stop(old.process, grace: grace)
                self.finishStop(key, of: id)
            }
        }
    }

    func finishStop(_ key: String, of id: String) {
        stopping[key] = nil
        forget(key)
        // Removed meanwhile: its files go now that nothing uses them.
        if desired[id] == nil, records[id] == nil { removeFiles(id) }
    }

    func store(deleting keys: [String], saving records: [ReplicaRecord]) {
        do {
            try store.saveReplicas(deleting: keys, saving: records)
        } catch {
            logger.error("cannot save replica records", metadata: ["records": "\(records.map(\.storeKey))", "error": "\(error)"])
        }
    }

    /// Part of `recover`: a retiring instance still running is adopted as such (the next
    /// pass decides whether it stops); one that is gone is forgotten.
    func recoverRetiring(_ record: ReplicaRecord) async {
        if let process = adoptable(record) {
            retiring[record.spec.id] = Retiring(record: record, process: process)
            logger.info("adopted the old instance of a surge", metadata: ["replica": "\(record.spec.id)", "pid": "\(process.pid)"])
            return
        }
        if record.spec.runtime.isContainer, let driver = drivers[record.spec.runtime] {
            await driver.stop(process(of: record, pid: record.pid ?? 0), grace: .zero)
        }
        forget(record.storeKey)
    }
}
