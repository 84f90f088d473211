#if canImport(Glibc)
import Glibc
#endif

/// CPU used by each replica's whole process group, in millicores, between two samples.
struct ReplicaCPUSampler {
    private var last: [Int32: Int64] = [:]
    private var lastTime: ContinuousClock.Instant?
    private let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// `groups` maps replica id to its process group id (the leader's pid).
    mutating func sample(_ groups: [String: Int32]) -> [String: Int] {
        let wanted = Set(groups.values)
        var ticks: [Int32: Int64] = [:]
        for entry in POSIX.listDirectory("/proc") {
            guard let pid = Int32(entry), let fields = POSIX.procStat(pid), fields.count > 12,
                let group = Int32(fields[2]), wanted.contains(group),
                let user = Int64(fields[11]), let system = Int64(fields[12])
            else { continue }
            ticks[group, default: 0] += user + system
        }
        let now = ContinuousClock.now
        defer {
            last = ticks
            lastTime = now
        }
        guard let lastTime else { return [:] }
        let elapsed = (now - lastTime).components
        let seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
        guard seconds > 0 else { return [:] }
        var result: [String: Int] = [:]
        for (id, group) in groups {
            guard let now = ticks[group], let before = last[group], now >= before else { continue }
            result[id] = Int(Double(now - before) / ticksPerSecond / seconds * 1000)
        }
        return result
    }
}
