/// How a new revision of a workload goes live: in waves, each a share of the replicas (a
/// percentage or a count, cumulative) or those on devices with some labels; within a wave at
/// most `maxUnavailable` replicas are between revisions at once, plus at most `maxSurge` that
/// start their new revision beside the old one (where the device has room for both, the old
/// one stopping once the new one is ready); a replica counts as updated
/// once it has run the new revision, ready, for `minReadySeconds`; after a wave the rollout
/// bakes for `bakeSeconds` watching it; more than `failureThreshold` failed replicas stop it
/// (and with `autoRollback` bring the previous revision back); a failed replica within the
/// threshold no longer holds a place under `maxUnavailable` (the rollout goes on without it).
/// Every state has a deadline.
public struct RolloutSpec: Hashable, Codable, Sendable {
    public enum Wave: Hashable, Codable, Sendable {
        case percent(Int)
        case count(Int)
        case selector(LabelSelector)
    }

    public var waves: [Wave]
    public var maxUnavailable: Int
    /// How many replicas at once may run the new revision beside the old one.
    public var maxSurge: Int
    public var minReadySeconds: Int
    public var bakeSeconds: Int
    /// How long a wave may take before the replicas it still waits for count as failed (or,
    /// on devices that are offline, as pending).
    public var progressDeadlineSeconds: Int
    public var failureThreshold: Int
    public var autoRollback: Bool

    public init(
        waves: [Wave] = [.percent(100)], maxUnavailable: Int = 1, maxSurge: Int = 0, minReadySeconds: Int = 0, bakeSeconds: Int = 0, progressDeadlineSeconds: Int = 600,
        failureThreshold: Int = 0, autoRollback: Bool = true
    ) {
        self.waves = waves
        self.maxUnavailable = maxUnavailable
        self.maxSurge = maxSurge
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
        check("maxUnavailable", maxUnavailable, 0...WorkloadSpec.maxReplicas)
        check("maxSurge", maxSurge, 0...WorkloadSpec.maxReplicas)
        if maxUnavailable == 0 && maxSurge == 0 { out.append(FieldError(path: "\(path).maxUnavailable", reason: "maxUnavailable and maxSurge cannot both be 0")) }
        check("minReadySeconds", minReadySeconds, 0...86_400)
        check("bakeSeconds", bakeSeconds, 0...7 * 86_400)
        check("progressDeadlineSeconds", progressDeadlineSeconds, 10...7 * 86_400)
        check("failureThreshold", failureThreshold, 0...WorkloadSpec.maxReplicas)
        return out
    }

    enum CodingKeys: String, CodingKey {
        case waves, maxUnavailable, maxSurge, minReadySeconds, bakeSeconds, progressDeadlineSeconds, failureThreshold, autoRollback
    }

    /// `maxSurge` came later: absent, it is 0.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        waves = try c.decode([Wave].self, forKey: .waves)
        maxUnavailable = try c.decode(Int.self, forKey: .maxUnavailable)
        maxSurge = try c.decodeIfPresent(Int.self, forKey: .maxSurge) ?? 0
        minReadySeconds = try c.decode(Int.self, forKey: .minReadySeconds)
        bakeSeconds = try c.decode(Int.self, forKey: .bakeSeconds)
        progressDeadlineSeconds = try c.decode(Int.self, forKey: .progressDeadlineSeconds)
        failureThreshold = try c.decode(Int.self, forKey: .failureThreshold)
        autoRollback = try c.decode(Bool.self, forKey: .autoRollback)
    }
}

/// Where a rollout is. Kept with the workload in `controller.db`, so that a controller
/// restart resumes it where it was.
public struct RolloutState: Hashable, Codable, Sendable {
    public enum Phase: String, Hashable, Codable, Sendable, CaseIterable {
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
    /// When each replica was told the new revision: one not updated `progressDeadline` later
    /// (on an online device) has failed.
    public var assignedAt: [String: Int64] = [:]
    /// Replicas told to start the new revision beside the old one.
    public var surged: Set<String> = []
    /// Replicas updated since they were told, and those seen on an offline device: a replica
    /// that stops being updated, or comes back online, gets its deadline afresh.
    public var wasUpdated: Set<String> = []
    public var away: Set<String> = []

    enum CodingKeys: String, CodingKey {
        case from, to, wave, phase, since, assigned, readySince, message, pausedFrom, order, assignedAt, surged, wasUpdated, away
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        from = try c.decode(Int.self, forKey: .from)
        to = try c.decode(Int.self, forKey: .to)
        wave = try c.decode(Int.self, forKey: .wave)
        phase = try c.decode(Phase.self, forKey: .phase)
        since = try c.decode(Int64.self, forKey: .since)
        assigned = try c.decode([String: Int].self, forKey: .assigned)
        readySince = try c.decode([String: Int64].self, forKey: .readySince)
        message = try c.decode(String.self, forKey: .message)
        pausedFrom = try c.decodeIfPresent(Phase.self, forKey: .pausedFrom)
        order = try c.decodeIfPresent([String].self, forKey: .order) ?? []
        assignedAt = try c.decodeIfPresent([String: Int64].self, forKey: .assignedAt) ?? [:]
        surged = try c.decodeIfPresent(Set<String>.self, forKey: .surged) ?? []
        wasUpdated = try c.decodeIfPresent(Set<String>.self, forKey: .wasUpdated) ?? []
        away = try c.decodeIfPresent(Set<String>.self, forKey: .away) ?? []
    }

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

    /// The same but for what can be rebuilt after a controller restart (when replicas got
    /// ready, which were updated or away, when each was told: at worst a replica waits its
    /// `minReadySeconds` or its deadline again; the progress message, redone at the next
    /// step). Most reports change only that: it is kept in memory and stored with the next
    /// change that counts, instead of a write per report.
    public func sameDurably(as other: RolloutState) -> Bool {
        from == other.from && to == other.to && wave == other.wave && phase == other.phase && since == other.since && assigned == other.assigned
            && pausedFrom == other.pausedFrom && order == other.order && surged == other.surged
    }
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
    /// Its device, and what a second instance of it would take there; nil: it cannot surge
    /// (it is not running, or its workload claims host ports).
    public var device: String
    public var surgeCost: Resources?

    public init(
        id: String, labels: [String: String] = [:], online: Bool = true, runs: Int?, ready: Bool, failing: Bool = false, device: String = "",
        surgeCost: Resources? = nil
    ) {
        self.device = device
        self.surgeCost = surgeCost
        self.id = id
        self.labels = labels
        self.online = online
        self.runs = runs
        self.ready = ready
        self.failing = failing
    }
}
