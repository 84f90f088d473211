#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Quality of service levels Drover uses.
public enum QoS: Int32, Sendable {
    case atMostOnce = 0
    case atLeastOnce = 1
}

/// A message the broker publishes when the client disappears without a clean disconnect.
public struct LastWill: Sendable {
    public var topic: String
    public var payload: [UInt8]
    public var qos: QoS
    public var retain: Bool

    public init(topic: String, payload: [UInt8], qos: QoS = .atLeastOnce, retain: Bool = true) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
    }
}

/// Where a broker is: parsed from `mqtt://HOST:PORT`, or `mqtts://HOST:PORT` for TLS.
public struct BrokerAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var tls: Bool

    public init(host: String, port: Int, tls: Bool = false) {
        self.host = host
        self.port = port
        self.tls = tls
    }

    public init(url: String) throws(MQTTError) {
        let tls = url.hasPrefix("mqtts://")
        guard tls || url.hasPrefix("mqtt://") else { throw MQTTError.invalidURL(url, "must start with mqtt:// or mqtts://") }
        let rest = url.dropFirst(tls ? 8 : 7).split(separator: "/", maxSplits: 1).first.map(String.init) ?? ""
        guard let colon = rest.lastIndex(of: ":") else {
            guard !rest.isEmpty else { throw MQTTError.invalidURL(url, "has no host") }
            self.init(host: rest, port: tls ? 8883 : 1883, tls: tls)
            return
        }
        let host = String(rest[..<colon])
        guard !host.isEmpty else { throw MQTTError.invalidURL(url, "has no host") }
        guard let port = Int(rest[rest.index(after: colon)...]), (1...65535).contains(port) else {
            throw MQTTError.invalidURL(url, "port must be 1-65535")
        }
        self.init(host: host, port: port, tls: tls)
    }

    public var description: String { "\(tls ? "mqtts" : "mqtt")://\(host):\(port)" }
}

/// Exponential backoff with jitter between reconnect attempts: a thousand devices that lost
/// the same broker must not all come back in the same second.
public struct BackoffPolicy: Sendable, Hashable {
    public var initial: Duration
    public var maximum: Duration
    public var multiplier: Double
    /// Fraction of the delay that is random: 0.5 means a delay in [d/2, d].
    public var jitter: Double
    /// Attempts made at the initial delay before it starts to grow: a broker that restarts
    /// in a second is found again within one initial delay of its return.
    public var steadyAttempts: Int

    public init(initial: Duration = .milliseconds(500), maximum: Duration = .seconds(30), multiplier: Double = 2, jitter: Double = 0.5, steadyAttempts: Int = 1) {
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.jitter = min(max(jitter, 0), 1)
        self.steadyAttempts = max(1, steadyAttempts)
    }

    /// The delay before attempt `attempt` (1-based), with `random` in [0, 1).
    public func delay(attempt: Int, random: Double) -> Duration {
        let base = initial.seconds * pow(multiplier, Double(max(attempt - steadyAttempts, 0)))
        let capped = min(base, maximum.seconds)
        let jittered = capped * (1 - jitter * random)
        return .milliseconds(Int64((jittered * 1000).rounded()))
    }
}

/// Everything needed to open one MQTT 5 session.
public struct MQTTConfiguration: Sendable {
    public var broker: BrokerAddress
    public var clientID: String
    public var username: String?
    public var password: String?
    public var keepAliveSeconds: Int32
    /// Seconds the broker keeps the session (subscriptions, queued QoS 1 messages) after a
    /// disconnect. In MQTT 5, clean start off alone keeps nothing without this.
    public var sessionExpirySeconds: UInt32
    public var cleanStart: Bool
    public var will: LastWill?
    public var backoff: BackoffPolicy
    /// Received messages that may wait unread before the network thread stops reading the
    /// socket (for at most a second per message, so that it never deadlocks).
    public var maxBufferedMessages = 10_000
    /// For `mqtts://`: the CA (PEM file) the broker's certificate must lead to; nil: the
    /// system's roots. The certificate must also name the host in the URL.
    public var caFile: String?
    /// When the broker resumes the session (CONNACK's session present), subscribe only to what
    /// it has not acknowledged in that session within this long: the session holds the
    /// subscriptions, and subscribing again makes the broker send every retained message under
    /// them again (on a device, its whole desired state at every reconnect). The bound covers
    /// a broker that saved a session between its CONNECT and its SUBSCRIBE and then crashed:
    /// it resumes the session without them. Nil: subscribe to everything at every connect (the
    /// controller, whose reconnects are local and rare).
    public var keepsSubscriptionsOnResume: Duration?

    public init(
        broker: BrokerAddress, clientID: String, username: String? = nil, password: String? = nil,
        keepAliveSeconds: Int32 = 30, sessionExpirySeconds: UInt32 = 0, cleanStart: Bool = true,
        will: LastWill? = nil, backoff: BackoffPolicy = BackoffPolicy()
    ) {
        self.broker = broker
        self.clientID = clientID
        self.username = username
        self.password = password
        self.keepAliveSeconds = keepAliveSeconds
        self.sessionExpirySeconds = sessionExpirySeconds
        self.cleanStart = cleanStart
        self.will = will
        self.backoff = backoff
    }
}

extension Duration {
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}
