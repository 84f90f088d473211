import DroverCore

extension PlanState {
    /// Workload `name` is replaced by `spec` (nil: deleted), as a full plan of the new set of
    /// workloads would see it: its replicas are released, to be kept again where they still
    /// qualify, and when it grew, every replica on the devices that host it too, since a full
    /// plan keeps what runs there again in priority order; indexes by workload follow the new order.
    /// Returns the released replicas still to keep, by their new workload index, the deleted
    /// workload's replicas, and each old workload index's new one (-1: deleted).
    mutating func replace(workload name: String, with spec: WorkloadSpec?) -> (released: [(w: Int, a: Assignment)], gone: [Assignment], remap: [Int]) {
        var released: [(w: Int, a: Assignment)] = []
        if let old = workloadIndex[name] {
            // Everything on a device fitted together: unless the workload grew in some
            // resource, what else runs there keeps its place whatever the order, and only
            // the workload's own replicas need to be kept again.
            let others = spec.map { !workloads[old].resources.fits($0.resources) } ?? false
            for d in hosts[old].compactMap({ $0.value > 0 ? $0.key : nil }).sorted() {
                for p in onDevice[Int(d)] where others || placedWorkload[Int(p)] == Int32(old) {
                    if let a = release(p) { released.append((Int(placedWorkload[Int(p)]), a)) }
                }
            }
            hosts[old] = [:]
            ordinals[old] = []
        }
        unplaced.removeAll { $0.workload == name }
        var specs = workloads.filter { $0.name != name }
        if let spec { specs.append(spec) }
        specs.sort { ($1.priority, $0.name) < ($0.priority, $1.name) }
        let index = Dictionary(specs.enumerated().map { ($0.element.name, $0.offset) }, uniquingKeysWith: { a, _ in a })
        let remap = workloads.map { index[$0.name] ?? -1 }
        let unmoved = specs.count == workloads.count && remap.enumerated().allSatisfy { $0.offset == $0.element }
        workloads = specs
        workloadIndex = index
        var gone: [Assignment] = []
        var kept: [(w: Int, a: Assignment)] = []
        kept.reserveCapacity(released.count)
        for x in released {
            let w = remap[x.w]
            if w < 0 { gone.append(x.a) } else { kept.append((w, x.a)) }
        }
        guard !unmoved else { return (kept, gone, remap) }
        var movedHosts = Array(repeating: [Int32: Int](), count: specs.count)
        var movedOrdinals = Array(repeating: Set<Int>(), count: specs.count)
        for (old, new) in remap.enumerated() where new >= 0 {
            movedHosts[new] = hosts[old]
            movedOrdinals[new] = ordinals[old]
        }
        hosts = movedHosts
        ordinals = movedOrdinals
        for slot in placed.indices where placed[slot] != nil {
            placedWorkload[slot] = Int32(remap[Int(placedWorkload[slot])])
        }
        return (kept, gone, remap)
    }
}
