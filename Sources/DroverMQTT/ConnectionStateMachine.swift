/// The connection lifecycle as a plain value: events in, actions out. The client's network
/// thread runs it; tests drive it with no broker.
public struct ConnectionStateMachine: Sendable {
    public enum State: Sendable, Equatable {
        case idle
        case connecting(attempt: Int)
        case connected
        case waiting(attempt: Int)
        case stopped
    }

    public enum Action: Sendable, Equatable {
        /// Open the TCP connection and send CONNECT.
        case connect
        /// CONNACK accepted: (re)subscribe and announce.
        case subscribe
        /// Wait this long, then report `backoffElapsed()`.
        case backoff(Duration)
        /// Leave the loop for good.
        case stop
        /// Nothing to do.
        case none
    }

    public private(set) var state: State = .idle
    public let policy: BackoffPolicy

    public init(policy: BackoffPolicy) {
        self.policy = policy
    }

    public mutating func start() -> Action {
        guard state == .idle else { return .none }
        state = .connecting(attempt: 1)
        return .connect
    }

    public mutating func connected() -> Action {
        guard case .connecting = state else { return .none }
        state = .connected
        return .subscribe
    }

    /// The TCP connect failed, the broker refused the session, or an open connection dropped.
    public mutating func connectionLost(random: Double) -> Action {
        switch state {
        case .connecting(let attempt):
            state = .waiting(attempt: attempt)
            return .backoff(policy.delay(attempt: attempt, random: random))
        case .connected:
            // A connection that was up starts the backoff sequence afresh.
            state = .waiting(attempt: 1)
            return .backoff(policy.delay(attempt: 1, random: random))
        case .stopped:
            return .stop
        case .idle, .waiting:
            return .none
        }
    }

    public mutating func backoffElapsed() -> Action {
        guard case .waiting(let attempt) = state else { return state == .stopped ? .stop : .none }
        state = .connecting(attempt: attempt + 1)
        return .connect
    }

    public mutating func shutdown() -> Action {
        state = .stopped
        return .stop
    }
}
