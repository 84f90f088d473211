import DroverCore
import DroverScheduler
import Testing

enum TestFleet {
    static func device(
        _ id: String, cpu: Int = 2000, memory: Int64 = 1 << 30, labels: [String: String] = [:], arch: String = "amd64",
        presence: Presence = .online, schedulability: Schedulability = .normal, link: LinkClass = .wired, uptime: Double = 1,
        devices: [String: Int] = [:], lastSeen: Int64 = 0
    ) -> DeviceSnapshot {
        DeviceSnapshot(
            id: id, labels: labels, arch: arch, capacity: Resources(cpuMillis: cpu, memoryBytes: memory, storageBytes: 10 << 30, devices: devices),
            presence: presence, schedulability: schedulability, connectivity: ConnectivityRecord(linkClass: link, uptimeRatio: uptime, lastSeen: lastSeen))
    }

    static func workload(_ name: String, replicas: Int = 1, cpu: Int = 100, memory: Int64 = 64 << 20, configure: (inout WorkloadSpec) -> Void = { _ in }) -> WorkloadSpec {
        var w = WorkloadSpec(name: name, replicas: replicas, resources: Resources(cpuMillis: cpu, memoryBytes: memory), command: ["/bin/true"])
        configure(&w)
        return w
    }

    static func plan(_ devices: [DeviceSnapshot], _ workloads: [WorkloadSpec], current: [Assignment] = [], now: Int64 = 1_000_000) -> PlacementPlan {
        Scheduler.plan(SchedulingInput(devices: devices, workloads: workloads, current: current, now: now))
    }
}

@Suite("Scheduler: each constraint")
struct SchedulerTests {
    @Test("matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist) select devices")
    func selectors() {
        let devices = [
            TestFleet.device("a", labels: ["site": "x", "gpu": "yes"]), TestFleet.device("b", labels: ["site": "y"]),
            TestFleet.device("c", labels: ["site": "z", "gpu": "yes"]), TestFleet.device("d", labels: [:]),
        ]
        func placed(_ selector: LabelSelector) -> Set<String> {
            Set(TestFleet.plan(devices, [TestFleet.workload("w", replicas: 4) { $0.selector = selector }]).assignments.map(\.device))
        }
        #expect(placed(LabelSelector(matchLabels: ["site": "x"])) == ["a"])
        #expect(placed(LabelSelector(matchExpressions: [.init(key: "site", operator: .in, values: ["x", "y"])])) == ["a", "b"])
        #expect(placed(LabelSelector(matchExpressions: [.init(key: "site", operator: .notIn, values: ["x"])])) == ["b", "c", "d"])
        #expect(placed(LabelSelector(matchExpressions: [.init(key: "gpu", operator: .exists)])) == ["a", "c"])
        #expect(placed(LabelSelector(matchExpressions: [.init(key: "gpu", operator: .doesNotExist)])) == ["b", "d"])
    }

