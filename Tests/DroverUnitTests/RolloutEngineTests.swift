import DroverCore
import Testing

/// The rollout state machine over simulated devices: a replica told a revision runs it at
/// the next step (ready, or failing when the revision is bad), unless its device is offline.
@Suite("Rollout engine")
struct RolloutEngineTests {
    struct Fleet {
        var replicas: [RolloutReplica]
        /// Revisions that crash, and revisions that run but never get ready.
        var bad: Set<Int> = []
        var unready: Set<Int> = []

        init(_ count: Int, sites: [String] = []) {
            replicas = (0..<count).map { i in
                RolloutReplica(id: "w-\(i)", labels: sites.isEmpty ? [:] : ["site": sites[i % sites.count]], runs: 1, ready: true)
            }
        }

        /// Devices act on what they were told.
        mutating func converge(_ state: RolloutState) {
            for i in replicas.indices where replicas[i].online {
                let told = state.assigned[replicas[i].id] ?? state.from
                replicas[i].runs = told
                replicas[i].failing = bad.contains(told)
                replicas[i].ready = !replicas[i].failing && !unready.contains(told)
            }
        }
    }

    /// Steps until the rollout settles, a second apart; returns every state seen.
    static func run(_ fleet: inout Fleet, _ spec: RolloutSpec, from: Int = 1, to: Int = 2, steps: Int = 200, each: (RolloutState, Fleet) -> Void = { _, _ in }) -> [RolloutState] {
        var state = RolloutState(from: from, to: to, now: 0)
        var seen: [RolloutState] = []
        for t in 0..<steps {
            state = RolloutEngine.step(state, spec: spec, replicas: fleet.replicas, now: Int64(t) * 1000).state
            seen.append(state)
            each(state, fleet)
            guard state.isActive else { break }
            fleet.converge(state)
        }
        return seen
    }

    @Test("waves: a canary of one, a site, then the rest; cumulative")
    func waves() {
        let fleet = Fleet(6, sites: ["b", "a", "b"])
        let spec = RolloutSpec(waves: [.count(1), .selector(LabelSelector(matchLabels: ["site": "a"])), .percent(100)])
        #expect(RolloutEngine.waves(spec, fleet.replicas) == [["w-0"], ["w-0", "w-1", "w-4"], ["w-0", "w-1", "w-4", "w-2", "w-3", "w-5"]])
        #expect(RolloutEngine.waves(RolloutSpec(waves: [.percent(10)]), fleet.replicas).last?.count == 6, "the last wave takes the rest")
    }

    @Test("three waves with a bake: in order, never more than maxUnavailable between revisions, succeeded with every replica on the new revision")
    func inOrder() {
        var fleet = Fleet(8, sites: ["a", "b"])
        let spec = RolloutSpec(waves: [.count(1), .selector(LabelSelector(matchLabels: ["site": "a"])), .percent(100)], maxUnavailable: 2, bakeSeconds: 5)
        let states = Self.run(&fleet, spec) { state, fleet in
            let between = fleet.replicas.filter { state.assigned[$0.id] == 2 && !($0.runs == 2 && $0.ready) }.count
            #expect(between <= 2, "maxUnavailable")
        }
        #expect(states.last?.phase == .succeeded, "\(states.last?.message ?? "")")
        #expect(fleet.replicas.allSatisfy { $0.runs == 2 })
        // The canary first; then site a; site b last.
        let tell = { (id: String) in states.firstIndex { $0.assigned[id] == 2 } ?? Int.max }
        #expect(tell("w-0") < tell("w-2"), "canary before site a")
        #expect([2, 4, 6].allSatisfy { tell("w-\($0)") < tell("w-1") } && [3, 5, 7].allSatisfy { tell("w-\($0)") > tell("w-6") }, "site a before site b")
        // Baking holds the next wave for its bake time.
        let baking = states.filter { $0.phase == .baking }.count
        #expect(baking >= 3 * 5)
    }

    @Test("a revision that crashes: stopped in the canary and rolled back by itself; no replica outside the canary ever told it")
    func rollback() {
        var fleet = Fleet(6)
        fleet.bad = [2]
        let spec = RolloutSpec(waves: [.count(1), .percent(100)], progressDeadlineSeconds: 30)
        let states = Self.run(&fleet, spec)
        #expect(states.last?.phase == .failed, "\(states.last?.message ?? "")")
        #expect(states.contains { $0.phase == .rollingBack })
        #expect(fleet.replicas.allSatisfy { $0.runs == 1 }, "back on revision 1")
        #expect(states.allSatisfy { s in (1..<6).allSatisfy { s.assigned["w-\($0)"] != 2 } }, "only the canary ever ran revision 2")
    }

    @Test("a device offline during its wave does not block: after the deadline it is pending, the rollout finishes, and it is told the new revision for when it returns")
    func offline() {
        var fleet = Fleet(4)
        fleet.replicas[3].online = false
        let spec = RolloutSpec(waves: [.percent(100)], maxUnavailable: 4, progressDeadlineSeconds: 10)
        let states = Self.run(&fleet, spec)
        #expect(states.last?.phase == .succeeded, "\(states.last?.message ?? "")")
        #expect(states.last?.assigned["w-3"] == 2)
        #expect(states.contains { $0.message.contains("pending on offline devices") })
    }

    @Test("a replica that never gets ready counts as failed at the deadline: within the threshold the rollout goes on, beyond it stops; without autoRollback it stays where it is")
    func deadline() {
        var fleet = Fleet(3)
        fleet.unready = [2]
        var spec = RolloutSpec(waves: [.percent(100)], maxUnavailable: 3, progressDeadlineSeconds: 10, failureThreshold: 3)
        let within = Self.run(&fleet, spec)
        #expect(within.last?.phase == .succeeded, "3 failures are within a threshold of 3")
        #expect((within.firstIndex { $0.phase != .progressing } ?? 0) >= 10, "not before the deadline")
        var again = Fleet(3)
        again.unready = [2]
        spec.failureThreshold = 0
        spec.autoRollback = false
        let states = Self.run(&again, spec)
        #expect(states.last?.phase == .failed && !states.contains { $0.phase == .rollingBack })
        #expect(again.replicas.allSatisfy { $0.runs == 2 }, "no rollback asked for")
    }

    @Test("minReadySeconds: a replica counts as updated only after it was ready that long")
    func minReady() {
        var fleet = Fleet(1)
        let spec = RolloutSpec(minReadySeconds: 5)
        let states = Self.run(&fleet, spec)
        let baked = states.firstIndex { $0.phase != .progressing } ?? 0
        #expect(baked >= 6)
        #expect(states.last?.phase == .succeeded)
    }

    @Test("a rollback that cannot finish (a device stays away) ends at its deadline: nothing waits for ever")
    func rollbackDeadline() {
        var fleet = Fleet(2)
        fleet.bad = [2]
        let spec = RolloutSpec(waves: [.percent(100)], maxUnavailable: 2, progressDeadlineSeconds: 10)
        var state = RolloutState(from: 1, to: 2, now: 0)
        state = RolloutEngine.step(state, spec: spec, replicas: fleet.replicas, now: 0).state
        fleet.converge(state)
        fleet.replicas[1].online = false
        var t: Int64 = 1000
        while state.isActive, t < 100_000 {
            state = RolloutEngine.step(state, spec: spec, replicas: fleet.replicas, now: t).state
            fleet.converge(state)
            t += 1000
        }
        #expect(state.phase == .failed && t < 30_000, "\(state.message) at \(t)")
    }
}
