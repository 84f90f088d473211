import DroverCore
import DroverProtocol
import DroverStore

/// The controller's view of replicas converges on the devices' truth after any loss: every
/// (re)connect brings a full snapshot, and a beat whose replica digest differs from the
/// controller's, once every report it names has arrived, brings a request for one.
extension FleetState {
    /// At most one snapshot request per device in this many milliseconds.
    static let snapshotInterval: Int64 = 30_000

    /// The controller's digest of the replicas placed on `device`, as the device would compute it.
    func digest(of device: String) -> String {
        ReplicaDigest.compute((replicasOn[device] ?? []).compactMap { replicas[$0] }.map {
            ReplicaDigest.Entry(id: $0.id, phase: $0.phase, pid: $0.pid, restarts: $0.restarts, exitCode: $0.exitCode)
        })
    }

    /// Whether the beat shows a drift that reports will not fix: the device applied the
    /// newest generation, every report it queued has been applied here, and still the digests
    /// differ.
    mutating func wantsSnapshot(_ device: String, _ summary: DeviceLink.Summary?, now: Int64) -> Bool {
        guard let (generation, seq, digest) = summary, let d = devices[device] else { return false }
        guard generation == (desired[device]?.generation ?? 0), seq <= d.lastReportSeq else { return false }
        guard digest != self.digest(of: device) else { return false }
        if let asked = snapshotAsked[device], now - asked < Self.snapshotInterval { return false }
        snapshotAsked[device] = now
        return true
    }

    /// A full snapshot lists every replica the device holds: one placed there that it does
    /// not list has not been started there yet.
    mutating func resetUnlisted(_ m: Report, into batch: inout StoreBatch) {
        let listed = Set(m.replicas.map(\.id))
        for id in (replicasOn[m.device] ?? []).sorted() where !listed.contains(id) {
            guard var row = replicas[id], row.phase != .pending || row.pid != nil else { continue }
            row.phase = .pending
            row.pid = nil
            row.exitCode = nil
            row.message = "not on the device yet"
            row.updatedAt = clock
            replicas[id] = row
            batch.replicas.append(row)
        }
    }
}
