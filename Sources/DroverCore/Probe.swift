/// A health check the agent runs on a replica, on the device, whether or not it reaches a
/// broker: a command in the replica's context, an HTTP GET (200-399 passes) or a TCP connect
/// on the device's own address (replicas share the device's network).
public struct Probe: Hashable, Codable, Sendable {
    public enum Action: Hashable, Codable, Sendable {
        case exec(command: [String])
        case http(path: String, port: Int)
        case tcp(port: Int)
    }

    public var action: Action
    /// Seconds after the replica starts before the first check.
    public var initialDelaySeconds: Int
    public var periodSeconds: Int
    public var timeoutSeconds: Int
    /// Consecutive failures that fail it, and successes that pass it again.
    public var failureThreshold: Int
    public var successThreshold: Int

    public init(
        action: Action, initialDelaySeconds: Int = 0, periodSeconds: Int = 10, timeoutSeconds: Int = 1, failureThreshold: Int = 3,
        successThreshold: Int = 1
    ) {
        self.action = action
        self.initialDelaySeconds = initialDelaySeconds
        self.periodSeconds = periodSeconds
        self.timeoutSeconds = timeoutSeconds
        self.failureThreshold = failureThreshold
        self.successThreshold = successThreshold
    }

    /// Problems, by field under `path` (`spec.livenessProbe.periodSeconds`); empty when fine.
    /// Liveness and startup probes must pass once to count (`successThreshold` 1).
    public func problems(at path: String, single: Bool) -> [FieldError] {
        var out: [FieldError] = []
        func check(_ field: String, _ value: Int, _ range: ClosedRange<Int>) {
            if !range.contains(value) { out.append(FieldError(path: "\(path).\(field)", reason: "must be \(range.lowerBound)-\(range.upperBound), found \(value)")) }
        }
        check("initialDelaySeconds", initialDelaySeconds, 0...86_400)
        check("periodSeconds", periodSeconds, 1...3600)
        check("timeoutSeconds", timeoutSeconds, 1...3600)
        check("failureThreshold", failureThreshold, 1...1000)
        check("successThreshold", successThreshold, single ? 1...1 : 1...1000)
        switch action {
        case .exec(let command):
            if command.isEmpty || command.count > 64 || command.first?.isEmpty == true || command.contains(where: { $0.utf8.count > 4096 || $0.contains("\0") }) {
                out.append(FieldError(path: "\(path).exec.command", reason: "must name a program, with at most 64 arguments of at most 4096 bytes"))
            }
        case .http(let httpPath, let port):
            check("http.port", port, 1...65535)
            if !httpPath.hasPrefix("/") || httpPath.utf8.count > 1024 || httpPath.contains(where: { $0.isWhitespace || $0.asciiValue.map { $0 < 0x20 || $0 == 0x7F } ?? false }) {
                out.append(FieldError(path: "\(path).http.path", reason: "must be an absolute URL path without spaces, at most 1024 bytes"))
            }
        case .tcp(let port):
            check("tcp.port", port, 1...65535)
        }
        return out
    }
}

/// A replica's probes: `startup` gates the others until it passes once; `liveness` failing
/// restarts the replica; `readiness` says whether it is ready (shown, reported, for rollouts).
public struct Probes: Hashable, Codable, Sendable {
    public var startup: Probe?
    public var liveness: Probe?
    public var readiness: Probe?

    public init(startup: Probe? = nil, liveness: Probe? = nil, readiness: Probe? = nil) {
        self.startup = startup
        self.liveness = liveness
        self.readiness = readiness
    }

    public var isEmpty: Bool { startup == nil && liveness == nil && readiness == nil }

    /// Whether a probe talks to a port (http, tcp): on the host network a second instance's
    /// probe would reach the first one.
    public var usePorts: Bool {
        [startup, liveness, readiness].contains { probe in
            guard let probe else { return false }
            if case .exec = probe.action { return false }
            return true
        }
    }

    public func problems(at prefix: String) -> [FieldError] {
        (startup?.problems(at: prefix + "startupProbe", single: true) ?? []) + (liveness?.problems(at: prefix + "livenessProbe", single: true) ?? [])
            + (readiness?.problems(at: prefix + "readinessProbe", single: false) ?? [])
    }
}
