/// The rollout state machine, pure: given where a rollout is, what its replicas do and the
/// time, it says where the rollout is now and which revision each replica is to run. The
/// controller calls it on every report and presence change and stores what it returns.
///
/// States and their way out, so that none waits forever:
/// - `progressing` (a wave): replicas get the new revision under `maxUnavailable`, or beside
///   their old instance under `maxSurge` where the device has room; the wave is done when
///   every replica of it on an online device is updated or failed. A replica not updated
///   `progressDeadline` after it was told counts as failed (online) or pending (offline, it
///   converges when back); replicas that cannot be told at all (no room to surge and
///   `maxUnavailable` 0) stop the rollout after `progressDeadline` without progress. More
///   failed than `failureThreshold`: `rollingBack` (or `failed` without `autoRollback`).
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

    /// `deviceRoom`: what each device has left beyond its replicas, for surges.
    public static func step(_ state: RolloutState, spec: RolloutSpec, replicas: [RolloutReplica], now: Int64, deviceRoom: [String: Resources] = [:]) -> Step {
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
        let deadline = Int64(spec.progressDeadlineSeconds) * 1000
        let deadlinePassed = now - s.since >= deadline
        // A replica's deadline starts afresh when its device comes back, and when it stops
        // being updated (a later wave's moment of unreadiness is not a failure at once).
        // (Changed only on such transitions, so a quiet step stores nothing.)
        if s.phase == .progressing || s.phase == .baking {
            for r in replicas where s.assigned[r.id] == s.to {
                guard r.online else {
                    s.away.insert(r.id)
                    continue
                }
                let isUpdated = updated(r)
                if s.away.remove(r.id) != nil, !isUpdated { s.assignedAt[r.id] = now }
                if isUpdated {
                    s.wasUpdated.insert(r.id)
                } else if s.wasUpdated.remove(r.id) != nil {
                    s.assignedAt[r.id] = now
                }
            }
        }

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
            func told(_ r: RolloutReplica) -> Bool { s.assigned[r.id] == s.to }
            // Failed: crashing, or on an online device and not updated `progressDeadline`
            // after it was told (each replica has its own deadline: a big wave is not a slow one).
            func overdue(_ r: RolloutReplica) -> Bool { r.online && !updated(r) && now - (s.assignedAt[r.id] ?? s.since) >= deadline }
            let failed = inWave.filter { told($0) && ($0.failing || overdue($0)) }.map(\.id)
            if failed.count > spec.failureThreshold {
                stop("\(failed.count) replicas failed (\(failed.sorted().prefix(5).joined(separator: ", "))), more than the \(spec.failureThreshold) allowed")
                break
            }
            // Replicas on offline devices are told at once: they are unavailable already, and
            // converge when back. Online ones within maxUnavailable, or beside their old
            // instance within maxSurge where their device has room for both.
            let inFlight = inWave.filter { $0.online && told($0) && !updated($0) && !failed.contains($0.id) }
            var room = spec.maxUnavailable - inFlight.filter { !s.surged.contains($0.id) }.count
            var surgeRoom = spec.maxSurge - inFlight.filter { s.surged.contains($0.id) }.count
            var free = deviceRoom
            for r in inWave where !told(r) {
                var surge = false
                if r.online, surgeRoom > 0, let cost = r.surgeCost, let left = free[r.device], left.fits(cost) {
                    free[r.device] = left - cost
                    surgeRoom -= 1
                    surge = true
                } else if r.online {
                    guard room > 0 else { continue }
                    room -= 1
                }
                s.assigned[r.id] = s.to
                s.assignedAt[r.id] = now
                if surge { s.surged.insert(r.id) } else { s.surged.remove(r.id) }
                if !s.order.contains(r.id) { s.order.append(r.id) }
                s.since = now
            }
            // Nothing in flight and replicas still to tell: no room to surge, and
            // maxUnavailable 0. They count as failed once the deadline passes with no progress.
            // Whatever the threshold: going on would leave them behind.
            let untold = inWave.filter { $0.online && !told($0) }
            if !untold.isEmpty, inWave.allSatisfy({ !$0.online || !told($0) || updated($0) || failed.contains($0.id) }), now - s.since >= deadline {
                stop("\(untold.count) replicas could not be updated: no room on their devices for a second instance, and maxUnavailable is 0")
                break
            }
            let waiting = inWave.filter { $0.online && !updated($0) && !failed.contains($0.id) }
            if waiting.isEmpty {
                let pending = inWave.filter { !$0.online && !updated($0) }.count
                s.phase = .baking
                s.since = now
                s.message = "baking wave \(s.wave + 1) of \(all.count) for \(spec.bakeSeconds) s" + (pending > 0 ? "; \(pending) replicas pending on offline devices" : "")
                    + (failed.isEmpty ? "" : "; \(failed.count) failed, within the \(spec.failureThreshold) allowed")
                events.append("rollout to revision \(s.to): wave \(s.wave + 1) of \(all.count) updated" + (pending > 0 ? ", \(pending) pending" : ""))
                // No bake: on at once, not at the next report or pass.
                if spec.bakeSeconds == 0 {
                    let next = step(s, spec: spec, replicas: replicas, now: now, deviceRoom: deviceRoom)
                    return Step(state: next.state, events: events + next.events)
                }
            } else {
                let surging = waiting.filter { s.surged.contains($0.id) && told($0) }.count
                s.message = "wave \(s.wave + 1) of \(all.count): \(inWave.count - waiting.count) of \(inWave.count) updated, waiting for \(waiting.prefix(3).map(\.id).joined(separator: ", "))"
                    + (surging > 0 ? "; \(surging) starting beside their old instance" : "")
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
                let next = step(s, spec: spec, replicas: replicas, now: now, deviceRoom: deviceRoom)
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
