/// Counts dropped messages by reason and decides which drops are worth a log line:
/// at most one per device and minute, and 20 a minute in all, so garbage cannot flood the log.
///
/// Pure: the caller passes the time in.
public struct DropLedger: Sendable {
    public private(set) var counts: [DropReason: Int] = [:]
    private var lastLogged: [String: Double] = [:]
    public let logInterval: Double

    public init(logInterval: Double = 60, counts: [DropReason: Int] = [:]) {
        self.logInterval = logInterval
        self.counts = counts
    }

    /// The counts as text for a store (`reason=count,...`), and back: they outlive restarts.
    public var countsText: String {
        counts.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue)=\($0.value)" }.joined(separator: ",")
    }

    public static func counts(fromText text: String) -> [DropReason: Int] {
        var counts: [DropReason: Int] = [:]
        for pair in text.split(separator: ",") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            guard kv.count == 2, let reason = DropReason(rawValue: String(kv[0])), let n = Int(kv[1]), n >= 0 else { continue }
            counts[reason] = n
        }
        return counts
    }

    public var total: Int { counts.values.reduce(0, +) }

    /// Log lines per `logInterval` over all devices: garbage under 20,000 made-up device ids
    /// must not write 20,000 lines.
    public var maxLinesPerInterval = 20
    private var windowStart: Double = -.infinity
    private var linesInWindow = 0

    /// Records one drop; returns true when it should be logged.
    public mutating func record(_ reason: DropReason, device: String, now: Double) -> Bool {
        counts[reason, default: 0] &+= 1
        if let last = lastLogged[device], now - last < logInterval { return false }
        if now - windowStart >= logInterval { (windowStart, linesInWindow) = (now, 0) }
        guard linesInWindow < maxLinesPerInterval else { return false }
        linesInWindow += 1
        if lastLogged.count > 10_000 {
            // Bound the memory a flood of made-up device ids can take.
            lastLogged = lastLogged.filter { now - $0.value < logInterval }
        }
        lastLogged[device] = now
        return true
    }
}
