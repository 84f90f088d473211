import DroverPOSIX

/// Everything a controller needs to start; the executable fills it from flags.
public struct ControllerConfiguration: Sendable {
    public var dataDir: String
    public var listenHost: String
    public var listenPort: Int
    /// nil: start and supervise a local mosquitto (the embedded default).
    public var brokerURL: String?
    public var unreachableAfter: Duration
    public var presenceCheckInterval: Duration
    /// How often the online devices whose beats carry no round-trip time are pinged.
    public var pingInterval: Duration
    /// A TLS listener of the managed broker beyond loopback, for devices on other machines.
    public var mqttListen: HostPort?
    /// Names and addresses devices reach this controller by: they go into the certificates of
    /// the broker's and the API's TLS listeners, and the first into the broker URL devices get.
    public var advertise: [String]
    public var apiTLS: APITLS

    public struct HostPort: Sendable, Equatable {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// `HOST:PORT`, `[v6]:PORT`.
        public init?(parsing text: String) {
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else { return nil }
            var host = String(text[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            guard !host.isEmpty else { return nil }
            self.init(host: host, port: port)
        }

        /// 0.0.0.0 or ::: every address, which no certificate can name.
        public var isWildcard: Bool { host == "0.0.0.0" || host == "::" }

        /// 127.0.0.0/8, ::1 and localhost: the only addresses plain HTTP may listen on.
        public var isLoopback: Bool { isLoopbackHost(host) }
    }

    /// How the REST API is served.
    public enum APITLS: Sendable, Equatable {
        /// Plain HTTP: on loopback only.
        case none
        /// A certificate the controller's CA issues for the listen address and `advertise`.
        case controllerCA
        /// The operator's certificate chain and key (PEM files).
        case files(certificate: String, key: String)
    }

    public init(
        dataDir: String, listenHost: String = "127.0.0.1", listenPort: Int = 7070, brokerURL: String? = nil,
        unreachableAfter: Duration = .seconds(30), presenceCheckInterval: Duration = .seconds(1), pingInterval: Duration = .seconds(300),
        mqttListen: HostPort? = nil, advertise: [String] = [], apiTLS: APITLS = .none
    ) {
        self.dataDir = dataDir
        self.listenHost = listenHost
        self.listenPort = listenPort
        self.brokerURL = brokerURL
        self.unreachableAfter = unreachableAfter
        self.presenceCheckInterval = presenceCheckInterval
        self.pingInterval = pingInterval
        self.mqttListen = mqttListen
        self.advertise = advertise
        self.apiTLS = apiTLS
    }

    /// The hosts the TLS certificates name: what devices are told to use, the listen address
    /// when it is one, and loopback for the controller's own machine.
    func certificateHosts(listening: HostPort) -> [String] {
        var hosts = advertise
        if !listening.isWildcard { hosts.append(listening.host) }
        for local in ["localhost", "127.0.0.1"] where !hosts.contains(local) { hosts.append(local) }
        var seen = Set<String>()
        return hosts.filter { seen.insert($0).inserted }
    }

    /// The broker URL devices get at enrollment: over TLS at the first advertised name when
    /// the broker listens beyond loopback, else the loopback listener.
    func deviceBrokerURL(loopbackPort: Int) -> String {
        guard let mqttListen else { return "mqtt://127.0.0.1:\(loopbackPort)" }
        let host = advertise.first ?? mqttListen.host
        return "mqtts://\(host.contains(":") ? "[\(host)]" : host):\(mqttListen.port)"
    }

    public static let version = "0.1.0"
}
