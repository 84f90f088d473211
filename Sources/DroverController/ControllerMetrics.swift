import DroverCore
import DroverProtocol
import Prometheus

/// The controller's Prometheus metrics, served at `/metrics` (a viewer token, as for the rest
/// of the API). Counters and histograms are recorded where things happen (messages in and
/// dropped, placement runs, publishes, store writes); the fleet's current shape (devices by
/// presence, replicas by phase, rollouts by phase) is read from the fleet at each scrape.
public final class ControllerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    /// Seconds: 100 µs to 10 s, for store writes, placement runs and publishes.
    static let buckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(10),
    ]

    /// Every series with a fixed label set is made once: counting is a lock and an add, not a
    /// lookup by name on the registry (which scrapes hold too).
    private let receivedBy: [Topic.Channel: Counter]
    private let droppedBy: [DropReason: Counter]
    private let storeWrites: (ok: DurationHistogram, error: DurationHistogram)
    private let placements: (full: DurationHistogram, incremental: DurationHistogram)
    private let publishes: [PublishOutcome: DurationHistogram]

    public enum PublishOutcome: String, CaseIterable, Sendable {
        case acknowledged, notConnected = "not_connected", refused
    }

    public init() {
        let registry = registry
        let received = Self.name("messages_received", "total", "MQTT messages received from devices, by channel")
        receivedBy = Dictionary(uniqueKeysWithValues: Topic.Channel.allCases.map { channel in
            // `cmd/reply` is `cmd_reply`: label values stay plain.
            (channel, registry.makeCounter(descriptor: received, labels: [("channel", String(channel.rawValue.map { $0 == "/" ? "_" : $0 }))]))
        })
        let dropped = Self.name("messages_dropped", "total", "MQTT messages dropped since the controller started, by reason")
        droppedBy = Dictionary(uniqueKeysWithValues: DropReason.allCases.map { ($0, registry.makeCounter(descriptor: dropped, labels: [("reason", $0.rawValue)])) })
        func histogram(_ descriptor: MetricNameDescriptor, _ label: (String, String)) -> DurationHistogram {
            registry.makeDurationHistogram(descriptor: descriptor, labels: [label], buckets: Self.buckets)
        }
        let writes = Self.name("store_write_duration", "seconds", "controller.db transactions and their duration, by outcome")
        storeWrites = (histogram(writes, ("outcome", "ok")), histogram(writes, ("outcome", "error")))
        let plans = Self.name("placement_duration", "seconds", "Placement runs and their duration, by kind")
        placements = (histogram(plans, ("kind", "full")), histogram(plans, ("kind", "incremental")))
        let published = Self.name("publish_duration", "seconds", "Desired-state publishes until the broker acknowledged them, by outcome")
        publishes = Dictionary(uniqueKeysWithValues: PublishOutcome.allCases.map { ($0, histogram(published, ("outcome", $0.rawValue))) })
    }

    static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "drover", metricName: metric, unitName: unit, helpText: help)
    }

    /// A message from a device, by channel (`hello`, `beat`, `report`, `state`, `cmd_reply`).
    func received(_ channel: Topic.Channel) {
        receivedBy[channel]?.increment()
    }

    /// A message dropped as malformed, oversized, revoked or on an unknown topic. (The totals
    /// since the first start, kept in `controller.db`, are in `/v1/status`; this counter
    /// starts at 0 with the process, as Prometheus expects of a counter.)
    func dropped(_ reason: DropReason) {
        droppedBy[reason]?.increment()
    }

    /// A placement run: `full` (every workload) or `incremental` (some devices or workloads).
    func placement(full: Bool, millis: Double) {
        (full ? placements.full : placements.incremental).record(.microseconds(Int64(min(max(millis, 0), 1e9) * 1000)))
    }

    /// A desired-state publish, from its start to the broker's PUBACK (or failure).
    func published(_ duration: Duration, _ outcome: PublishOutcome) {
        publishes[outcome]?.record(duration)
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
        return registry.emitToString()
    }
}
