import DroverCore
import DroverProtocol

/// Getting what replicas need before they start: a container's image is pulled and unpacked
/// in the background (never in a supervision pass), and a replica being replaced keeps running
/// until its replacement's image is here, so a slow or broken registry never leaves a device
/// without its workload.
extension ReplicaSupervisor {
    struct PrepareRetry {
        var at: ContinuousClock.Instant
        var failures: Int
        var message: String
    }

    func ready(_ spec: ReplicaSpec) -> Bool { drivers[spec.runtime]?.isReady(spec) ?? true }

    /// What is being got: the image's digest (two references to one digest are one pull).
    static func prepareKey(_ spec: ReplicaSpec) -> String {
        spec.image.flatMap(ImageReference.init(parsing:))?.digest ?? spec.image ?? spec.revisionKey
    }

    /// Pulls at once, at most: each holds a thread, a download and an unpack.
    static let maxPreparing = 2

    /// Starts getting what desired replicas lack, one background task per image, unless one
    /// runs already or the last failure's backoff has not passed.
    func prepareMissing() {
        let now = ContinuousClock.now
        for spec in desired.values.sorted(by: { $0.id < $1.id }) where !ready(spec) {
            let key = Self.prepareKey(spec)
            guard preparing.count < Self.maxPreparing else { return }
            guard !preparing.contains(key), (prepareRetries[key]?.at ?? now) <= now, let driver = drivers[spec.runtime] else { continue }
            preparing.insert(key)
            logger.info("pulling image", metadata: ["image": "\(key)"])
            Task {
                var failure: RuntimeError?
                do throws(RuntimeError) {
                    try await driver.prepare(spec)
                } catch {
                    failure = error
                }
                await self.prepared(key, failure: failure)
            }
        }
    }

    func prepared(_ key: String, failure: RuntimeError?) async {
        preparing.remove(key)
        guard let failure else {
            prepareRetries[key] = nil
            logger.info("image ready", metadata: ["image": "\(key)"])
            await reconcile()
            return
        }
        let failures = min(prepareRetries[key]?.failures ?? 0, 1000) + 1
        let delay = Self.restartDelay(failures: failures)
        let message = "\(failure.message); retry in \(delay)"
        prepareRetries[key] = PrepareRetry(at: .now + delay, failures: failures, message: message)
        logger.warning("cannot get image", metadata: ["image": "\(key)", "error": "\(failure.message)", "retry": "\(delay)"])
        // Replicas waiting for it say why.
        var changed: [ReplicaStatus] = []
        for (id, var record) in records.sorted(by: { $0.key < $1.key }) where Self.prepareKey(record.spec) == key && record.phase == .pending && stopping[id] == nil {
            record.message = message
            records[id] = record
            save(record)
            changed.append(status(of: record, phase: record.phase))
        }
        queue(changed)
    }

    /// Whether the running replica `id` stays until its replacement can start.
    func waitsForReplacement(_ id: String) -> Bool {
        guard let next = desired[id], live[id]?.process != nil else { return false }
        return !ready(next)
    }
}
