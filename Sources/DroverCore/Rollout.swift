/// How a new revision of a workload goes live: in waves, each a share of the replicas (a
/// percentage or a count, cumulative) or those on devices with some labels; within a wave at
/// most `maxUnavailable` replicas are between revisions at once; a replica counts as updated
/// once it has run the new revision, ready, for `minReadySeconds`; after a wave the rollout
/// bakes for `bakeSeconds` watching it; more than `failureThreshold` failed replicas stop it
/// (and with `autoRollback` bring the previous revision back). Every state has a deadline.
public struct RolloutSpec: Hashable, Codable, Sendable {
    public enum Wave: Hashable, Codable, Sendable {
        case percent(Int)
        case count(Int)
        case selector(LabelSelector)
    }

    public var waves: [Wave]
    public var maxUnavailable: Int
    public var minReadySeconds: Int
    public var bakeSeconds: Int
    /// How long a wave may take before the replicas it still waits for count as failed (or,
    /// on devices that are offline, as pending).
    public var progressDeadlineSeconds: Int
    public var failureThreshold: Int
    public var autoRollback: Bool

    public init(
        waves: [Wave] = [.percent(100)], maxUnavailable: Int = 1, minReadySeconds: Int = 0, bakeSeconds: Int = 0, progressDeadlineSeconds: Int = 600,
        failureThreshold: Int = 0, autoRollback: Bool = true
    ) {
        self.waves = waves
        self.maxUnavailable = maxUnavailable
        self.minReadySeconds = minReadySeconds
        self.bakeSeconds = bakeSeconds
        self.progressDeadlineSeconds = progressDeadlineSeconds
        self.failureThreshold = failureThreshold
        self.autoRollback = autoRollback
    }

    public func problems(at path: String) -> [FieldError] {
        var out: [FieldError] = []
        func check(_ field: String, _ value: Int, _ range: ClosedRange<Int>) {
            if !range.contains(value) { out.append(FieldError(path: "\(path).\(field)", reason: "must be \(range.lowerBound)-\(range.upperBound), found \(value)")) }
        }
        if waves.isEmpty || waves.count > 20 { out.append(FieldError(path: "\(path).waves", reason: "must list 1-20 waves")) }
        for (i, wave) in waves.prefix(20).enumerated() {
            switch wave {
            case .percent(let p): check("waves[\(i)].percent", p, 1...100)
            case .count(let c): check("waves[\(i)].count", c, 1...WorkloadSpec.maxReplicas)
            case .selector(let s):
                if s.matchLabels.isEmpty && s.matchExpressions.isEmpty { out.append(FieldError(path: "\(path).waves[\(i)].selector", reason: "must select something")) }
            }
        }
        check("maxUnavailable", maxUnavailable, 1...WorkloadSpec.maxReplicas)
        check("minReadySeconds", minReadySeconds, 0...86_400)
        check("bakeSeconds", bakeSeconds, 0...7 * 86_400)
        check("progressDeadlineSeconds", progressDeadlineSeconds, 10...7 * 86_400)
        check("failureThreshold", failureThreshold, 0...WorkloadSpec.maxReplicas)
        return out
    }
}

/// Where a rollout is. Kept with the workload in `controller.db`, so that a controller
/// restart resumes it where it was.
public struct RolloutState: Hashable, Codable, Sendable {
    public enum Phase: String, Hashable, Codable, Sendable {
        case progressing, baking, paused, rollingBack, succeeded, failed, aborted
    }

    public var from: Int
    public var to: Int
    public var wave: Int
    public var phase: Phase
    /// When the current wave (or bake, or rollback) began; its deadline counts from here.
    public var since: Int64
    /// The revision each replica is told to run, by replica id (absent: `from`).
    public var assigned: [String: Int]
    /// When each replica was first seen running `to` and ready (for `minReadySeconds`).
    public var readySince: [String: Int64]
    /// Why it is where it is, for `drover rollout status`.
    public var message: String
    /// The phase a pause interrupted.
    public var pausedFrom: Phase?
    /// Replica ids in the order they were told the new revision.
    public var order: [String] = []

    public init(from: Int, to: Int, now: Int64) {
        self.from = from
        self.to = to
        wave = 0
        phase = .progressing
        since = now
        assigned = [:]
        readySince = [:]
        message = "starting wave 1"
    }

    public var isActive: Bool { phase == .progressing || phase == .baking || phase == .rollingBack }
}

/// A replica as a rollout sees it.
public struct RolloutReplica: Hashable, Sendable {
    public var id: String
    public var labels: [String: String]
    public var online: Bool
    /// The revision it was last seen running, ready or not; nil: not running.
    public var runs: Int?
    public var ready: Bool
    /// Crash-looping, exited with an error, or failing its probes.
    public var failing: Bool

    public init(id: String, labels: [String: String] = [:], online: Bool = true, runs: Int?, ready: Bool, failing: Bool = false) {
        self.id = id
        self.labels = labels
        self.online = online
        self.runs = runs
        self.ready = ready
        self.failing = failing
    }
}
