/// A device as the controller knows it.
public struct DeviceRecord: Codable, Sendable, Hashable {
    public var id: String
    public var facts: DeviceFacts
    public var presence: Presence
    /// Milliseconds since the epoch on the controller's clock.
    public var lastSeen: Int64
    public var joinedAt: Int64
    public var bootID: String
    public var lastAppliedGeneration: Generation
    /// Highest report sequence number applied; older or repeated reports are ignored.
    public var lastReportSeq: Int64
    /// The outbox epoch `lastReportSeq` belongs to (see `Report.epoch`).
    public var reportEpoch: String?
    public var usage: Usage?
    public var phases: [String: Int]
    /// `cordoned` or `draining` set by an operator; `normal` otherwise.
    public var schedulability: String
    /// Online→unreachable transitions since the device joined.
    public var flaps: Int
    /// Milliseconds spent online and unreachable before `presenceSince`.
    public var onlineMillis: Int64
    public var offlineMillis: Int64
    /// When the current presence began.
    public var presenceSince: Int64
    /// Round trip controller → broker → device → controller, smoothed, in milliseconds.
    public var rttMillis: Double?

    public init(id: String, facts: DeviceFacts, presence: Presence, lastSeen: Int64, joinedAt: Int64, bootID: String,
                lastAppliedGeneration: Generation = 0, lastReportSeq: Int64 = 0, usage: Usage? = nil, phases: [String: Int] = [:]) {
        self.id = id
        self.facts = facts
        self.presence = presence
        self.lastSeen = lastSeen
        self.joinedAt = joinedAt
        self.bootID = bootID
        self.lastAppliedGeneration = lastAppliedGeneration
        self.lastReportSeq = lastReportSeq
        self.usage = usage
        self.phases = phases
        self.schedulability = "normal"
        self.flaps = 0
        self.onlineMillis = 0
        self.offlineMillis = 0
        self.presenceSince = joinedAt
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        facts = try c.decode(DeviceFacts.self, forKey: .facts)
        presence = try c.decode(Presence.self, forKey: .presence)
        lastSeen = try c.decode(Int64.self, forKey: .lastSeen)
        joinedAt = try c.decode(Int64.self, forKey: .joinedAt)
        bootID = try c.decode(String.self, forKey: .bootID)
        lastAppliedGeneration = try c.decodeIfPresent(Generation.self, forKey: .lastAppliedGeneration) ?? 0
        lastReportSeq = try c.decodeIfPresent(Int64.self, forKey: .lastReportSeq) ?? 0
        usage = try c.decodeIfPresent(Usage.self, forKey: .usage)
        phases = try c.decodeIfPresent([String: Int].self, forKey: .phases) ?? [:]
        schedulability = try c.decodeIfPresent(String.self, forKey: .schedulability) ?? "normal"
        flaps = try c.decodeIfPresent(Int.self, forKey: .flaps) ?? 0
        onlineMillis = try c.decodeIfPresent(Int64.self, forKey: .onlineMillis) ?? 0
        offlineMillis = try c.decodeIfPresent(Int64.self, forKey: .offlineMillis) ?? 0
        presenceSince = try c.decodeIfPresent(Int64.self, forKey: .presenceSince) ?? joinedAt
        rttMillis = try c.decodeIfPresent(Double.self, forKey: .rttMillis)
        reportEpoch = try c.decodeIfPresent(String.self, forKey: .reportEpoch)
    }

    /// Changes presence, keeping the online/offline accounting and the flap count.
    public mutating func setPresence(_ new: Presence, at now: Int64) {
        guard new != presence else { return }
        let span = max(0, now - presenceSince)
        if presence == .online { onlineMillis += span } else { offlineMillis += span }
        if presence == .online, new == .unreachable { flaps += 1 }
        presence = new
        presenceSince = now
    }

