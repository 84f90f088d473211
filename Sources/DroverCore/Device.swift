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
        // Likewise encodings this build does not know.
        encodings = try c.decodeIfPresent([String].self, forKey: .encodings)?.compactMap(ContentEncoding.init(rawValue:))
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
