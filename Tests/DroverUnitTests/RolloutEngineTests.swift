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
    static func run(
        _ fleet: inout Fleet, _ spec: RolloutSpec, from: Int = 1, to: Int = 2, steps: Int = 200, room: [String: Resources] = [:],
        each: (RolloutState, Fleet) -> Void = { _, _ in }
    ) -> [RolloutState] {
        var state = RolloutState(from: from, to: to, now: 0)
        var seen: [RolloutState] = []
        for t in 0..<steps {
            state = RolloutEngine.step(state, spec: spec, replicas: fleet.replicas, now: Int64(t) * 1000, deviceRoom: room).state
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

    @Test("maxSurge: replicas start beside their old instance where the device has room, within maxSurge; elsewhere one at a time under maxUnavailable")
    func surge() {
        var fleet = Fleet(6)
        let cost = Resources(cpuMillis: 100)
        for i in fleet.replicas.indices {
            fleet.replicas[i].device = "d\(i)"
            fleet.replicas[i].surgeCost = cost
        }
        // Room for a second instance on d0-d3 only.
        let room = Dictionary(uniqueKeysWithValues: (0..<6).map { ("d\($0)", Resources(cpuMillis: $0 < 4 ? 150 : 50)) })
        let spec = RolloutSpec(maxUnavailable: 1, maxSurge: 2)
        var mostSurging = 0
        var mostDown = 0
        let states = Self.run(&fleet, spec, room: room) { state, fleet in
            let between = fleet.replicas.filter { state.assigned[$0.id] == 2 && !($0.runs == 2 && $0.ready) }
            mostSurging = max(mostSurging, between.filter { state.surged.contains($0.id) }.count)
            mostDown = max(mostDown, between.filter { !state.surged.contains($0.id) }.count)
        }
        #expect(states.last?.phase == .succeeded, "\(states.last?.message ?? "")")
        // Both budgets are used at once: surges where there is room, the rest under maxUnavailable.
        let surged = states.last?.surged ?? []
        #expect(surged.count >= 2 && surged.isSubset(of: ["w-0", "w-1", "w-2", "w-3"]), "only replicas on devices with room surged: \(surged)")
        #expect(mostSurging == 2 && mostDown == 1, "\(mostSurging) surging, \(mostDown) down")
        #expect(fleet.replicas.allSatisfy { $0.runs == 2 })
    }

    @Test("maxSurge: one device's room is shared by its replicas, and a replica that is not running does not surge")
    func surgeRoomShared() {
        var fleet = Fleet(3)
        for i in fleet.replicas.indices {
            fleet.replicas[i].device = "d0"
            fleet.replicas[i].surgeCost = i == 2 ? nil : Resources(memoryBytes: 64 << 20)
        }
        let spec = RolloutSpec(maxUnavailable: 3, maxSurge: 3)
        let first = RolloutEngine.step(RolloutState(from: 1, to: 2, now: 0), spec: spec, replicas: fleet.replicas, now: 0, deviceRoom: ["d0": Resources(memoryBytes: 100 << 20)])
        #expect(first.state.surged == ["w-0"], "room for one second instance only")
        #expect(first.state.assigned.count == 3, "the others are replaced under maxUnavailable")
    }

    @Test("maxUnavailable 0 and no room to surge: nothing is taken down; the rollout fails at its deadline, saying why")
    func surgeNoRoom() {
        var fleet = Fleet(2)
        for i in fleet.replicas.indices {
            fleet.replicas[i].device = "d\(i)"
            fleet.replicas[i].surgeCost = Resources(cpuMillis: 100)
        }
        let spec = RolloutSpec(maxUnavailable: 0, maxSurge: 1, progressDeadlineSeconds: 10)
        let states = Self.run(&fleet, spec, room: ["d0": Resources(cpuMillis: 10), "d1": Resources(cpuMillis: 10)])
        #expect(states.allSatisfy { $0.assigned.values.allSatisfy { $0 != 2 } }, "never told")
        #expect(states.last?.phase == .failed && states.count >= 10, "\(states.last?.message ?? "")")
        #expect(states.contains { $0.message.contains("no room on their devices") })
        #expect(RolloutSpec(maxUnavailable: 0, maxSurge: 0).problems(at: "spec.rollout").map(\.path) == ["spec.rollout.maxUnavailable"])
    }

    @Test("each replica has its own deadline: a wave larger than one deadline's worth of replacements still updates every replica")
    func bigWave() {
        var fleet = Fleet(30)
        // One at a time, each step; a deadline of 10 s would end a wave-wide clock at a third.
        let spec = RolloutSpec(maxUnavailable: 1, progressDeadlineSeconds: 10)
        let states = Self.run(&fleet, spec)
        #expect(states.last?.phase == .succeeded && states.last?.message == "revision 2 is live on every replica", "\(states.last?.message ?? "")")
        #expect(fleet.replicas.allSatisfy { $0.runs == 2 })
    }

    @Test("a replica's deadline starts afresh when its device comes back, and when an updated replica is unready for a moment in a later wave")
    func deadlinesAfresh() {
        let spec = RolloutSpec(waves: [.count(1), .percent(100)], maxUnavailable: 2, bakeSeconds: 30, progressDeadlineSeconds: 10)
        var fleet = Fleet(3)
        fleet.replicas[2].online = false
        var state = RolloutState(from: 1, to: 2, now: 0)
        var t: Int64 = 0
        func step() {
            state = RolloutEngine.step(state, spec: spec, replicas: fleet.replicas, now: t).state
            fleet.converge(state)
            t += 1000
        }
        while state.wave == 0 || state.phase != .progressing { step() }
        // Wave 2 begins ~31 s in: the canary (told at 0 s) is unready for a moment.
        fleet.replicas[0].ready = false
        step()
        #expect(state.phase == .progressing, "not failed at once: \(state.message)")
        // The offline device (told at the wave's start) comes back 20 s later, past its deadline.
        for _ in 0..<20 { step() }
        fleet.replicas[2].online = true
        fleet.replicas[2].runs = 1
        fleet.replicas[2].ready = true
        state = RolloutEngine.step(state, spec: spec, replicas: fleet.replicas, now: t).state
        #expect(state.isActive && state.phase != .rollingBack, "not failed the moment it is back: \(state.message)")
        fleet.converge(state)
        while state.isActive, t < 200_000 { step() }
        #expect(state.phase == .succeeded, "\(state.message)")
    }

    @Test("replicas that cannot be told stop the rollout whatever the threshold: it never succeeds with replicas left behind")
    func stallStops() {
        var fleet = Fleet(2)
        fleet.replicas[0].device = "d0"
        fleet.replicas[0].surgeCost = Resources(cpuMillis: 100)
        fleet.replicas[1].device = "d1"
        fleet.replicas[1].surgeCost = Resources(cpuMillis: 100)
        let spec = RolloutSpec(maxUnavailable: 0, maxSurge: 1, progressDeadlineSeconds: 10, failureThreshold: 5, autoRollback: false)
        let states = Self.run(&fleet, spec, room: ["d0": Resources(cpuMillis: 500), "d1": Resources(cpuMillis: 0)])
        #expect(states.last?.phase == .failed, "\(states.last?.message ?? "")")
        #expect(states.last?.message.contains("could not be updated") == true)
    }
}
