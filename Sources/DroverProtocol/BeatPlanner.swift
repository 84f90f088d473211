import DroverCore

/// Decides what a device's next beat carries: only what changed since the beats before it,
/// and nothing at all (no beat) while nothing did, up to `idleInterval`. Pure: given a
/// sample and the time, it says what to send. The agent and `drover-sim` both use it.
///
/// A beat the controller may have missed must not leave its view stale: `reset()` after
/// every announcement (a connect, or the controller coming back) makes the next beat whole.
public struct BeatPlanner: Sendable {
    /// What the device sees now.
    public struct Sample: Sendable, Equatable {
        public var usage: Usage
        public var phases: [String: Int]
        public var replicaCPU: [String: Int]
        public var generation: Generation
        public var reportSeq: Int64
        /// Nil while replicas are stopping: then none of the three is told.
        public var digest: String?
        public var rtt: Double?

        public init(usage: Usage, phases: [String: Int], replicaCPU: [String: Int] = [:], generation: Generation, reportSeq: Int64, digest: String?, rtt: Double? = nil) {
            self.usage = usage
            self.phases = phases
            self.replicaCPU = replicaCPU
            self.generation = generation
            self.reportSeq = reportSeq
            self.digest = digest
            self.rtt = rtt
        }
    }

    /// The longest the device stays silent, in milliseconds (`hello.beatEvery`).
    public let idleInterval: Int64
    /// Machine usage is shown, never acted on: a move in it rides along with any beat that
    /// goes out, and makes one of its own at most this often.
    public let usageInterval: Int64
    /// What the controller has been told, field by field; nil: nothing yet (the next beat is whole).
    private var told: Sample?
    private var toldAt: Int64 = 0
    private var usageToldAt: Int64 = 0

    /// `usageInterval`: `idleInterval` unless given.
    public init(idleInterval: Int64, usageInterval: Int64? = nil) {
        self.idleInterval = idleInterval
        self.usageInterval = usageInterval ?? idleInterval
    }

    /// The next beat tells everything.
    public mutating func reset() { told = nil }

    /// The beat to send now, or nil when there is nothing to say yet. Counts it as told.
    public mutating func next(_ sample: Sample, device: String, now: Int64) -> Beat? {
        var beat = Beat(device: device, time: now)
        guard var known = told else {
            beat.usage = sample.usage
            beat.phases = sample.phases
            beat.replicaCPU = sample.replicaCPU.isEmpty ? nil : sample.replicaCPU
            beat.rtt = sample.rtt
            if sample.digest != nil { (beat.generation, beat.reportSeq, beat.digest) = (sample.generation, sample.reportSeq, sample.digest) }
            told = sample
            (toldAt, usageToldAt) = (now, now)
            return beat
        }
        var changed = false
        if sample.phases != known.phases {
            beat.phases = sample.phases
            changed = true
        }
        if sample.digest != nil, sample.generation != known.generation || sample.reportSeq != known.reportSeq || sample.digest != known.digest {
            (beat.generation, beat.reportSeq, beat.digest) = (sample.generation, sample.reportSeq, sample.digest)
            changed = true
        }
        let moved = sample.replicaCPU.filter { id, millis in known.replicaCPU[id].map { Self.cpuMoved(from: $0, to: millis) } ?? true }
        if !moved.isEmpty {
            beat.replicaCPU = moved
            changed = true
        }
        if let rtt = sample.rtt, known.rtt.map({ Self.rttMoved(from: $0, to: rtt) }) ?? true {
            beat.rtt = rtt
            changed = true
        }
        let usageMoved = Self.usageMoved(from: known.usage, to: sample.usage)
        if usageMoved, now - usageToldAt >= usageInterval { changed = true }
        // Replicas no longer running are forgotten, sent or not: when one runs again its
        // figure is new.
        known.replicaCPU = known.replicaCPU.filter { sample.replicaCPU[$0.key] != nil }
        told = known
        guard changed || now - toldAt >= idleInterval else { return nil }
        if usageMoved { beat.usage = sample.usage }
        // What went out is now known; figures that did not move keep their told value, so
        // that slow drifts add up until they count.
        if let phases = beat.phases { known.phases = phases }
        if beat.digest != nil { (known.generation, known.reportSeq, known.digest) = (sample.generation, sample.reportSeq, sample.digest) }
        for (id, millis) in moved { known.replicaCPU[id] = millis }
        if let rtt = beat.rtt { known.rtt = rtt }
        if let usage = beat.usage {
            known.usage = usage
            usageToldAt = now
        }
        told = known
        toldAt = now
        return beat
    }

    /// A replica's CPU counts as moved by 10 % of what was told, and 10 millicores at least:
    /// the autoscaler compares it with the request, so small wobbles say nothing.
    static func cpuMoved(from old: Int, to new: Int) -> Bool {
        abs(new - old) >= max(10, old / 10)
    }

    /// By a quarter, and 2 ms at least.
    static func rttMoved(from old: Double, to new: Double) -> Bool {
        abs(new - old) >= max(2, old / 4)
    }

    /// 10 points of CPU, 5 % of memory or 1 % of disk, or a new total.
    static func usageMoved(from old: Usage, to new: Usage) -> Bool {
        old.memoryTotalBytes != new.memoryTotalBytes || old.diskTotalBytes != new.diskTotalBytes
            || abs(new.cpuPercent - old.cpuPercent) >= 10
            || abs(new.memoryUsedBytes - old.memoryUsedBytes) >= max(1, new.memoryTotalBytes / 20)
            || abs(new.diskUsedBytes - old.diskUsedBytes) >= max(1, new.diskTotalBytes / 100)
    }
}
