/// An image in the controller's registry, as `GET /v1/images` lists it.
public struct ImageView: Codable, Sendable, Equatable {
    public var name: String
    public var tag: String
    public var digest: String
    /// Bytes of its config and layers.
    public var size: Int64
    /// Workloads whose pinned image is this digest.
    public var usedBy: [String]

    public init(name: String, tag: String, digest: String, size: Int64, usedBy: [String]) {
        self.name = name
        self.tag = tag
        self.digest = digest
        self.size = size
        self.usedBy = usedBy
    }
}

/// One replica's log tail, as `GET /v1/workloads/{name}/logs` answers: its output, or why
/// there is none (the device is away, did not answer, does not know the replica).
public struct LogView: Codable, Sendable, Equatable {
    public var replica: String
    public var device: String
    public var output: String?
    public var error: String?
    /// The log's byte offset just past `output`: `since=` for what comes next (`--follow`).
    public var offset: Int64?

    public init(replica: String, device: String, output: String? = nil, error: String? = nil, offset: Int64? = nil) {
        self.replica = replica
        self.device = device
        self.output = output
        self.error = error
        self.offset = offset
    }
}
