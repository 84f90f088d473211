/// Whether the controller can currently hear from a device.
public enum Presence: String, Codable, Sendable, CaseIterable {
    case online
    /// The device's last will arrived, or its beats stopped for longer than the configured bound.
    case unreachable
}

/// What a device says about itself in its `hello`.
public struct DeviceFacts: Hashable, Codable, Sendable {
    public var agentVersion: String
    public var arch: String
    public var os: String
    public var capacity: Resources
    public var labels: [String: String]
    public var runtimes: [RuntimeKind]
    /// How the device reaches the broker, as it knows it; wired when it does not say.
    public var link: LinkClass?
    /// How the device reads its desired state besides plain JSON; none when it does not say.
    public var encodings: [ContentEncoding]?
    /// How many names the device gave for `encodings`, known or not (checked against a limit).
    public private(set) var encodingsGiven = 0

    public init(
        agentVersion: String, arch: String, os: String, capacity: Resources, labels: [String: String], runtimes: [RuntimeKind], link: LinkClass? = nil,
        encodings: [ContentEncoding]? = nil
    ) {
        self.agentVersion = agentVersion
        self.arch = arch
        self.os = os
        self.capacity = capacity
        self.labels = labels
        self.runtimes = runtimes
        self.link = link
        self.encodings = encodings
        encodingsGiven = encodings?.count ?? 0
    }

    enum CodingKeys: String, CodingKey { case agentVersion, arch, os, capacity, labels, runtimes, link, encodings }

    public static func == (a: DeviceFacts, b: DeviceFacts) -> Bool {
        a.agentVersion == b.agentVersion && a.arch == b.arch && a.os == b.os && a.capacity == b.capacity && a.labels == b.labels
            && a.runtimes == b.runtimes && a.link == b.link && a.encodings == b.encodings
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(agentVersion)
        hasher.combine(arch)
        hasher.combine(labels)
        hasher.combine(encodings)
    }

    /// Whether the device reads desired state deflated.
    public var readsDeflate: Bool { encodings?.contains(.deflate) ?? false }

    /// Runtimes this build does not know (a newer agent's `podman`) are left out rather than
    /// refusing the whole device: it can still run what this controller can place.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        agentVersion = try c.decode(String.self, forKey: .agentVersion)
        arch = try c.decode(String.self, forKey: .arch)
        os = try c.decode(String.self, forKey: .os)
        capacity = try c.decode(Resources.self, forKey: .capacity)
        labels = try c.decode([String: String].self, forKey: .labels)
        runtimes = try c.decode([String].self, forKey: .runtimes).compactMap(RuntimeKind.init(rawValue:))
        link = try c.decodeIfPresent(LinkClass.self, forKey: .link)
        // Likewise encodings this build does not know; each known one once.
        let names = try c.decodeIfPresent([String].self, forKey: .encodings)
        encodingsGiven = names?.count ?? 0
        encodings = names.map { names in
            var known: [ContentEncoding] = []
            for name in names { if let e = ContentEncoding(rawValue: name), !known.contains(e) { known.append(e) } }
            return known
        }
    }
}

/// A way desired state may travel other than plain JSON.
public enum ContentEncoding: String, Codable, Sendable, Hashable {
    /// zlib (RFC 1950): deflate with its header and Adler-32 check.
    case deflate
}

/// The lifecycle phase of one replica as its agent sees it.
public enum ReplicaPhase: String, Codable, Sendable, CaseIterable {
    /// Placed by the controller, not yet confirmed by the device.
    case pending
    case running
    /// The process exited and the agent waits out a restart backoff.
    case restarting
    /// The process exited and the restart policy says to leave it.
    case exited
    /// The process could not be started at all (missing program, bad spec).
    case failed
    /// Stopped on purpose because the desired state no longer holds it.
    case stopped
}

/// A monotonically increasing version of one device's desired state.
///
/// It never decreases: a stale retained message must not resurrect a replica.
public typealias Generation = Int64
