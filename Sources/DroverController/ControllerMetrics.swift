import DroverCore
import DroverProtocol
import Prometheus
import Synchronization

/// The controller's Prometheus metrics, served at `/metrics` (a viewer token, as for the rest
/// of the API). Counters and histograms are recorded where things happen (messages in and
/// dropped, placement runs, publishes, store writes); the fleet's current shape (devices by
/// presence, replicas by phase, rollouts by phase) is read from the fleet at each scrape.
public final class ControllerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    /// Drop counts as last rendered: the fleet keeps them across restarts, the counters follow.
    private let renderedDrops = Mutex<[DropReason: Int]>([:])
    /// Seconds: 100 µs to 10 s, for store writes, placement runs and publishes.
    static let buckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(10),
    ]

    /// Made once: a message's count is a lock and an add, not a lookup by name.
    private let receivedBy: [String: Counter]
    private let storeWrites: (ok: DurationHistogram, error: DurationHistogram)

    public init() {
        let registry = registry
        let received = Self.name("messages_received", "total", "MQTT messages received from devices, by channel")
        receivedBy = Dictionary(uniqueKeysWithValues: Topic.Channel.allCases.map { channel in
            let label = Self.label(channel)
            return (label, registry.makeCounter(descriptor: received, labels: [("channel", label)]))
        })
        let writes = Self.name("store_write_duration", "seconds", "controller.db transactions and their duration, by outcome")
        storeWrites = (
            registry.makeDurationHistogram(descriptor: writes, labels: [("outcome", "ok")], buckets: Self.buckets),
            registry.makeDurationHistogram(descriptor: writes, labels: [("outcome", "error")], buckets: Self.buckets)
        )
    }

    /// `cmd/reply` is `cmd_reply`: label values stay plain.
    static func label(_ channel: Topic.Channel) -> String { String(channel.rawValue.map { $0 == "/" ? "_" : $0 }) }

    static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "drover", metricName: metric, unitName: unit, helpText: help)
    }

    /// A message from a device, by channel (`hello`, `beat`, `report`, `state`, `cmd_reply`).
    func received(_ channel: Topic.Channel) {
        receivedBy[Self.label(channel)]?.increment()
    }


    /// A placement run: `full` (every workload) or `incremental` (some devices or workloads).
    func placement(_ kind: String, millis: Double) {
        registry.makeDurationHistogram(
            descriptor: Self.name("placement_duration", "seconds", "Placement runs and their duration, by kind"), labels: [("kind", kind)],
            buckets: Self.buckets
        ).record(.microseconds(Int64(min(max(millis, 0), 1e9) * 1000)))
    }

    /// A desired-state publish, from its start to the broker's PUBACK (or failure).
    func published(_ duration: Duration, outcome: String) {
        registry.makeDurationHistogram(
            descriptor: Self.name("publish_duration", "seconds", "Desired-state publishes until the broker acknowledged them, by outcome"),
            labels: [("outcome", outcome)], buckets: Self.buckets
        ).record(duration)
    }

    /// One transaction of `controller.db`.
    func storeWrite(_ duration: Duration, ok: Bool) {
        (ok ? storeWrites.ok : storeWrites.error).record(duration)
    }

    /// What the fleet is made of now.
    public struct Shape: Sendable {
        public var devices: [Presence: Int] = [:]
        public var replicas: [ReplicaPhase: Int] = [:]
        public var rollouts: [RolloutState.Phase: Int] = [:]
        public var workloads = 0
        /// Messages dropped since the first start, by reason (kept in `controller.db`).
        public var drops: [DropReason: Int] = [:]
    }

    /// The text exposition format, with the gauges set from `shape` first.
    func render(_ shape: Shape) -> String {
        func gauge(_ metric: String, _ help: String, _ label: (String, String)?) -> Gauge {
            registry.makeGauge(descriptor: Self.name(metric, "", help), labels: label.map { [$0] } ?? [])
        }
        for presence in Presence.allCases {
            gauge("devices", "Devices, by presence", ("presence", presence.rawValue)).set(Double(shape.devices[presence] ?? 0))
        }
        for phase in ReplicaPhase.allCases {
            gauge("replicas", "Replicas, by phase", ("phase", phase.rawValue)).set(Double(shape.replicas[phase] ?? 0))
        }
        for phase in RolloutState.Phase.allCases {
            gauge("rollouts", "Workloads whose latest rollout is in this phase", ("phase", phase.rawValue)).set(Double(shape.rollouts[phase] ?? 0))
        }
        gauge("workloads", "Workloads", nil).set(Double(shape.workloads))
        renderedDrops.withLock { rendered in
            for reason in DropReason.allCases {
                let now = shape.drops[reason] ?? 0
                // Messages dropped, malformed, revoked or on an unknown topic; the count only grows.
                registry.makeCounter(descriptor: Self.name("messages_dropped", "total", "MQTT messages dropped, by reason"), labels: [("reason", reason.rawValue)])
                    .increment(by: Int64(max(0, now - (rendered[reason] ?? 0))))
                rendered[reason] = max(now, rendered[reason] ?? 0)
            }
        }
        return registry.emitToString()
    }
}
