/// A label selector: every `matchLabels` pair and every expression must hold.
public struct LabelSelector: Hashable, Codable, Sendable {
    public var matchLabels: [String: String]
    public var matchExpressions: [LabelRequirement]

    public init(matchLabels: [String: String] = [:], matchExpressions: [LabelRequirement] = []) {
        self.matchLabels = matchLabels
        self.matchExpressions = matchExpressions
    }

    public var isEmpty: Bool { matchLabels.isEmpty && matchExpressions.isEmpty }

    /// The first term that `labels` fail, as text for explanations, or nil when all hold.
    public func firstMismatch(_ labels: [String: String]) -> String? {
        for key in matchLabels.keys.sorted() where labels[key] != matchLabels[key] {
            return "\(key)=\(matchLabels[key] ?? "")"
        }
        for requirement in matchExpressions where !requirement.matches(labels) {
            return requirement.description
        }
        return nil
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        matchLabels = try c.decodeIfPresent([String: String].self, forKey: .matchLabels) ?? [:]
        matchExpressions = try c.decodeIfPresent([LabelRequirement].self, forKey: .matchExpressions) ?? []
    }
}

/// One `matchExpressions` term.
public struct LabelRequirement: Hashable, Codable, Sendable, CustomStringConvertible {
    public enum Operator: String, Codable, Sendable, CaseIterable {
        case `in` = "In", notIn = "NotIn", exists = "Exists", doesNotExist = "DoesNotExist"
    }

    public var key: String
    public var `operator`: Operator
    public var values: [String]

    public init(key: String, operator op: Operator, values: [String] = []) {
        self.key = key
        self.operator = op
        self.values = values
    }

    public func matches(_ labels: [String: String]) -> Bool {
        switch self.operator {
        case .in: labels[key].map { values.contains($0) } ?? false
        case .notIn: labels[key].map { !values.contains($0) } ?? true
        case .exists: labels[key] != nil
        case .doesNotExist: labels[key] == nil
        }
    }

    public var description: String {
        switch self.operator {
        case .in: "\(key) in (\(values.joined(separator: ",")))"
        case .notIn: "\(key) notin (\(values.joined(separator: ",")))"
        case .exists: "\(key) exists"
        case .doesNotExist: "!\(key)"
        }
    }
}

/// How a device reaches the broker, from worst to best.
public enum LinkClass: String, Codable, Sendable, CaseIterable, Comparable {
    case satellite, cellular, wifi, wired

    var rank: Int { Self.allCases.firstIndex(of: self) ?? 0 }
    public static func < (a: LinkClass, b: LinkClass) -> Bool { a.rank < b.rank }
}

/// What a workload needs of a device's connection.
public struct ConnectivityNeeds: Hashable, Codable, Sendable {
    public var minLinkClass: LinkClass?
    /// Fraction of the measurement window the device was online, 0...1.
    public var minUptime: Double?
    /// How long a device may be unreachable before its replicas are placed elsewhere.
    public var tolerateOfflineSeconds: Int

    public init(minLinkClass: LinkClass? = nil, minUptime: Double? = nil, tolerateOfflineSeconds: Int = 300) {
        self.minLinkClass = minLinkClass
        self.minUptime = minUptime
        self.tolerateOfflineSeconds = tolerateOfflineSeconds
    }
}

/// Spread replicas evenly over the values of a device label (site, zone).
public struct SpreadConstraint: Hashable, Codable, Sendable {
    public var labelKey: String
    public var maxSkew: Int

    public init(labelKey: String, maxSkew: Int = 1) {
        self.labelKey = labelKey
        self.maxSkew = maxSkew
    }
}

/// Placement relative to another workload's replicas: on the same device (no `labelKey`) or
/// on a device sharing the same value of `labelKey`.
public struct AffinityTerm: Hashable, Codable, Sendable {
    public var workload: String
    public var labelKey: String?

    public init(workload: String, labelKey: String? = nil) {
        self.workload = workload
        self.labelKey = labelKey
    }
}

/// Among feasible devices: the least allocated first, or the fullest that still fits.
public enum PlacementStrategy: String, Codable, Sendable, CaseIterable {
    case spreadLoad, binPack
}

/// `replicas: N`, or one replica on every matching device.
public enum WorkloadMode: String, Codable, Sendable, CaseIterable {
    case replicas, every
}

/// Replica count driven by the CPU the replicas use, relative to what they request.
public struct AutoscaleSpec: Hashable, Codable, Sendable {
    public var minReplicas: Int
    public var maxReplicas: Int
    /// Mean CPU use of running replicas as a percentage of their CPU request.
    public var targetCPUPercent: Int
    /// A lower replica count must have been recommended for this long before scaling down,
    /// so that a short lull does not flap the workload.
    public var stabilizationSeconds: Int

    public init(minReplicas: Int = 1, maxReplicas: Int, targetCPUPercent: Int = 80, stabilizationSeconds: Int = 60) {
        self.minReplicas = minReplicas
        self.maxReplicas = maxReplicas
        self.targetCPUPercent = targetCPUPercent
        self.stabilizationSeconds = stabilizationSeconds
    }
}
