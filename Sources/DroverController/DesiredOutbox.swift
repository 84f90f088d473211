import DroverCore
import DroverProtocol
import Synchronization

/// Publishes desired state: at most one publish per device in flight, always the newest
/// generation handed in, many devices side by side.
///
/// Why: two publishes of one device in flight at once may reach the broker in either order,
/// and the retained message would then be the older one. Here a device's next publish starts
/// only when its previous one was acknowledged, and it sends whatever is newest by then; an
/// older generation handed in late is never sent after a newer one. A publish that fails
/// because the connection dropped stays pending until `resume()`; one the broker refuses is
/// dropped (and logged by the sender), without holding up other devices.
public final class DesiredOutbox: DesiredPublisher, Sendable {
    struct State {
        var pending: [String: Desired] = [:]
        /// Devices with a publish in flight, and its generation.
        var inFlight: [String: Generation] = [:]
        /// The newest generation acknowledged per device: nothing older is published after it,
        /// so the retained message never goes back (the same one again is fine: a broker may
        /// have lost it).
        var sent: [String: Generation] = [:]
        /// The connection is down: wait for it to come back.
        var paused = false
        /// Counts `resume()` calls: a publish that failed for want of a connection pauses the
        /// outbox only if the connection did not come back while it was in flight (else that
        /// resume would be lost, and everything pending would wait for the next reconnect).
        var resumes = 0
        var dispatchedAt: [String: Int] = [:]

        /// Not older than what is pending, in flight or acknowledged for its device. The same
        /// generation queued again replaces the pending one: it may go in another encoding (a
        /// device that no longer reads deflate).
        func isCurrent(_ d: Desired) -> Bool {
            d.generation >= (pending[d.device]?.generation ?? .min) && d.generation >= max(inFlight[d.device] ?? .min, sent[d.device] ?? .min)
        }
    }

    /// What became of one publish.
    public enum Outcome: Sendable {
        case acknowledged
        /// The connection is down: publish it again once it is back.
        case notConnected
        /// The broker refused it (too large for its limits, not allowed): publishing it again
        /// would fail the same way; the next generation for the device is tried as usual.
        case refused
    }

    private let state = Mutex(State())
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation
    /// Devices published side by side.
    let parallel: Int

    public init(parallel: Int = 64) {
        self.parallel = max(1, parallel)
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    public func enqueue(_ desired: [Desired]) {
        guard !desired.isEmpty else { return }
        state.withLock { s in
            for d in desired where s.isCurrent(d) { s.pending[d.device] = d }
        }
        wake.yield()
    }

    /// The connection is back: publish what is pending.
    public func resume() {
        state.withLock { s in
            s.paused = false
            s.resumes &+= 1
        }
        wake.yield()
    }

    /// How many devices wait for a publish (for tests and status).
    public var pendingCount: Int { state.withLock { $0.pending.count + $0.inFlight.count } }
    /// What waits to be published, by device.
    public var pendingMessages: [Desired] { state.withLock { $0.pending.values.sorted { $0.device < $1.device } } }

    /// Publishes until the task is cancelled.
    public func run(send: @escaping @Sendable (Desired) async -> Outcome) async {
        var wakeIterator = wakeups.makeAsyncIterator()
        await withTaskGroup(of: (Desired, Outcome).self) { group in
            var running = 0
            while true {
                for d in take(parallel - running) {
                    group.addTask { (d, await send(d)) }
                    running += 1
                }
                if running == 0 {
                    // Nothing to do until new state arrives or the connection returns.
                    guard await wakeIterator.next() != nil, !Task.isCancelled else { return }
                    continue
                }
                guard let (d, outcome) = await group.next() else { continue }
                running -= 1
                finished(d, outcome)
            }
        }
    }

    private func take(_ count: Int) -> [Desired] {
        guard count > 0 else { return [] }
        return state.withLock { s in
            guard !s.paused else { return [] }
            var batch: [Desired] = []
            for (device, d) in s.pending where s.inFlight[device] == nil {
                batch.append(d)
                if batch.count == count { break }
            }
            for d in batch {
                s.pending[d.device] = nil
                s.inFlight[d.device] = d.generation
                s.dispatchedAt[d.device] = s.resumes
            }
            return batch
        }
    }

    private func finished(_ d: Desired, _ outcome: Outcome) {
        state.withLock { s in
            s.inFlight[d.device] = nil
            let dispatched = s.dispatchedAt.removeValue(forKey: d.device)
            switch outcome {
            case .acknowledged:
                s.sent[d.device] = max(s.sent[d.device] ?? .min, d.generation)
            case .notConnected:
                if dispatched == s.resumes { s.paused = true }
                if s.isCurrent(d) { s.pending[d.device] = d }
            case .refused:
                break
            }
        }
    }
}
