import DroverAPI
import DroverMQTT
import DroverProtocol
import DroverStore
import DroverSystemd
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// The control plane as a `ServiceGroup` of real services, started in this order and stopped
/// in reverse on SIGTERM/SIGINT: the managed broker (when there is no `--broker`), the MQTT
/// link with its ingest, the presence and autoscaling loop, the systemd watchdog and the
/// REST API. Any of them failing stops the whole controller with its error (non-zero exit),
/// so that systemd restarts it instead of it running on without, say, its broker.
public enum Controller {
    public static func serviceGroup(configuration config: ControllerConfiguration, logger: Logger) async throws -> ServiceGroup {
        // Everything the controller and its broker write holds secrets or fleet state:
        // owner-only (files 0600, directories 0700), including files of an earlier version.
        umask(0o077)
        try FileManager.default.createDirectory(atPath: config.dataDir, withIntermediateDirectories: true)
        chmod(config.dataDir, 0o700)
        for file in ["controller.db", "controller.db-wal", "controller.db-shm", "mosquitto.conf", "mosquitto.log", "mosquitto/mosquitto.db"] {
            chmod(config.dataDir + "/" + file, 0o600)
        }
        let store = try SQLiteFleetStore(path: config.dataDir + "/controller.db")
        let fleet = try Fleet(store: store, logger: logger, unreachableAfter: config.unreachableAfter)
        let access = try AccessControl(store: store, logger: logger)
        try await announceAdminToken(access: access, dataDir: config.dataDir)

        let ca = try CertificateAuthority(dataDir: config.dataDir)
        let broker = config.brokerURL == nil ? try BrokerSupervisor(dataDir: config.dataDir, tlsListener: config.mqttListen, logger: logger) : nil
        if let listen = config.mqttListen {
            try ca.writeServerCertificate(hosts: config.certificateHosts(listening: listen), to: config.dataDir + "/tls/broker")
        }
        // The controller itself uses the loopback listener; devices get the advertised one.
        let brokerURL = config.brokerURL ?? broker?.url ?? ""
        let deviceBrokerURL = config.brokerURL ?? broker.map { config.deviceBrokerURL(loopbackPort: $0.port) } ?? ""
        // The broker's password and ACL files are written before it starts, and again on
        // every enrollment and revocation; an external mosquitto may use the same files.
        let credentials = BrokerCredentials(dataDir: config.dataDir)
        try await access.setEnrollment(AccessControl.Enrollment(ca: ca, brokerURL: deviceBrokerURL) { devices in
            try credentials.write(devices: devices)
            broker?.reload()
        })
        let client = try MQTTClient(
            MQTTConfiguration(
                broker: try BrokerAddress(url: brokerURL), clientID: "drover-controller-" + (try controllerID(dataDir: config.dataDir)),
                username: BrokerCredentials.controllerUser, password: try credentials.controllerPassword(),
                keepAliveSeconds: 15, sessionExpirySeconds: 24 * 3600, cleanStart: false,
                will: LastWill(topic: Topic.controllerState, payload: Array("offline".utf8), qos: .atLeastOnce, retain: true),
                // One client: it may retry its broker every 0.1–0.2 s for the first 5 s.
                backoff: BackoffPolicy(initial: .milliseconds(200), maximum: .seconds(5), steadyAttempts: 25)))
        let ingest = Ingest(client: client, fleet: fleet, access: access, logger: logger)

        let info = ControllerInfo(
            version: ControllerConfiguration.version, store: "sqlite:\(store.location)", brokerURL: deviceBrokerURL, brokerManaged: broker != nil,
            brokerSecurity: broker != nil ? "secured: no anonymous access, a password per device, per-device ACL" : "external: see README (Security) for the config lines")
        let notifier = SystemdNotifier()
        let app = Application(
            router: try API.router(fleet: fleet, info: info, access: access, registryDir: config.dataDir, ask: { await ingest.request($0) }, brokerConnected: { client.isConnected }),
            server: try apiServer(config, ca: ca),
            configuration: .init(address: .hostname(config.listenHost, port: config.listenPort), serverName: "drover-controller"),
            onServerRunning: { _ in
                notifier.ready(status: "API on \(config.listenHost):\(config.listenPort), broker \(brokerURL)")
                logger.info("controller started", metadata: ["api": "\(config.listenHost):\(config.listenPort)", "broker": "\(brokerURL)"])
            },
            logger: logger)

        var services: [any Service] = broker.map { [$0] } ?? []
        services += [
            ControllerLink(client: client, ingest: ingest, fleet: fleet, pingInterval: config.pingInterval),
            PeriodicService(interval: config.presenceCheckInterval) {
                await fleet.checkPresence(now: Fleet.nowMillis())
                await fleet.autoscale(now: Fleet.nowMillis())
            },
            WatchdogService(notifier: notifier),
            app,
        ]
        return .daemon(services, logger: logger)
    }
}

/// The first start makes an admin token, kept owner-only in the data directory for whoever
/// administers this machine. It is printed once to a terminal; to anything else (a journal
/// kept on disk) only where it is.
func announceAdminToken(access: AccessControl, dataDir: String) async throws {
    guard let token = try await access.bootstrapAdmin(dataDir: dataDir, now: Fleet.nowMillis()) else { return }
    let shown = isatty(STDOUT_FILENO) == 1 ? "admin API token (shown once): \(token)\n  " : ""
    FileHandle.standardOutput.write(Data("""
        drover-controller: first start; \(shown)the admin token is in \(dataDir)/admin.token (owner-only).
        Use it with: drover config set-context NAME --controller URL --token-file \(dataDir)/admin.token

        """.utf8))
}

/// This controller's id, made once per data directory: its MQTT client id, so that two
/// controllers on one broker never take each other's session.
func controllerID(dataDir: String) throws -> String {
    let path = dataDir + "/controller.id"
    if let saved = try? String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), !saved.isEmpty {
        return saved
    }
    let id = String(UInt64.random(in: 1...UInt64.max), radix: 16)
    try (id + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    return id
}

/// The controller's MQTT side as a service: ingest of what devices send, republishing after
/// every (re)connect, and round-trip pings. On shutdown it says `offline` before leaving.
struct ControllerLink: Service {
    let client: MQTTClient
    let ingest: Ingest
    let fleet: Fleet
    let pingInterval: Duration

    func run() async {
        await fleet.setPublisher(ingest.outbox)
        client.start()
        let pingInterval = pingInterval
        await runUntilShutdown([
            { await ingest.handleEvents() },
            { await ingest.handleMessages() },
            { await ingest.publishDesired() },
            {
                while !Task.isCancelled {
                    try? await Task.sleep(for: pingInterval)
                    await ingest.pingAll()
                }
            },
        ])
        _ = try? await client.publish(Topic.controllerState, Array("offline".utf8), qos: .atLeastOnce, retain: true)
        await client.shutdown()
    }
}
