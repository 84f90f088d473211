/// The rollout state machine, pure: given where a rollout is, what its replicas do and the
/// time, it says where the rollout is now and which revision each replica is to run. The
/// controller calls it on every report and presence change and stores what it returns.
///
/// States and their way out, so that none waits forever:
/// - `progressing` (a wave): replicas get the new revision under `maxUnavailable`; the wave is
///   done when every replica of it on an online device is updated; at `progressDeadline` the
///   ones it still waits for count as failed (online) or pending (offline, they converge when
///   back). More failed than `failureThreshold`: `rollingBack` (or `failed` without
///   `autoRollback`).
/// - `baking`: after `bakeSeconds` the next wave, or `succeeded` after the last; failures while
///   baking stop it as above.
/// - `rollingBack`: every replica told the new revision is told the old one at once (no waves:
///   a rollback is not a new rollout); `failed` when the online ones run it, or at the deadline.
/// - `paused` waits for a resume; `succeeded`, `failed` and `aborted` are final.
public enum RolloutEngine {
    public struct Step: Sendable {
        public var state: RolloutState
        /// Transitions, in words, for the event log.
        public var events: [String]
    }

    /// The replicas of each wave, cumulative (a wave holds the ones before it), in the given
    /// order: `count: N` adds N, `percent: P` brings the total to P % (rounded up), a selector
    /// adds the replicas on matching devices; the last wave takes whatever is left.
    public static func waves(_ spec: RolloutSpec, _ replicas: [RolloutReplica]) -> [[String]] {
        var taken: [String] = []
        var seen = Set<String>()
        var out: [[String]] = []
        func take(_ r: RolloutReplica) {
            if seen.insert(r.id).inserted { taken.append(r.id) }
        }
        for wave in spec.waves {
            switch wave {
            case .count(let n):
                let target = min(replicas.count, taken.count + max(n, 0))
                for r in replicas where taken.count < target { take(r) }
            case .percent(let p):
                let target = min(replicas.count, (replicas.count * min(max(p, 0), 100) + 99) / 100)
                for r in replicas where taken.count < target { take(r) }
            case .selector(let selector):
                for r in replicas where selector.firstMismatch(r.labels) == nil { take(r) }
            }
            out.append(taken)
        }
        if taken.count < replicas.count {
            for r in replicas { take(r) }
            if out.isEmpty { out.append(taken) } else { out[out.count - 1] = taken }
        }
        return out
    }