    @Test("arch, runtime, link class and uptime are hard constraints, each explained")
    func hardConstraints() {
        let devices = [
            TestFleet.device("arm", arch: "arm64"), TestFleet.device("sat", link: .satellite), TestFleet.device("flaky", uptime: 0.5),
            TestFleet.device("good", link: .wifi, uptime: 0.99),
        ]
        let w = TestFleet.workload("w", replicas: 2) {
            $0.arch = ["amd64"]
            $0.connectivity = ConnectivityNeeds(minLinkClass: .wifi, minUptime: 0.9)
        }
        let plan = TestFleet.plan(devices, [w])
        #expect(plan.assignments.map(\.device) == ["good"])
        #expect(Set(plan.unplaced.first?.reasons ?? []) == [
            "1 device: arch not in amd64", "1 device: link weaker than wifi", "1 device: uptime below 90%",
            "1 device: already runs a replica of this workload",
        ])
    }

    @Test("named device resources and storage are reserved like cpu and memory")
    func deviceResources() {
        let devices = [TestFleet.device("a", devices: ["gpu": 1]), TestFleet.device("b")]
        let w = TestFleet.workload("w", replicas: 2) { $0.resources.devices = ["gpu": 1]; $0.maxPerDevice = 2 }
        let plan = TestFleet.plan(devices, [w])
        #expect(plan.assignments.map(\.device) == ["a"])
        #expect(plan.unplaced.first?.reasons == ["2 devices: insufficient gpu (needs 1, most free 0)"])
    }

    @Test("explanations group devices by reason with the most free amount")
    func explanations() {
        let devices = (0..<37).map { TestFleet.device("m\($0)", memory: 32 << 20, labels: ["site": "plant-a"]) }
            + (0..<12).map { TestFleet.device("s\($0)", labels: ["site": "plant-b"]) }
            + (0..<3).map { TestFleet.device("o\($0)", labels: ["site": "plant-a"], presence: .unreachable) }
        let w = TestFleet.workload("w") { $0.selector = LabelSelector(matchLabels: ["site": "plant-a"]) }
        #expect(TestFleet.plan(devices, [w]).unplaced.first?.reasons == [
            "37 devices: insufficient memory (needs 64Mi, most free 32Mi)", "12 devices: selector site=plant-a not matched",
            "3 devices: offline",
        ])
    }

    @Test("mode every puts one replica on each matching device, and follows the fleet")
    func every() {
        var devices = (0..<3).map { TestFleet.device("g\($0)", labels: ["role": "gateway"]) } + [TestFleet.device("cam")]
        let w = TestFleet.workload("agent-sidecar") { $0.mode = .every; $0.selector = LabelSelector(matchLabels: ["role": "gateway"]) }
        let first = TestFleet.plan(devices, [w])
        #expect(first.assignments.map(\.id) == ["agent-sidecar-g0", "agent-sidecar-g1", "agent-sidecar-g2"])
        devices.append(TestFleet.device("g3", labels: ["role": "gateway"]))
        let second = TestFleet.plan(devices, [w], current: first.assignments)
        #expect(second.assignments.count == 4)
        #expect(Set(first.assignments).isSubset(of: Set(second.assignments)))
    }

    @Test("spread keeps the skew over a label within maxSkew")
    func spread() {
        let devices = (0..<6).map { TestFleet.device("a\($0)", labels: ["site": "a"]) } + (0..<2).map { TestFleet.device("b\($0)", labels: ["site": "b"]) }
        let w = TestFleet.workload("w", replicas: 6) { $0.spread = SpreadConstraint(labelKey: "site", maxSkew: 1) }
        let plan = TestFleet.plan(devices, [w])
        let bySite = Dictionary(grouping: plan.assignments) { $0.device.hasPrefix("a") ? "a" : "b" }.mapValues(\.count)
        #expect(bySite == ["a": 3, "b": 2], "site b holds only 2 devices, so a may hold 3 and no more")
        #expect(plan.unplaced.count == 1)
        #expect(plan.unplaced.first?.reasons.contains { $0.contains("spread over site would exceed maxSkew 1") } == true)
    }

    @Test("affinity and anti-affinity to another workload, by device and by label")
    func affinity() {
        let devices = (0..<4).map { TestFleet.device("d\($0)", labels: ["site": $0 < 2 ? "x" : "y"]) }
        let db = TestFleet.workload("db") { $0.priority = 10 }
        let app = TestFleet.workload("app") { $0.affinity = [AffinityTerm(workload: "db")] }
        let cache = TestFleet.workload("cache") { $0.antiAffinity = [AffinityTerm(workload: "db", labelKey: "site")] }
        let plan = TestFleet.plan(devices, [app, cache, db])
        let where_ = Dictionary(uniqueKeysWithValues: plan.assignments.map { ($0.workload, $0.device) })
        #expect(where_["app"] == where_["db"])
        let siteOf = { (d: String?) in (d.flatMap { Int($0.dropFirst()) } ?? 0) < 2 ? "x" : "y" }
        #expect(siteOf(where_["cache"]) != siteOf(where_["db"]))
    }

    @Test("two workloads that listen on one host port never share a device; a third finds none left, and the incremental scheduler agrees")
    func hostPorts() {
        let devices = (0..<2).map { TestFleet.device("d\($0)") }
        // Placed first (priority), then the others around them.
        let web = TestFleet.workload("web") { $0.ports = [80, 443]; $0.priority = 10 }
        let proxy = TestFleet.workload("proxy") { $0.ports = [8080, 443]; $0.priority = 10 }
        let other = TestFleet.workload("other") { $0.ports = [9000] }
        let late = TestFleet.workload("late") { $0.ports = [80, 8080] }
        let plan = TestFleet.plan(devices, [web, proxy, other, late])
        let where_ = Dictionary(plan.assignments.map { ($0.workload, $0.device) }, uniquingKeysWith: { a, _ in a })
        #expect(where_["web"] != nil && where_["proxy"] != nil && where_["web"] != where_["proxy"])
        #expect(where_["other"] != nil, "a port no one else claims places anywhere")
        #expect(where_["late"] == nil)
        #expect(plan.unplaced.first { $0.workload == "late" }?.reasons.contains { $0.contains("port 80 taken by web") || $0.contains("port 8080 taken by proxy") } == true, "\(plan.unplaced)")

        let incremental = IncrementalScheduler(SchedulingInput(devices: devices, workloads: [web, proxy, other, late], current: [], now: 1_000_000))
        #expect(Set(incremental.plan.assignments.map { "\($0.workload)@\($0.device)" }) == Set(plan.assignments.map { "\($0.workload)@\($0.device)" }))
        // A third device joins: the late workload takes it.
        let delta = incremental.update(device: TestFleet.device("d2"), now: 1_000_000)
        #expect(delta.added.map { "\($0.workload)@\($0.device)" } == ["late@d2"])
    }

    @Test("a higher-priority replica preempts lower-priority ones when nothing else fits")
    func preemption() {
        let devices = [TestFleet.device("a", cpu: 1000), TestFleet.device("b", cpu: 1000)]
        let low = TestFleet.workload("low", replicas: 2, cpu: 800) { $0.priority = 1 }
        let first = TestFleet.plan(devices, [low])
        #expect(first.assignments.count == 2)
        let high = TestFleet.workload("high", replicas: 1, cpu: 600) { $0.priority = 100 }
        let second = TestFleet.plan(devices, [low, high], current: first.assignments)
        #expect(second.preempted.count == 1)
        #expect(second.assignments.filter { $0.workload == "high" }.count == 1)
        #expect(second.unplaced.map(\.workload) == ["low"])
        // Equal priority never preempts.
        let peer = TestFleet.workload("peer", replicas: 1, cpu: 600) { $0.priority = 1 }
        #expect(TestFleet.plan(devices, [low, peer], current: first.assignments).preempted.isEmpty)
    }

    @Test("cordon stops new placements; drain moves replicas away")
    func cordonAndDrain() {
        let w = TestFleet.workload("w", replicas: 1)
        let first = TestFleet.plan([TestFleet.device("a"), TestFleet.device("b", memory: 512 << 20)], [w])
        #expect(first.assignments.map(\.device) == ["a"])
        let cordoned = TestFleet.plan([TestFleet.device("a", schedulability: .cordoned), TestFleet.device("b")], [w], current: first.assignments)
        #expect(cordoned.assignments.map(\.device) == ["a"], "cordon keeps what runs")
        let fresh = TestFleet.plan([TestFleet.device("a", schedulability: .cordoned), TestFleet.device("b")], [TestFleet.workload("v")])
        #expect(fresh.assignments.map(\.device) == ["b"])
        let drained = TestFleet.plan([TestFleet.device("a", schedulability: .draining), TestFleet.device("b")], [w], current: first.assignments)
        #expect(drained.assignments.map(\.device) == ["b"])
    }

    @Test("replicas on an unreachable device stay for tolerateOffline, then move")
    func tolerateOffline() {
        let w = TestFleet.workload("w") { $0.connectivity.tolerateOfflineSeconds = 60 }
        let current = [Assignment(workload: "w", ordinal: 0, device: "a")]
        let devices = [TestFleet.device("a", presence: .unreachable, lastSeen: 0), TestFleet.device("b")]
        #expect(TestFleet.plan(devices, [w], current: current, now: 30_000).assignments.map(\.device) == ["a"])
        #expect(TestFleet.plan(devices, [w], current: current, now: 61_000).assignments.map(\.device) == ["b"])
    }

    @Test("binPack fills the fullest device that fits; spreadLoad the emptiest")
    func strategies() {
        let devices = [TestFleet.device("big", cpu: 4000, memory: 4 << 30), TestFleet.device("small", cpu: 1000, memory: 1 << 30)]
        let existing = TestFleet.workload("base", cpu: 500, memory: 512 << 20) { $0.selector = LabelSelector(matchExpressions: [.init(key: "x", operator: .doesNotExist)]) }
        let placedBase = [Assignment(workload: "base", ordinal: 0, device: "small")]
        let packed = TestFleet.plan(devices, [existing, TestFleet.workload("p") { $0.strategy = .binPack }], current: placedBase)
        #expect(packed.assignments.first { $0.workload == "p" }?.device == "small")
        let spread = TestFleet.plan(devices, [existing, TestFleet.workload("p")], current: placedBase)
        #expect(spread.assignments.first { $0.workload == "p" }?.device == "big")
    }

    @Test("maxPerDevice allows several replicas of a workload on one device")
    func maxPerDevice() {
        let plan = TestFleet.plan([TestFleet.device("a")], [TestFleet.workload("w", replicas: 3) { $0.maxPerDevice = 3 }])
        #expect(plan.assignments.count == 3)
        #expect(plan.unplaced.isEmpty)
    }

    @Test("a scale change moves nothing that is placed")
    func incremental() {
        let devices = (0..<4).map { TestFleet.device("d\($0)") }
        let first = TestFleet.plan(devices, [TestFleet.workload("w", replicas: 3)])
        let down = TestFleet.plan(devices, [TestFleet.workload("w", replicas: 1)], current: first.assignments)
        #expect(down.assignments == [first.assignments[0]])
        let up = TestFleet.plan(devices, [TestFleet.workload("w", replicas: 3)], current: down.assignments)
        #expect(up.assignments.contains(first.assignments[0]))
        #expect(up.assignments.count == 3)
    }

    @Test("with no devices, every replica says so")
    func noDevices() {
        #expect(TestFleet.plan([], [TestFleet.workload("w", replicas: 2)]).unplaced.map(\.reasons) == [["no devices registered"], ["no devices registered"]])
    }
}
