import DroverCore
import DroverController
import DroverProtocol
import Testing

/// Beats carry only what changed, and are rare when nothing does; the controller keeps
/// what they leave out, and judges each device by the beat interval it promised.
@Suite("Beats that carry only changes")
struct BeatTests {
    static let usage = Usage(cpuPercent: 5, memoryUsedBytes: 400 << 20, memoryTotalBytes: 1 << 30, diskUsedBytes: 4 << 30, diskTotalBytes: 16 << 30)

    static func sample(phases: [String: Int] = ["running": 1], cpu: [String: Int] = ["w-0": 100], seq: Int64 = 3, digest: String? = "abc", rtt: Double? = 1.5, usage: Usage = usage) -> BeatPlanner.Sample {
        BeatPlanner.Sample(usage: usage, phases: phases, replicaCPU: cpu, generation: 2, reportSeq: seq, digest: digest, rtt: rtt)
    }

    /// The fields a beat carries besides its envelope and time.
    static func fields(_ beat: Beat?) -> Set<String> {
        guard let beat else { return [] }
        var names = Set<String>()
        if beat.usage != nil { names.insert("usage") }
        if beat.phases != nil { names.insert("phases") }
        if beat.replicaCPU != nil { names.insert("replicaCPU") }
        if beat.digest != nil, beat.generation != nil, beat.reportSeq != nil { names.insert("summary") }
        if beat.rtt != nil { names.insert("rtt") }
        return names
    }

    @Test("the first beat tells everything; then nothing until something changes or the idle interval passes")
    func quietWhenNothingChanges() {
        var planner = BeatPlanner(idleInterval: 300_000)
        let first = planner.next(Self.sample(), device: "gw-1", now: 1_000)
        #expect(Self.fields(first) == ["usage", "phases", "replicaCPU", "summary", "rtt"])
        for t in stride(from: Int64(6_000), to: 301_000, by: 5_000) {
            #expect(planner.next(Self.sample(), device: "gw-1", now: t) == nil, "nothing changed at \(t)")
        }
        let idle = planner.next(Self.sample(), device: "gw-1", now: 301_000)
        #expect(idle != nil && Self.fields(idle).isEmpty, "the idle beat carries only its time")
        #expect(idle.map { WireCodec.encode($0).count } ?? 0 < 60, "an idle beat is small")
        #expect(planner.next(Self.sample(), device: "gw-1", now: 306_000) == nil)
        planner.reset()
        #expect(Self.fields(planner.next(Self.sample(), device: "gw-1", now: 307_000)).count == 5, "after a reset the beat is whole again")
    }

    @Test("a change goes out at once, alone: phases, the summary")
    func changesAlone() {
        var planner = BeatPlanner(idleInterval: 300_000)
        _ = planner.next(Self.sample(), device: "gw-1", now: 0)
        #expect(Self.fields(planner.next(Self.sample(phases: ["restarting": 1]), device: "gw-1", now: 5_000)) == ["phases"])
        #expect(Self.fields(planner.next(Self.sample(phases: ["restarting": 1], seq: 4, digest: "def"), device: "gw-1", now: 10_000)) == ["summary"])
        // While replicas stop there is no digest: nothing of the summary is told.
        #expect(planner.next(Self.sample(phases: ["restarting": 1], seq: 5, digest: nil), device: "gw-1", now: 15_000) == nil)
        #expect(Self.fields(planner.next(Self.sample(phases: ["restarting": 1], seq: 5, digest: "fff"), device: "gw-1", now: 20_000)) == ["summary"])
    }

    @Test("replica CPU: wobbles stay home, moves and drifts that add up go out; a replica that runs again is new")
    func replicaCPU() {
        var planner = BeatPlanner(idleInterval: 300_000)
        _ = planner.next(Self.sample(cpu: ["w-0": 100, "w-1": 0]), device: "gw-1", now: 0)
        #expect(planner.next(Self.sample(cpu: ["w-0": 105, "w-1": 5]), device: "gw-1", now: 5_000) == nil, "under 10 % and 10 millicores")
        #expect(planner.next(Self.sample(cpu: ["w-0": 109, "w-1": 9]), device: "gw-1", now: 10_000) == nil)
        let moved = planner.next(Self.sample(cpu: ["w-0": 110, "w-1": 9]), device: "gw-1", now: 15_000)
        #expect(moved?.replicaCPU == ["w-0": 110], "only the figure that moved, measured from what was told")
        #expect(planner.next(Self.sample(cpu: ["w-0": 110]), device: "gw-1", now: 20_000) == nil, "a replica that stops running says nothing")
        #expect(planner.next(Self.sample(cpu: ["w-0": 110, "w-1": 9]), device: "gw-1", now: 25_000)?.replicaCPU == ["w-1": 9], "one that runs again is told afresh")
    }