    public static func step(_ state: RolloutState, spec: RolloutSpec, replicas: [RolloutReplica], now: Int64) -> Step {
        var s = state
        var events: [String] = []
        guard s.isActive else { return Step(state: s, events: []) }
        for r in replicas {
            if s.assigned[r.id] == s.to, r.runs == s.to, r.ready, !r.failing {
                if s.readySince[r.id] == nil { s.readySince[r.id] = now }
            } else {
                s.readySince[r.id] = nil
            }
        }
        let minReady = Int64(spec.minReadySeconds) * 1000
        func updated(_ r: RolloutReplica) -> Bool { s.readySince[r.id].map { now - $0 >= minReady } ?? false }
        let deadlinePassed = now - s.since >= Int64(spec.progressDeadlineSeconds) * 1000

        func stop(_ why: String) {
            guard spec.autoRollback else {
                s.phase = .failed
                s.message = "stopped in wave \(s.wave + 1): \(why)"
                events.append("rollout to revision \(s.to) failed in wave \(s.wave + 1): \(why)")
                return
            }
            for (id, revision) in s.assigned where revision == s.to { s.assigned[id] = s.from }
            s.phase = .rollingBack
            s.since = now
            s.message = "rolling back to revision \(s.from): \(why)"
            events.append("rollout to revision \(s.to) rolling back to \(s.from) in wave \(s.wave + 1): \(why)")
        }

        switch s.phase {
        case .rollingBack:
            let behind = replicas.filter { $0.online && $0.runs != s.from }
            if behind.isEmpty || deadlinePassed {
                s.phase = .failed
                s.message = "rolled back to revision \(s.from)" + (behind.isEmpty ? "" : "; \(behind.count) replicas not back yet (they converge)")
                events.append("rollout to revision \(s.to) rolled back to revision \(s.from)")
            }
        case .progressing:
            let all = waves(spec, replicas)
            let members = Set(all[min(s.wave, all.count - 1)])
            let inWave = replicas.filter { members.contains($0.id) }
            var failed = inWave.filter { s.assigned[$0.id] == s.to && $0.failing }.map(\.id)
            if deadlinePassed {
                failed += inWave.filter { $0.online && s.assigned[$0.id] == s.to && !$0.failing && !updated($0) }.map(\.id)
            }
            if failed.count > spec.failureThreshold {
                stop("\(failed.count) replicas failed (\(failed.sorted().prefix(5).joined(separator: ", "))), more than the \(spec.failureThreshold) allowed")
                break
            }
            // Replicas on offline devices are told at once: they are unavailable already, and
            // converge when back. Online ones within maxUnavailable.
            var room = spec.maxUnavailable - inWave.filter { $0.online && s.assigned[$0.id] == s.to && !updated($0) }.count
            for r in inWave where s.assigned[r.id] != s.to {
                guard !r.online || room > 0 else { continue }
                if r.online { room -= 1 }
                s.assigned[r.id] = s.to
                if !s.order.contains(r.id) { s.order.append(r.id) }
            }
            let waiting = inWave.filter { $0.online && !updated($0) && !failed.contains($0.id) }
            if waiting.isEmpty || deadlinePassed {
                let pending = inWave.filter { !$0.online && !updated($0) }.count
                s.phase = .baking
                s.since = now
                s.message = "baking wave \(s.wave + 1) of \(all.count) for \(spec.bakeSeconds) s" + (pending > 0 ? "; \(pending) replicas pending on offline devices" : "")
                events.append("rollout to revision \(s.to): wave \(s.wave + 1) of \(all.count) updated" + (pending > 0 ? ", \(pending) pending" : ""))
                // No bake: on at once, not at the next report or pass.
                if spec.bakeSeconds == 0 {
                    let next = step(s, spec: spec, replicas: replicas, now: now)
                    return Step(state: next.state, events: events + next.events)
                }
            } else {
                s.message = "wave \(s.wave + 1) of \(all.count): \(inWave.count - waiting.count) of \(inWave.count) updated, waiting for \(waiting.prefix(3).map(\.id).joined(separator: ", "))"
            }
        case .baking:
            let all = waves(spec, replicas)
            let members = Set(all[min(s.wave, all.count - 1)])
            let failed = replicas.filter { members.contains($0.id) && s.assigned[$0.id] == s.to && $0.failing }
            if failed.count > spec.failureThreshold {
                stop("\(failed.count) replicas failed while baking")
                break
            }
            guard now - s.since >= Int64(spec.bakeSeconds) * 1000 else { break }
            if s.wave + 1 < all.count {
                s.wave += 1
                s.phase = .progressing
                s.since = now
                s.message = "starting wave \(s.wave + 1) of \(all.count)"
                events.append("rollout to revision \(s.to): wave \(s.wave + 1) of \(all.count) begins")
                let next = step(s, spec: spec, replicas: replicas, now: now)
                return Step(state: next.state, events: events + next.events)
            }
            s.phase = .succeeded
            let pending = replicas.filter { !$0.online && $0.runs != s.to }.count
            s.message = pending == 0 ? "revision \(s.to) is live on every replica"
                : "revision \(s.to) is live; \(pending) replicas pending on offline devices (they converge when back)"
            events.append("rollout to revision \(s.to) succeeded")
        case .paused, .succeeded, .failed, .aborted:
            break
        }
        return Step(state: s, events: events)
    }
}
