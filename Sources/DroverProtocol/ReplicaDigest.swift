import DroverCore

/// A short fingerprint of a device's replica states, carried in beats so that the controller
/// notices when its view has drifted from the device's (a report lost between the broker's
/// acknowledgement and the controller's commit) and asks for a full snapshot.
///
/// Both sides compute it the same way: FNV-1a 64 over `id|phase|pid|restarts|exitCode` lines
/// sorted by id, in lowercase hexadecimal.
public enum ReplicaDigest {
    public struct Entry: Sendable, Hashable {
        public var id: String
        public var phase: ReplicaPhase
        public var pid: Int32?
        public var restarts: Int
        public var exitCode: Int32?

        public init(id: String, phase: ReplicaPhase, pid: Int32?, restarts: Int, exitCode: Int32?) {
            self.id = id
            self.phase = phase
            self.pid = pid
            self.restarts = restarts
            self.exitCode = exitCode
        }
    }

    public static func compute(_ entries: [Entry]) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for e in entries.sorted(by: { $0.id < $1.id }) {
            let line = "\(e.id)|\(e.phase.rawValue)|\(e.pid.map(String.init) ?? "-")|\(e.restarts)|\(e.exitCode.map(String.init) ?? "-")\n"
            hash = DesiredJSON.fnv(line.utf8, from: hash)
        }
        return String(hash, radix: 16)
    }
}

extension ReplicaStatus {
    public var digestEntry: ReplicaDigest.Entry {
        ReplicaDigest.Entry(id: id, phase: phase, pid: pid, restarts: restarts, exitCode: exitCode)
    }
}

/// A report body as the agent's outbox keeps it until the broker acknowledges it: a list
/// of changes, or a full snapshot.
public struct QueuedReport: Codable, Sendable {
    public var full: Bool
    public var replicas: [ReplicaStatus]

    public init(full: Bool, replicas: [ReplicaStatus]) {
        self.full = full
        self.replicas = replicas
    }

    /// Reads a queued body: a plain list of statuses (changes) or a snapshot object.
    public static func decode(_ text: String) -> QueuedReport? {
        if let list = try? WireCodec.decodeValue([ReplicaStatus].self, from: text) { return QueuedReport(full: false, replicas: list) }
        return try? WireCodec.decodeValue(QueuedReport.self, from: text)
    }
}