    @Test("machine usage rides along with any beat, and goes out alone at most once per interval; round-trip time when it moved by a quarter")
    func usageAndRTT() {
        var planner = BeatPlanner(idleInterval: 300_000, usageInterval: 60_000)
        _ = planner.next(Self.sample(), device: "gw-1", now: 0)
        var busy = Self.usage
        busy.cpuPercent = 60
        #expect(planner.next(Self.sample(usage: busy), device: "gw-1", now: 30_000) == nil, "not alone within a minute of the last")
        #expect(Self.fields(planner.next(Self.sample(usage: busy), device: "gw-1", now: 60_000)) == ["usage"])
        var wobble = busy
        wobble.cpuPercent = 55
        wobble.memoryUsedBytes += 10 << 20
        #expect(planner.next(Self.sample(usage: wobble), device: "gw-1", now: 130_000) == nil, "5 points and 1 % of memory are wobbles")
        #expect(planner.next(Self.sample(rtt: 2.5, usage: wobble), device: "gw-1", now: 135_000) == nil, "1 ms is under 2 ms")
        #expect(planner.next(Self.sample(rtt: 40, usage: wobble), device: "gw-1", now: 140_000)?.rtt == 40)
        #expect(planner.next(Self.sample(rtt: 45, usage: wobble), device: "gw-1", now: 145_000) == nil, "5 ms is under a quarter of 40")
        busy.cpuPercent = 90
        #expect(Self.fields(planner.next(Self.sample(phases: [:], rtt: 45, usage: busy), device: "gw-1", now: 150_000)) == ["phases", "usage"], "within the minute, along with a change")
        #expect(BeatPlanner(idleInterval: 300_000).usageInterval == 300_000, "by default, once per idle interval")
    }

    @Test("the controller keeps what a beat leaves out, and judges silence by the interval the device promised")
    func controllerMerges() async throws {
        let (fleet, _, _) = try await FleetFixture.fleet(unreachableAfter: .seconds(30))
        var hello = FleetFixture.hello("a")
        hello.beatEvery = 300_000
        await fleet.hello(hello)
        await fleet.hello(FleetFixture.hello("b"))
        _ = try await fleet.apply(FleetFixture.workload("w", replicas: 1))
        var whole = Beat(device: "a", time: 1, usage: Self.usage, phases: ["running": 1])
        whole.rtt = 12.5
        await fleet.beat(whole)
        await fleet.beat(Beat(device: "a", time: 2))
        let record = try await fleet.device("a").record
        #expect(record.usage == Self.usage && record.phases == ["running": 1], "an idle beat changes nothing")
        #expect(record.rttMillis == 12.5)
        #expect(await fleet.startPings().map(\.device) == ["b"], "a device that tells its round-trip time is not pinged")

        // 31 s later "b", which promised nothing, has been silent too long; "a" has 300 + 30 s.
        await fleet.checkPresence(now: Fleet.nowMillis() + 31_000)
        #expect(try await fleet.device("b").record.presence == .unreachable)
        #expect(try await fleet.device("a").record.presence == .online)
        await fleet.checkPresence(now: Fleet.nowMillis() + 331_000)
        await fleet.reconciled()
        #expect(try await fleet.device("a").record.presence == .unreachable)
    }

    @Test("the digest told in an earlier beat is checked again by a later idle one")
    func summaryKept() async throws {
        let (fleet, _, _) = try await FleetFixture.fleet()
        await fleet.hello(FleetFixture.hello("a"))
        _ = try await fleet.apply(FleetFixture.workload("w", replicas: 1))
        let truth = [FleetConvergenceTests.status("w-0", .running, pid: 11, restarts: 1)]
        // The beat comes before the report it counts; then the report of seq 2 is lost.
        #expect(await fleet.beat(FleetConvergenceTests.beat("a", generation: 1, seq: 2, truth: truth)) == false)
        await fleet.report(Report(device: "a", seq: 3, replicas: []))
        #expect(await fleet.beat(Beat(device: "a", time: 2)) == true, "the idle beat finds the drift")
    }

    @Test("a beat's round-trip time and a hello's beat interval are checked at decode")
    func ranges() {
        var beat = Beat(device: "a", time: 1)
        for bad in [-1, 600_001, Double.infinity] {
            beat.rtt = bad
            #expect(beat.validate().map(\.path) == ["rtt"], "\(bad)")
        }
        beat.rtt = 0
        #expect(beat.validate().isEmpty)
        var hello = FleetFixture.hello("a")
        for bad: Int64 in [0, 999, 86_400_001, .max] {
            hello.beatEvery = bad
            #expect(hello.validate().map(\.path) == ["beatEvery"], "\(bad)")
        }
    }

    @Test("what beats told survives a refused operator action (the state is reloaded from the store, where beats are not)")
    func survivesReload() async throws {
        let (fleet, _, _) = try await FleetFixture.fleet()
        await fleet.hello(FleetFixture.hello("a"))
        var whole = Beat(device: "a", time: 1, usage: Self.usage, phases: ["running": 1])
        whole.rtt = 7
        await fleet.beat(whole)
        let seen = try await fleet.device("a").record.lastSeen
        await #expect(throws: FleetError.self) { _ = try await fleet.setSchedulability("no-such-device", .cordoned) }
        let record = try await fleet.device("a").record
        #expect(record.usage == Self.usage && record.phases == ["running": 1] && record.rttMillis == 7 && record.lastSeen == seen)
    }
}
