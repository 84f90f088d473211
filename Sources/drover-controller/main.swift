import ArgumentParser
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

    @Option(help: "Seconds without a beat after which a device is unreachable.")
    var unreachableAfter: Double = 30

    @Option(help: "Seconds between round-trip measurements of every online device.")
    var pingInterval: Double = 15

    func listenAddress() throws -> (host: String, port: Int) {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("--listen: '\(listen)' must be HOST:PORT, e.g. 127.0.0.1:7070")
        }
        return (String(listen[..<colon]), port)
    }

    mutating func validate() throws {
        let address = try listenAddress()
        guard isLoopback(address.host) else {
            throw ValidationError("--listen: \(address.host) is not a loopback address, and the API carries tokens; serving it beyond this machine needs TLS (not built yet: put a TLS proxy in front and keep --listen on 127.0.0.1)")
        }
        if let broker {
            do { _ = try BrokerAddress(url: broker) } catch { throw ValidationError("--broker: \(error)") }
        }
        guard pingInterval >= 0.1 else { throw ValidationError("--ping-interval must be at least 0.1 seconds") }
        guard unreachableAfter >= 0.5 else { throw ValidationError("--unreachable-after must be at least 0.5 seconds") }
    }

    /// 127.0.0.0/8, ::1 and localhost: the only addresses plain HTTP may listen on.
    func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || (host.hasPrefix("127.") && host.split(separator: ".").count == 4)
    }

    func run() async throws {
        let logger = Logger(label: "drover-controller")
        let address = try listenAddress()
        let configuration = ControllerConfiguration(
            dataDir: dataDir, listenHost: address.host, listenPort: address.port, brokerURL: broker,
            unreachableAfter: .milliseconds(Int64(unreachableAfter * 1000)), pingInterval: .milliseconds(Int64(pingInterval * 1000)))
        try await Controller.serviceGroup(configuration: configuration, logger: logger).run()
        logger.info("controller stopped")
    }
}
