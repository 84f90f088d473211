import DroverAPI
import DroverCore
import DroverMQTT

/// Everything an agent needs to start; the executable fills it from flags.
public struct AgentConfiguration: Sendable {
    public var deviceID: String
    public var broker: BrokerAddress
    public var dataDir: String
    public var labels: [String: String]
    /// Overrides what is read from the machine, dimension by dimension.
    public var capacityCPU: Int?
    public var capacityMemory: Int64?
    public var link: LinkClass
    /// How often the agent looks for something to tell (`--beat-interval`).
    public var beatInterval: Duration
    /// The longest it stays silent when nothing changes (`--idle-beat-interval`).
    public var idleBeatInterval: Duration = .seconds(300)
    /// MQTT keepalive: the broker fires the device's will after 1.5 times this of silence.
    public var keepAliveSeconds: Int32 = 15
    public var username: String?
    public var password: String?
    public var stopGrace: Duration
    public var maxLogBytes: Int64
    /// For an `mqtts://` broker: the CA its certificate must lead to (the controller's,
    /// kept at enrollment); nil: the system's roots.
    public var caFile: String?
    /// Whom replicas without `user` run as when the agent is root.
    public var workloadUser: String?
    /// Bytes the image store may hold before images no replica uses are removed.
    public var imageBudget: Int64 = 2 << 30
    /// The controller's API URL and this device's credentials, for its image registry.
    public var controllerURL: String?
    public var credentials: DeviceCredentials?
    /// The cgroup under which containers get theirs (`<parent>/<replica id>`); default
    /// `/drover/<device id>`.
    public var cgroupParent: String?
    /// The port on 127.0.0.1 serving `/metrics`; nil: none (the default).
    public var metricsPort: UInt16?
    /// How often the agent unmaps its own code (`CodeTrimService`); nil: never.
    public var codeTrimInterval: Duration? = .seconds(600)

    public init(
        deviceID: String, broker: BrokerAddress, dataDir: String, labels: [String: String] = [:], capacityCPU: Int? = nil,
        capacityMemory: Int64? = nil, link: LinkClass = .wired, beatInterval: Duration = .seconds(5), username: String? = nil, password: String? = nil,
        stopGrace: Duration = .seconds(5), maxLogBytes: Int64 = 1 << 20, caFile: String? = nil, workloadUser: String? = "drover"
    ) {
        self.workloadUser = workloadUser
        self.caFile = caFile
        self.deviceID = deviceID
        self.broker = broker
        self.dataDir = dataDir
        self.labels = labels
        self.capacityCPU = capacityCPU
        self.capacityMemory = capacityMemory
        self.link = link
        self.beatInterval = beatInterval
        self.username = username
        self.password = password
        self.stopGrace = stopGrace
        self.maxLogBytes = maxLogBytes
    }

    public static let agentVersion = "0.1.0"
}
