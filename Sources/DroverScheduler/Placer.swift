import DroverCore

/// Capacity- and selector-respecting placement. Pure and deterministic: same input, same plan.
///
/// Existing replicas stay where they are while their device still qualifies (an unreachable
/// device keeps its replicas: it may still be running them), so a change moves only what
/// must move. Missing replicas go to the eligible device with the most free memory, then
/// the most free CPU, then the smallest id.
public enum Placer {
    public static func plan(devices: [DeviceSnapshot], workloads: [WorkloadSpec], current: [Assignment]) -> PlacementPlan {
        let deviceByID = Dictionary(devices.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var free = Dictionary(devices.map { ($0.id, $0.capacity) }, uniquingKeysWith: { a, _ in a })
        let sortedWorkloads = workloads.sorted { $0.name < $1.name }
        let specByName = Dictionary(sortedWorkloads.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var kept: [Assignment] = []
        var devicesOfWorkload: [String: Set<String>] = [:]
        var takenSlots = Set<String>()

        // Keep what still qualifies, in a fixed order so that capacity is charged the same way every time.
        for a in current.sorted() {
            guard let spec = specByName[a.workload], a.ordinal < spec.replicas, let device = deviceByID[a.device],
                !takenSlots.contains(a.replicaID), !devicesOfWorkload[a.workload, default: []].contains(a.device),
                hardConstraintFailure(spec, device) == nil, let f = free[a.device], f.fits(spec.resources)
            else { continue }
            free[a.device] = f - spec.resources
            kept.append(a)
            takenSlots.insert(a.replicaID)
            devicesOfWorkload[a.workload, default: []].insert(a.device)
        }

        var assignments = kept
        var unplaced: [Unplaced] = []
        let orderedDevices = devices.sorted { $0.id < $1.id }
        for spec in sortedWorkloads {
            for ordinal in 0..<spec.replicas where !takenSlots.contains(WorkloadSpec.replicaID(workload: spec.name, ordinal: ordinal)) {
                var best: DeviceSnapshot?
                var rejections: [RejectionReason] = []
                for device in orderedDevices {
                    let f = free[device.id] ?? .zero
                    if let reason = rejection(spec, device, free: f, onDevices: devicesOfWorkload[spec.name, default: []]) {
                        rejections.append(reason)
                        continue
                    }
                    if let b = best, let bf = free[b.id], !isBetter(f, than: bf) { continue }
                    best = device
                }
                guard let chosen = best else {
                    unplaced.append(Unplaced(workload: spec.name, ordinal: ordinal, reasons: explain(rejections, deviceCount: devices.count)))
                    continue
                }
                free[chosen.id] = (free[chosen.id] ?? .zero) - spec.resources
                devicesOfWorkload[spec.name, default: []].insert(chosen.id)
                assignments.append(Assignment(workload: spec.name, ordinal: ordinal, device: chosen.id))
            }
        }
        return PlacementPlan(assignments: assignments.sorted(), unplaced: unplaced)
    }

    /// Constraints that hold for replicas already placed as much as for new ones.
    static func hardConstraintFailure(_ spec: WorkloadSpec, _ device: DeviceSnapshot) -> RejectionReason? {
        for key in spec.selector.keys.sorted() where device.labels[key] != spec.selector[key] {
            return .selectorMismatch(key: key, wanted: spec.selector[key] ?? "")
        }
        if !device.runtimes.contains(spec.runtime) { return .runtimeMissing(spec.runtime) }
        return nil
    }

    static func rejection(_ spec: WorkloadSpec, _ device: DeviceSnapshot, free: Resources, onDevices: Set<String>) -> RejectionReason? {
        if device.presence != .online { return .unreachable }
        if let failure = hardConstraintFailure(spec, device) { return failure }
        if onDevices.contains(device.id) { return .alreadyRunsWorkload }
        if spec.resources.cpuMillis > free.cpuMillis {
            return .insufficientCPU(neededMillis: spec.resources.cpuMillis, freeMillis: free.cpuMillis)
        }
        if spec.resources.memoryBytes > free.memoryBytes {
            return .insufficientMemory(needed: spec.resources.memoryBytes, free: free.memoryBytes)
        }
        return nil
    }

    private static func isBetter(_ a: Resources, than b: Resources) -> Bool {
        if a.memoryBytes != b.memoryBytes { return a.memoryBytes > b.memoryBytes }
        return a.cpuMillis > b.cpuMillis
    }

    /// "2 devices: insufficient memory (needs 64Mi, most free 32Mi)", largest group first.
    static func explain(_ rejections: [RejectionReason], deviceCount: Int) -> [String] {
        guard deviceCount > 0 else { return ["no devices registered"] }
        var groups: [String: (count: Int, mostFree: Int64)] = [:]
        for r in rejections {
            var g = groups[r.kind] ?? (0, -1)
            g.count += 1
            switch r {
            case .insufficientMemory(_, let free): g.mostFree = max(g.mostFree, free)
            case .insufficientCPU(_, let free): g.mostFree = max(g.mostFree, Int64(free))
            default: break
            }
            groups[r.kind] = g
        }
        return groups.sorted { ($1.value.count, $0.key) < ($0.value.count, $1.key) }.map { kind, g in
            var text = "\(g.count) device\(g.count == 1 ? "" : "s"): \(kind)"
            if g.mostFree >= 0 {
                let most = kind.hasPrefix("insufficient memory") ? Quantity.formatMemory(g.mostFree) : Quantity.formatCPU(Int(g.mostFree))
                text = String(text.dropLast()) + ", most free \(most))"
            }
            return text
        }
    }
}
