import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import DroverController
import DroverMQTT
import Logging

@main
struct DroverControllerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drover-controller",
        abstract: "Drover control plane: REST API, placement, device registry; starts its own mosquitto unless --broker is given.")

    @Option(help: "Directory for controller.db and the managed broker's files.")
    var dataDir: String

    @Option(help: "Address for the REST API, HOST:PORT.")
    var listen: String = "127.0.0.1:7070"

    @Option(help: "Use this broker (mqtt://HOST:PORT) instead of starting mosquitto.")
    var broker: String?

    @Option(help: "Also let the managed broker listen here, HOST:PORT, over TLS only (certificate from the controller's CA), for devices on other machines.")
    var mqttListen: String?

    @Option(help: "Names or addresses devices reach this controller by, comma-separated: they go into the TLS certificates, and the first into the broker URL devices get.")
    var advertise: String = ""

    @Flag(help: "Serve the API over HTTPS with a certificate from the controller's CA (DATA_DIR/tls/ca.pem is what clients trust).")
    var tls = false

    @Option(help: "Serve the API over HTTPS with this certificate chain (PEM); with --tls-key.")
    var tlsCert: String?

    @Option(help: "The private key (PEM) of --tls-cert.")
    var tlsKey: String?

    @Option(help: "Seconds of silence past a device's promised beat interval (its hello's beatEvery; 0 for a device that promises none) after which it is unreachable; its last will marks it at once. Also the grace after the controller starts or regains its broker (10 s at least).")
    var unreachableAfter: Double = 30

    @Option(help: "Seconds between round-trip pings of the online devices whose beats do not carry their round-trip time (agents that do are never pinged).")
    var pingInterval: Double = 300

    func listenAddress() throws -> ControllerConfiguration.HostPort {
        guard let address = ControllerConfiguration.HostPort(parsing: listen) else {
            throw ValidationError("--listen: '\(listen)' must be HOST:PORT, e.g. 127.0.0.1:7070")
        }
        return address
    }

    var advertised: [String] { advertise.split(separator: ",").map { String($0) } }

    var apiTLS: ControllerConfiguration.APITLS {
        if let tlsCert, let tlsKey { return .files(certificate: tlsCert, key: tlsKey) }
        return tls ? .controllerCA : .none
    }

    mutating func validate() throws {
        let address = try listenAddress()
        if tls, tlsCert != nil { throw ValidationError("give --tls or --tls-cert/--tls-key, not both") }
        if (tlsCert == nil) != (tlsKey == nil) { throw ValidationError("--tls-cert and --tls-key go together") }
        guard address.isLoopback || apiTLS != .none else {
            throw ValidationError("--listen: \(address.host) is not a loopback address, and the API carries tokens: serve it over HTTPS with --tls (a certificate from the controller's CA) or --tls-cert FILE --tls-key FILE")
        }
        for host in advertised where host.isEmpty || host.count > 253 || host.contains(where: { $0.isWhitespace || $0 == "/" }) {
            throw ValidationError("--advertise: '\(host)' is not a host name or address")
        }
        if address.isWildcard, apiTLS == .controllerCA, advertised.isEmpty {
            throw ValidationError("--listen \(listen) with --tls needs --advertise HOST: a certificate cannot name 'every address'")
        }
        if let mqttListen {
            guard broker == nil else { throw ValidationError("--mqtt-listen is for the managed broker; with --broker, configure your broker's listeners yourself") }
            guard let parsed = ControllerConfiguration.HostPort(parsing: mqttListen) else { throw ValidationError("--mqtt-listen: '\(mqttListen)' must be HOST:PORT, e.g. 10.0.0.5:8883") }
            if parsed.isWildcard, advertised.isEmpty {
                throw ValidationError("--mqtt-listen \(mqttListen) needs --advertise HOST: the name devices reach the broker by, which its certificate must hold")
            }
        }
        if let broker {
            do { _ = try BrokerAddress(url: broker) } catch { throw ValidationError("--broker: \(error)") }
        }
        guard (0.1...86400).contains(pingInterval) else { throw ValidationError("--ping-interval must be 0.1 to 86400 seconds") }
        guard (0.5...86400).contains(unreachableAfter) else { throw ValidationError("--unreachable-after must be 0.5 to 86400 seconds") }
    }

    func run() async throws {
        // A peer that resets a TLS or HTTP connection mid-write must cost an error, not the process.
        signal(SIGPIPE, SIG_IGN)
        let logger = Logger(label: "drover-controller")
        let address = try listenAddress()
        let configuration = ControllerConfiguration(
            dataDir: dataDir, listenHost: address.host, listenPort: address.port, brokerURL: broker,
            unreachableAfter: .milliseconds(Int64(unreachableAfter * 1000)), pingInterval: .milliseconds(Int64(pingInterval * 1000)),
            mqttListen: mqttListen.flatMap(ControllerConfiguration.HostPort.init(parsing:)), advertise: advertised, apiTLS: apiTLS)
        try await Controller.serviceGroup(configuration: configuration, logger: logger).run()
        logger.info("controller stopped")
    }
}
