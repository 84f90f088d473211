import DroverCore
import DroverStore

/// The controller's own blindness: while it is stopped, or cut off from its broker, it hears
/// nothing from any device, and that silence must never count against a device.
///
/// Every such span is remembered; a device's silence is measured without them (for beat
/// timeouts and for `tolerateOffline`), and after the controller regains sight no device is
/// judged until `unreachableAfter` has passed.
struct Sight: Sendable {
    /// Periods in which the controller could not hear devices, oldest first.
    private(set) var blindSpans: [ClosedRange<Int64>] = []
    /// Since when the controller has been blind; nil while it hears the broker.
    private(set) var blindSince: Int64?
    /// When the controller last regained sight.
    private(set) var since: Int64

    /// Blind from `lastAlive` (the controller's last sign of life before this start) until
    /// the broker connection is up.
    init(lastAlive: Int64?, now: Int64) {
        blindSince = min(lastAlive ?? now, now)
        since = now
    }

    var isBlind: Bool { blindSince != nil }

    mutating func lost(at now: Int64) {
        if blindSince == nil { blindSince = now }
    }

    /// Sight is back: the blind span is kept, spans no device's silence reaches are dropped.
    mutating func restored(at now: Int64, oldestLastSeen: Int64) {
        if let start = blindSince, start < now { blindSpans.append(start...now) }
        blindSince = nil
        since = now
        blindSpans.removeAll { $0.upperBound < oldestLastSeen }
        if blindSpans.count > 1000 { blindSpans.removeFirst(blindSpans.count - 1000) }
    }

    /// `lastSeen` moved forward by the blind time since it: the moment from which the
    /// device's silence counts.
    func effectiveLastSeen(_ lastSeen: Int64, now: Int64) -> Int64 {
        var credit: Int64 = 0
        for span in blindSpans + (blindSince.map { [$0...max($0, now)] } ?? []) where span.upperBound > lastSeen {
            credit += span.upperBound - max(span.lowerBound, lastSeen)
        }
        return min(now, lastSeen + credit)
    }
}

extension FleetState {
    /// The broker connection went down: devices cannot be heard, so none is judged.
    mutating func sightLost(now: Int64) {
        sight.lost(at: now)
    }

    /// The broker connection is up again.
    mutating func sightRestored(now: Int64) {
        sight.restored(at: now, oldestLastSeen: devices.values.map(\.lastSeen).min() ?? now)
    }

    var unreachableAfterMillis: Int64 {
        Int64(unreachableAfter.components.seconds * 1000) + unreachableAfter.components.attoseconds / 1_000_000_000_000_000
    }

    /// Blind, or within the grace after regaining sight: no device is judged.
    func inGrace(now: Int64) -> Bool {
        sight.isBlind || now - sight.since <= graceMillis
    }

    /// `unreachableAfter`, but never less than 10 s: agents retry their broker at least every
    /// 5 s (jittered), so after an outage every live device is back within the grace.
    var graceMillis: Int64 { max(unreachableAfterMillis, 10_000) }

    /// Writes the controller's sign of life, so that the next start knows how long it was away.
    mutating func markAlive(now: Int64, into batch: inout StoreBatch) {
        guard now - lastAliveWritten >= Self.aliveInterval else { return }
        lastAliveWritten = now
        batch.meta[Self.lastAliveKey] = String(now)
        let drops = drops.countsText
        if drops != dropsWritten {
            batch.meta[Self.dropsKey] = drops
            dropsWritten = drops
        }
    }

    static let lastAliveKey = "controller.lastAlive"
    /// Dropped-message counts, kept across restarts.
    static let dropsKey = "controller.droppedMessages"
    static let aliveInterval: Int64 = 5_000
}
