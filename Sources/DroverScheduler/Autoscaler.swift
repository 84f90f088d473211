import DroverCore

/// The replica count a workload's autoscale asks for. Pure: the caller keeps the history and
/// passes the time in.
public struct Autoscaler: Sendable {
    /// Recommendations of one workload with their times (ms), newest last, within the window.
    public private(set) var history: [(time: Int64, replicas: Int)] = []
    private var since: Int64?

    public init() {}

    /// - Parameters:
    ///   - current: the workload's replica count now.
    ///   - utilization: CPU use of each running replica with fresh figures, as a percentage of
    ///     its request.
    /// - Returns: the count to scale to (may equal `current`).
    public mutating func recommend(_ spec: AutoscaleSpec, current: Int, utilization: [Double], now: Int64) -> Int {
        let clampedCurrent = min(max(current, spec.minReplicas), spec.maxReplicas)
        guard !utilization.isEmpty else { return clampedCurrent }
        let mean = utilization.reduce(0, +) / Double(utilization.count)
        // Measured over the replicas that report; the ratio scales the whole count, as a
        // replica without figures yet is assumed to be like the others.
        let raw = Int((Double(max(current, 1)) * mean / Double(spec.targetCPUPercent)).rounded(.up))
        let wanted = min(max(raw, spec.minReplicas), spec.maxReplicas)
        let window = Int64(spec.stabilizationSeconds) * 1000
        if since == nil { since = now }
        history.append((now, wanted))
        history.removeAll { now - $0.time > window }
        if wanted >= clampedCurrent { return wanted }
        // Scale down only to the highest count recommended during the whole window, and only
        // once the window is full of data.
        guard let since, now - since >= window else { return clampedCurrent }
        return min(clampedCurrent, history.map(\.replicas).max() ?? clampedCurrent)
    }
}
