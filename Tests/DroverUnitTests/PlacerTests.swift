import DroverCore
import DroverScheduler
import Testing

@Suite("Placement")
struct PlacerTests {
    static func device(_ id: String, cpu: Int = 2000, memory: Int64 = 1 << 30, labels: [String: String] = [:], presence: Presence = .online) -> DeviceSnapshot {
        DeviceSnapshot(id: id, labels: labels, capacity: Resources(cpuMillis: cpu, memoryBytes: memory), runtimes: [.exec], presence: presence)
    }

    static func workload(_ name: String, replicas: Int, cpu: Int = 100, memory: Int64 = 64 << 20, selector: [String: String] = [:]) -> WorkloadSpec {
        WorkloadSpec(name: name, replicas: replicas, selector: selector, resources: Resources(cpuMillis: cpu, memoryBytes: memory), command: ["/bin/true"])
    }

    @Test("replicas go only to devices whose labels match the selector")
    func selector() {
        let devices = [Self.device("a", labels: ["site": "x"]), Self.device("b", labels: ["site": "y"]), Self.device("c", labels: ["site": "x"])]
        let plan = Placer.plan(devices: devices, workloads: [Self.workload("w", replicas: 3, selector: ["site": "x"])], current: [])
        #expect(Set(plan.assignments.map(\.device)) == ["a", "c"])
        #expect(plan.unplaced.count == 1)
        #expect(plan.unplaced.first?.reasons.contains { $0.contains("selector site=x not matched") } == true)
        #expect(plan.unplaced.first?.reasons.contains { $0.contains("already runs a replica") } == true)
    }

    @Test("a device is never over-committed")
    func capacity() {
        let devices = (0..<5).map { Self.device("d\($0)", cpu: 1000, memory: 256 << 20) }
        let workloads = (0..<6).map { Self.workload("w\($0)", replicas: 5, cpu: 300, memory: 100 << 20) }
        let plan = Placer.plan(devices: devices, workloads: workloads, current: [])
        let specs = Dictionary(uniqueKeysWithValues: workloads.map { ($0.name, $0) })
        for (device, assignments) in plan.byDevice() {
            let used = assignments.compactMap { specs[$0.workload]?.resources }.reduce(Resources.zero, +)
            #expect(used.cpuMillis <= 1000 && used.memoryBytes <= 256 << 20, "\(device) over-committed: \(used)")
        }
        #expect(plan.assignments.count == 10)  // two 100Mi replicas fit in 256Mi per device
        #expect(plan.unplaced.first?.reasons.first?.contains("insufficient memory (needs 100Mi, most free 56Mi)") == true)
    }

    @Test("unreachable devices get no new replicas but keep the ones they have")
    func unreachable() {
        let devices = [Self.device("a", presence: .unreachable), Self.device("b")]
        let current = [Assignment(workload: "w", ordinal: 0, device: "a")]
        let plan = Placer.plan(devices: devices, workloads: [Self.workload("w", replicas: 2)], current: current)
        #expect(plan.assignments == [Assignment(workload: "w", ordinal: 0, device: "a"), Assignment(workload: "w", ordinal: 1, device: "b")])
    }

    @Test("a scale change moves nothing that is placed: down drops the highest ordinals")
    func incremental() {
        let devices = (0..<4).map { Self.device("d\($0)") }
        let first = Placer.plan(devices: devices, workloads: [Self.workload("w", replicas: 3)], current: [])
        let down = Placer.plan(devices: devices, workloads: [Self.workload("w", replicas: 1)], current: first.assignments)
        #expect(down.assignments == [first.assignments[0]])
        let up = Placer.plan(devices: devices, workloads: [Self.workload("w", replicas: 3)], current: down.assignments)
        #expect(up.assignments.contains(first.assignments[0]))
        #expect(up.assignments.count == 3)
    }

    @Test("a replica whose device no longer matches is moved")
    func labelChange() {
        let before = [Assignment(workload: "w", ordinal: 0, device: "a")]
        let devices = [Self.device("a", labels: ["site": "y"]), Self.device("b", labels: ["site": "x"])]
        let plan = Placer.plan(devices: devices, workloads: [Self.workload("w", replicas: 1, selector: ["site": "x"])], current: before)
        #expect(plan.assignments.map(\.device) == ["b"])
    }

    @Test("the plan is the same for the same input, whatever the input order")
    func deterministic() {
        let devices = (0..<20).map { Self.device("d\($0)", cpu: 500 + ($0 % 3) * 500, memory: Int64(128 + ($0 % 4) * 128) << 20) }
        let workloads = (0..<8).map { Self.workload("w\($0)", replicas: 4, cpu: 200, memory: 96 << 20) }
        let a = Placer.plan(devices: devices, workloads: workloads, current: [])
        let b = Placer.plan(devices: devices.reversed(), workloads: workloads.shuffled(), current: [])
        #expect(a.assignments == b.assignments)
        #expect(a.unplaced == b.unplaced)
    }

    @Test("with no devices, every replica says so")
    func noDevices() {
        let plan = Placer.plan(devices: [], workloads: [Self.workload("w", replicas: 2)], current: [])
        #expect(plan.unplaced.map(\.reasons) == [["no devices registered"], ["no devices registered"]])
    }
}