    /// Fraction of the time since joining that the device was online, 0...1.
    public func uptimeRatio(at now: Int64) -> Double {
        let span = max(0, now - presenceSince)
        let online = Double(onlineMillis) + (presence == .online ? Double(span) : 0)
        let total = Double(onlineMillis) + Double(offlineMillis) + Double(span)
        guard total > 0 else { return 1 }
        return min(1, max(0, online / total))
    }
}

/// A workload and its revision, which grows with every change of its template (what its
/// replicas run: image, command, env, resources, probes, ...), not with a change of scale or
/// placement; with the last revisions, newest last.
public struct WorkloadRecord: Codable, Sendable, Hashable {
    public var spec: WorkloadSpec
    public var revision: Int
    public var createdAt: Int64
    public var updatedAt: Int64
    public var history: [RevisionRecord]
    /// The last rollout, going on or ended.
    public var rollout: RolloutState?

    public init(spec: WorkloadSpec, revision: Int, createdAt: Int64, updatedAt: Int64, history: [RevisionRecord] = []) {
        self.spec = spec
        self.revision = revision
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.history = history
    }

    enum CodingKeys: String, CodingKey { case spec, revision, createdAt, updatedAt, history, rollout }

    /// `history` came later: a record without it has none.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        spec = try c.decode(WorkloadSpec.self, forKey: .spec)
        revision = try c.decode(Int.self, forKey: .revision)
        createdAt = try c.decode(Int64.self, forKey: .createdAt)
        updatedAt = try c.decode(Int64.self, forKey: .updatedAt)
        history = try c.decodeIfPresent([RevisionRecord].self, forKey: .history) ?? []
        rollout = try c.decodeIfPresent(RolloutState.self, forKey: .rollout)
    }

    /// The revision a new rollout starts from: the last one that was live everywhere (a
    /// rollout that did not finish never made its revision that).
    public var lastGoodRevision: Int {
        guard let rollout, rollout.phase != .succeeded else { return revision }
        return rollout.from
    }

    /// How many revisions are kept.
    public static let historyKept = 10

    /// What replica `id` is to run, marked with its revision: during a rollout (and after one
    /// that failed) the revision the rollout gave it (the old one until its wave), otherwise
    /// the current one.
    public func replicaSpec(id: String) -> ReplicaSpec {
        var replica = replicaTemplate(assignment(of: id))
        replica.id = id
        return replica
    }

    /// Which revision replica `id` runs, and whether it starts beside its old instance.
    public func assignment(of id: String) -> ReplicaAssignment {
        var chosen = revision
        // A rollout going on, paused, or stopped without a rollback: each replica where it is.
        if let rollout, rollout.phase != .succeeded, rollout.phase != .aborted {
            chosen = rollout.assigned[id] ?? rollout.from
        }
        // Told to start beside its old instance while its rollout goes on.
        let surge = rollout.map { ($0.isActive || $0.phase == .paused) && chosen == $0.to && $0.surged.contains(id) } ?? false
        return ReplicaAssignment(revision: chosen, surge: surge)
    }

    /// What every replica with `assignment` runs; its id is left empty. Replicas of one
    /// assignment differ only in their id.
    public func replicaTemplate(_ assignment: ReplicaAssignment) -> ReplicaSpec {
        let template = assignment.revision == revision ? spec : history.first { $0.revision == assignment.revision }?.spec ?? spec
        var replica = template.replica(id: "")
        replica.revision = assignment.revision
        if assignment.surge { replica.surge = true }
        return replica
    }

    /// Makes `spec` the next revision; the current one is marked superseded.
    public mutating func addRevision(_ spec: WorkloadSpec, cause: String, now: Int64) {
        // Numbers only grow, also after a rollback made an older revision current again.
        revision = min(max(revision, history.map(\.revision).max() ?? 0), Int.max - 1) + 1
        for i in history.indices where history[i].outcome == nil { history[i].outcome = "superseded by \(revision)" }
        history.append(RevisionRecord(revision: revision, spec: spec, createdAt: now, cause: cause))
        if history.count > Self.historyKept { history.removeFirst(history.count - Self.historyKept) }
    }
}

