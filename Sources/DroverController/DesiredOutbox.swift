import DroverProtocol
import Synchronization

/// Publishes desired state: at most one publish per device in flight, always the newest
/// generation handed in, many devices side by side.
///
/// Why: two publishes of one device in flight at once may reach the broker in either order,
/// and the retained message would then be the older one. Here a device's next publish starts
/// only when its previous one was acknowledged, and it sends whatever is newest by then. A
/// publish that fails (the connection dropped) stays pending until `resume()`.
public final class DesiredOutbox: DesiredPublisher, Sendable {
    struct State {
        var pending: [String: Desired] = [:]
        var inFlight: Set<String> = []
        /// A publish failed: wait for the connection to come back.
        var paused = false
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
            for d in desired where d.generation > (s.pending[d.device]?.generation ?? .min) { s.pending[d.device] = d }
        }
        wake.yield()
    }

    /// The connection is back: publish what is pending.
    public func resume() {
        state.withLock { $0.paused = false }
        wake.yield()
    }

    /// How many devices wait for a publish (for tests and status).
    public var pendingCount: Int { state.withLock { $0.pending.count + $0.inFlight.count } }

    /// Publishes until the task is cancelled. `send` returns whether the broker acknowledged.
    public func run(send: @escaping @Sendable (Desired) async -> Bool) async {
        var wakeIterator = wakeups.makeAsyncIterator()
        await withTaskGroup(of: (Desired, Bool).self) { group in
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
                guard let (d, ok) = await group.next() else { continue }
                running -= 1
                finished(d, ok: ok)
            }
        }
    }

    private func take(_ count: Int) -> [Desired] {
        guard count > 0 else { return [] }
        return state.withLock { s in
            guard !s.paused else { return [] }
            var batch: [Desired] = []
            for (device, d) in s.pending where !s.inFlight.contains(device) {
                batch.append(d)
                if batch.count == count { break }
            }
            for d in batch {
                s.pending[d.device] = nil
                s.inFlight.insert(d.device)
            }
            return batch
        }
    }

    private func finished(_ d: Desired, ok: Bool) {
        state.withLock { s in
            s.inFlight.remove(d.device)
            guard !ok else { return }
            s.paused = true
            if d.generation > (s.pending[d.device]?.generation ?? .min) { s.pending[d.device] = d }
        }
    }
}
