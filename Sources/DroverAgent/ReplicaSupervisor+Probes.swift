import DroverCore
import DroverProtocol
import Glibc

/// Health probes, run by the agent itself (offline too): a replica's startup probe gates its
/// liveness and readiness probes until it passes once; a startup or liveness probe that fails
/// `failureThreshold` times in a row restarts the replica (by its restart policy, with the
/// reason); readiness changes are booked and reported like any status change. Each check runs
/// on a thread of its own; its outcome is booked only if the same process still runs.
extension ReplicaSupervisor {
    enum ProbeKind: String, Sendable { case startup, liveness, readiness }

    struct ProbeState {
        var startupPassed = false
        var next: [ProbeKind: ContinuousClock.Instant] = [:]
        var inFlight: Set<ProbeKind> = []
        var passes: [ProbeKind: Int] = [:]
        var failures: [ProbeKind: Int] = [:]
    }

    /// Starts the checks that are due (from `tick`).
    func runProbes() {
        let now = ContinuousClock.now
        for (id, state) in live {
            guard let process = state.process, let startedAt = state.startedAt, let record = records[id], !record.spec.probes.isEmpty,
                let driver = drivers[record.spec.runtime]
            else { continue }
            let probes = record.spec.probes
            var due: [(ProbeKind, Probe)] = []
            if let startup = probes.startup, !state.probes.startupPassed {
                due = [(.startup, startup)]
            } else {
                due = [(ProbeKind.liveness, probes.liveness), (.readiness, probes.readiness)].compactMap { kind, probe in probe.map { (kind, $0) } }
            }
            for (kind, probe) in due where !state.probes.inFlight.contains(kind) {
                guard (state.probes.next[kind] ?? startedAt + .seconds(probe.initialDelaySeconds)) <= now else { continue }
                live[id]?.probes.inFlight.insert(kind)
                let spec = record.spec
                Task {
                    let outcome = await OffPool.run { Self.check(probe, driver: driver, process: process, spec: spec) }
                    await self.probed(id, pid: process.pid, kind: kind, probe: probe, outcome: outcome)
                }
            }
        }
    }

    static func check(_ probe: Probe, driver: any RuntimeDriver, process: RuntimeProcess, spec: ReplicaSpec) -> ProbeCheck.Outcome {
        let timeout = Duration.seconds(probe.timeoutSeconds)
        switch probe.action {
        case .exec(let command): return driver.probe(command, in: process, spec: spec, timeout: timeout)
        case .http(let path, let port): return ProbeCheck.http(path: path, port: port, timeout: timeout)
        case .tcp(let port): return ProbeCheck.tcp(port: port, timeout: timeout)
        }
    }

    func probed(_ id: String, pid: Int32, kind: ProbeKind, probe: Probe, outcome: ProbeCheck.Outcome) async {
        guard var state = live[id], state.process?.pid == pid, var record = records[id] else { return }
        state.probes.inFlight.remove(kind)
        state.probes.next[kind] = .now + .seconds(probe.periodSeconds)
        let passes = outcome.ok ? min(state.probes.passes[kind] ?? 0, 1_000_000) + 1 : 0
        let failures = outcome.ok ? 0 : min(state.probes.failures[kind] ?? 0, 1_000_000) + 1
        state.probes.passes[kind] = passes
        state.probes.failures[kind] = failures
        switch kind {
        case .startup:
            if outcome.ok { state.probes.startupPassed = true }
            live[id] = state
            if failures >= probe.failureThreshold { await restartUnhealthy(id, reason: "startup probe failed \(failures) times: \(outcome.detail)") }
        case .liveness:
            live[id] = state
            if failures >= probe.failureThreshold { await restartUnhealthy(id, reason: "liveness probe failed \(failures) times: \(outcome.detail)") }
        case .readiness:
            live[id] = state
            let ready: Bool? = passes >= probe.successThreshold ? true : failures >= probe.failureThreshold ? false : nil
            guard let ready, record.ready != ready else { return }
            record.ready = ready
            record.message = ready ? nil : "readiness probe failed \(failures) times: \(outcome.detail)"
            records[id] = record
            save(record)
            queue([status(of: record, phase: record.phase)])
            logger.info(ready ? "replica ready" : "replica not ready", metadata: ["replica": "\(id)", "probe": "\(outcome.detail)"])
        }
    }

    /// Stops an unhealthy replica and starts it again by its restart policy. Before the stop
    /// suspends, the process leaves `live` for `stopping` (no exit check, no second start);
    /// its record stays `running` on disk until the process is gone, so an agent that dies
    /// meanwhile adopts it again and its probes decide anew.
    func restartUnhealthy(_ id: String, reason: String) async {
        guard var state = live[id], let process = state.process, let spec = records[id]?.spec, let driver = drivers[spec.runtime] else { return }
        logger.warning("restarting unhealthy replica", metadata: ["replica": "\(id)", "reason": "\(reason)"])
        state.process = nil
        live[id] = state
        stopping[id] = process
        await driver.stop(process, grace: stopGrace)
        stopping[id] = nil
        // Changed or removed while it stopped: `reconcile` has booked that already.
        guard var record = records[id], record.spec.revisionKey == spec.revisionKey, var now = live[id] else {
            if records[id] == nil {
                forget(id)
                if desired[id] == nil { removeFiles(id) }
            }
            queue(startDue())
            return
        }
        record.pid = nil
        record.startTicks = nil
        record.exitCode = nil
        record.ready = spec.probes.readiness == nil ? nil : false
        now.failures = min(now.failures, 1000) + 1
        if spec.restartPolicy != .never {
            let delay = Self.restartDelay(failures: now.failures)
            now.nextStart = .now + delay
            record.phase = .restarting
            record.message = "\(reason); restart in \(delay)"
        } else {
            record.phase = .exited
            record.message = reason
        }
        records[id] = record
        live[id] = now
        save(record)
        queue([status(of: record, phase: record.phase)] + startDue())
    }
}