/// The revision a replica runs, and whether it starts beside its old instance.
public struct ReplicaAssignment: Hashable, Sendable {
    public var revision: Int
    public var surge: Bool

    public init(revision: Int, surge: Bool) {
        self.revision = revision
        self.surge = surge
    }
}

/// One revision of a workload: its spec when it was made, why, and how it ended.
public struct RevisionRecord: Codable, Sendable, Hashable {
    public var revision: Int
    public var spec: WorkloadSpec
    public var createdAt: Int64
    /// `apply`, `undo to revision N`, ...
    public var cause: String
    /// nil while it is the current one; then `superseded by N`, or what a rollout made of it.
    public var outcome: String?

    public init(revision: Int, spec: WorkloadSpec, createdAt: Int64, cause: String, outcome: String? = nil) {
        self.revision = revision
        self.spec = spec
        self.createdAt = createdAt
        self.cause = cause
        self.outcome = outcome
    }
}

extension WorkloadSpec {
    /// What its replicas run (a change of it is a new revision): everything a replica's spec
    /// holds, and the host ports.
    /// This spec with `other`'s template (what replicas run) and its own scale and placement.
    public func withTemplate(of other: WorkloadSpec) -> WorkloadSpec {
        var spec = self
        (spec.runtime, spec.command, spec.env, spec.restartPolicy, spec.resources) = (other.runtime, other.command, other.env, other.restartPolicy, other.resources)
        (spec.user, spec.image, spec.volumes, spec.probes, spec.ports) = (other.user, other.image, other.volumes, other.probes, other.ports)
        return spec
    }

    public var templateKey: String {
        replica(id: "-").revisionKey + "\u{1F}ports:" + ports.map(String.init).joined(separator: ",")
    }
}

/// One placed replica and the last status its device reported.
public struct ReplicaRow: Codable, Sendable, Hashable {
    public var id: String
    public var workload: String
    public var ordinal: Int
    public var device: String
    public var phase: ReplicaPhase
    public var pid: Int32?
    public var exitCode: Int32?
    public var restarts: Int
    public var message: String?
    public var updatedAt: Int64
    /// Whether its readiness probe passes, as last reported; nil when it has none.
    public var ready: Bool?
    /// The workload revision it runs, as last reported.
    public var revision: Int?

    public init(id: String, workload: String, ordinal: Int, device: String, phase: ReplicaPhase = .pending, pid: Int32? = nil,
                exitCode: Int32? = nil, restarts: Int = 0, message: String? = nil, updatedAt: Int64) {
        self.id = id
        self.workload = workload
        self.ordinal = ordinal
        self.device = device
        self.phase = phase
        self.pid = pid
        self.exitCode = exitCode
        self.restarts = restarts
        self.message = message
        self.updatedAt = updatedAt
    }
}

/// The desired state last sent to one device.
public struct DesiredRecord: Codable, Sendable, Hashable {
    public var device: String
    public var generation: Generation
    public var replicas: [ReplicaSpec]
    /// What the replicas were when this generation was made (`ReplicaSpecs`' digest): a
    /// restart makes them afresh from the rows, and a new generation when they differ.
    public var digest: UInt64?

    public init(device: String, generation: Generation, replicas: [ReplicaSpec], digest: UInt64? = nil) {
        self.device = device
        self.generation = generation
        self.replicas = replicas
        self.digest = digest
    }
}

/// Something that happened in the fleet, for `drover events`.
public struct EventRecord: Codable, Sendable, Hashable {
    public var id: Int64
    public var time: Int64
    public var kind: String
    public var subject: String
    public var message: String

    public init(id: Int64 = 0, time: Int64, kind: String, subject: String, message: String) {
        self.id = id
        self.time = time
        self.kind = kind
        self.subject = subject
        self.message = message
    }
}
