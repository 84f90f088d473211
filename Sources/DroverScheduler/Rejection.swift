import DroverCore

/// Why one device could not take a replica.
public enum RejectionReason: Hashable, Sendable {
    case unreachable
    case cordoned
    case draining
    case selectorMismatch(String)
    case archMismatch(wanted: [String])
    case runtimeMissing(RuntimeKind)
    case linkTooWeak(minimum: LinkClass)
    case uptimeTooLow(minimum: Double)
    case spreadLabelMissing(String)
    case affinityUnmet(String)
    case antiAffinity(String)
    case maxPerDevice(Int)
    case insufficient(resource: String, needed: Int64, free: Int64)
    case spreadSkew(key: String, maxSkew: Int)
    case portTaken(port: Int, by: String)

    /// The text devices are grouped by in explanations.
    var kind: String {
        switch self {
        case .unreachable: "offline"
        case .cordoned: "cordoned"
        case .draining: "draining"
        case .selectorMismatch(let term): "selector \(term) not matched"
        case .archMismatch(let wanted): "arch not in \(wanted.joined(separator: ","))"
        case .runtimeMissing(let r): "runtime \(r.rawValue) not available"
        case .linkTooWeak(let minimum): "link weaker than \(minimum.rawValue)"
        case .uptimeTooLow(let minimum): "uptime below \(Int(minimum * 100))%"
        case .spreadLabelMissing(let key): "no \(key) label to spread over"
        case .affinityUnmet(let w): "affinity to \(w) not met"
        case .antiAffinity(let w): "anti-affinity with \(w)"
        case .maxPerDevice(let n): n == 1 ? "already runs a replica of this workload" : "already runs \(n) replicas of this workload"
        case .insufficient(let resource, let needed, _): "insufficient \(resource) (needs \(Self.format(resource, needed))"
        case .spreadSkew(let key, let skew): "spread over \(key) would exceed maxSkew \(skew)"
        case .portTaken(let port, let workload): "port \(port) taken by \(workload)"
        }
    }

    static func format(_ resource: String, _ value: Int64) -> String {
        switch resource {
        case "cpu": Quantity.formatCPU(Int(value))
        case "memory", "storage": Quantity.formatMemory(value)
        default: String(value)
        }
    }
}

enum Explanation {
    /// "37 devices: insufficient memory (needs 64Mi, most free 32Mi)", largest group first.
    static func group(_ rejections: [RejectionReason], deviceCount: Int) -> [String] {
        guard deviceCount > 0 else { return ["no devices registered"] }
        var groups: [String: (count: Int, mostFree: Int64, resource: String)] = [:]
        for r in rejections {
            var g = groups[r.kind] ?? (0, Int64.min, "")
            g.count += 1
            if case .insufficient(let resource, _, let free) = r {
                g.mostFree = max(g.mostFree, free)
                g.resource = resource
            }
            groups[r.kind] = g
        }
        return groups.sorted { ($1.value.count, $0.key) < ($0.value.count, $1.key) }.map { kind, g in
            let devices = "\(g.count) device\(g.count == 1 ? "" : "s")"
            guard g.mostFree != Int64.min else { return "\(devices): \(kind)" }
            return "\(devices): \(kind), most free \(RejectionReason.format(g.resource, max(g.mostFree, 0))))"
        }
    }
}

extension Resources {
    /// The first dimension of `request` that does not fit, with what is free of it.
    func shortfall(_ request: Resources) -> RejectionReason? {
        if request.cpuMillis > cpuMillis { return .insufficient(resource: "cpu", needed: Int64(request.cpuMillis), free: Int64(cpuMillis)) }
        if request.memoryBytes > memoryBytes { return .insufficient(resource: "memory", needed: request.memoryBytes, free: memoryBytes) }
        if request.storageBytes > storageBytes { return .insufficient(resource: "storage", needed: request.storageBytes, free: storageBytes) }
        for name in request.devices.keys.sorted() where (request.devices[name] ?? 0) > (devices[name] ?? 0) {
            return .insufficient(resource: name, needed: Int64(request.devices[name] ?? 0), free: Int64(devices[name] ?? 0))
        }
        return nil
    }

    /// In-place reservation; avoids building dictionaries when no named resources are involved.
    @inline(__always)
    mutating func reserve(_ r: Resources, sign: Int = 1) {
        cpuMillis -= sign * r.cpuMillis
        memoryBytes -= Int64(sign) * r.memoryBytes
        storageBytes -= Int64(sign) * r.storageBytes
        for (k, v) in r.devices { devices[k, default: 0] -= sign * v }
    }
}

extension WorkloadSpec {
    /// Constraints that hold for replicas already placed as much as for new ones.
    func hardRejection(_ d: DeviceSnapshot) -> RejectionReason? {
        if let term = selector.firstMismatch(d.labels) { return .selectorMismatch(term) }
        if !arch.isEmpty, !arch.contains(d.arch) { return .archMismatch(wanted: arch) }
        if !d.runtimes.contains(runtime) { return .runtimeMissing(runtime) }
        if let minimum = connectivity.minLinkClass, d.connectivity.linkClass < minimum { return .linkTooWeak(minimum: minimum) }
        if let minimum = connectivity.minUptime, d.connectivity.uptimeRatio < minimum { return .uptimeTooLow(minimum: minimum) }
        if let spread, d.labels[spread.labelKey] == nil { return .spreadLabelMissing(spread.labelKey) }
        return nil
    }

    /// Everything a device must satisfy to receive a new replica, before capacity.
    func newPlacementRejection(_ d: DeviceSnapshot) -> RejectionReason? {
        if d.presence != .online { return .unreachable }
        switch d.schedulability {
        case .cordoned: return .cordoned
        case .draining: return .draining
        case .normal: break
        }
        return hardRejection(d)
    }

    /// A kept replica moves when its device drains, breaks a hard constraint, or has been
    /// unreachable for longer than the workload tolerates.
    func keepRejection(_ d: DeviceSnapshot, now: Int64) -> RejectionReason? {
        if d.schedulability == .draining { return .draining }
        if d.presence == .unreachable, now - d.connectivity.lastSeen > Int64(connectivity.tolerateOfflineSeconds) * 1000 { return .unreachable }
        return hardRejection(d)
    }
}
