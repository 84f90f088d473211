#if canImport(Glibc)
import Glibc
#endif
import DroverAPI
import DroverAgent
import DroverCore
import DroverMQTT
import Logging

/// Parses, validates and runs, with ArgumentParser's outcomes (which the agent used before, and
/// which scripts and tests rely on): help on stdout and exit 0; a refused command line as
/// `Error: ...` plus the usage on stderr, exit 64; a failure to run as `Error: ...`, exit 1.
@main
struct DroverAgentCommand {
    static let tool = CommandLineTool(
        "drover-agent", abstract: "Drover device agent: runs the workloads the controller places on this device.",
        commands: [RunAgent.command, PullImage.command], defaultCommand: RunAgent.command.name)

    static func main() async {
        let options: ParsedOptions
        do {
            switch try tool.parse(Array(CommandLine.arguments.dropFirst())) {
            case .help(let text):
                print(text)
                exit(0)
            case .run(let parsed): options = parsed
            }
        } catch {
            CommandLineTool.exit(withError: error)
        }
        do {
            if options.command.name == PullImage.command.name {
                try await PullImage(options).run()
            } else {
                let agent = try RunAgent(options)
                try agent.validate()
                try await agent.run()
            }
        } catch let error as ValidationError {
            CommandLineTool.exit(withError: CommandLineError(error.message, usage: options.usage))
        } catch {
            CommandLineTool.exit(withError: error)
        }
    }
}

/// An option value the agent refuses: reported with the usage, as a command-line error.
struct ValidationError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

struct RunAgent {
    static let command = CommandSpec(
        "run", abstract: "Run the agent (the default: drover-agent --data-dir D ... runs it).",
        options: [
            OptionSpec("id", help: "Device id; also the MQTT username. Letters, digits, '.', '_' or '-'. Taken from the enrollment when enrolled."),
            OptionSpec("broker", help: "Broker URL, e.g. mqtt://127.0.0.1:1883; default: the one given at enrollment."),
            OptionSpec("controller", help: "Controller API URL to enroll with, e.g. http://127.0.0.1:7070 (with --token or --token-file)."),
            OptionSpec("token", help: "One-time enrollment token (drover devices enroll ID); used once, when the data dir holds no credentials yet."),
            OptionSpec("token-file", help: "File holding the enrollment token (keeps it off the command line)."),
            OptionSpec("data-dir", required: true, help: "Directory for agent.db and replica logs."),
            OptionSpec("labels", default: "", help: "Device labels, e.g. site=plant-a,zone=z1."),
            OptionSpec("capacity", default: "", help: "Capacity to offer instead of what the machine has, e.g. cpu=2,memory=1Gi."),
            OptionSpec("link", default: "wired", help: "How this device reaches the broker: wired, wifi, cellular or satellite."),
            OptionSpec("beat-interval", default: "5.0",
                       help: "Seconds between looks for something to tell the controller (0.1-3600); a beat goes out only when something changed."),
            OptionSpec("idle-beat-interval", default: "300.0",
                       help: "Seconds the agent stays silent at most when nothing changes (1-86400, at least --beat-interval): the controller notices a hung agent this long plus its --unreachable-after after the last beat."),
            OptionSpec("keepalive", default: "15",
                       help: "MQTT keepalive in seconds (5-3600): the broker notices a dead link, and fires this device's last will, within 1.5 times this."),
            OptionSpec("log-limit", default: "1Mi", help: "Size at which a replica's output.log is rotated to output.log.1, e.g. 1Mi."),
            OptionSpec("stop-grace", default: "5.0", help: "Seconds a replica gets to exit after SIGTERM before its process group is killed."),
            OptionSpec("code-trim-interval", default: "600",
                       help: "Seconds between unmappings of the code of the agent and its libraries, the first 10 s after start, so that only the code in use stays mapped (60-86400; 0: never)."),
            OptionSpec("metrics-listen",
                       help: "Serve the agent's Prometheus metrics at http://127.0.0.1:PORT/metrics (loopback only; off unless given). PORT or 127.0.0.1:PORT."),
            OptionSpec("image-budget", default: "2Gi", help: "Disk the image store may use before images no replica uses are removed, e.g. 2Gi."),
            OptionSpec("workload-user", default: "drover",
                       help: "User that replicas run as unless their manifest names one (spec.user); root only when a manifest says so. Used when the agent runs as root."),
            OptionSpec("cgroup-parent", help: "cgroup under which containers get theirs (PARENT/REPLICA); default /drover/DEVICE-ID."),
        ])

    var id: String?
    var broker: String?
    var controller: String?
    var token: String?
    var tokenFile: String?
    var dataDir: String
    var labels: String
    var capacity: String
    var link: String
    var beatInterval: Double
    var idleBeatInterval: Double
    var keepalive: Int
    var logLimit: String
    var stopGrace: Double
    var codeTrimInterval: Int
    var metricsListen: String?
    var imageBudget: String
    var workloadUser: String
    var cgroupParent: String?

    init(_ options: ParsedOptions) throws(CommandLineError) {
        id = options.optionalString("id")
        broker = options.optionalString("broker")
        controller = options.optionalString("controller")
        token = options.optionalString("token")
        tokenFile = options.optionalString("token-file")
        dataDir = try options.string("data-dir")
        labels = try options.string("labels")
        capacity = try options.string("capacity")
        link = try options.string("link")
        beatInterval = try options.double("beat-interval")
        idleBeatInterval = try options.double("idle-beat-interval")
        keepalive = try options.int("keepalive")
        logLimit = try options.string("log-limit")
        stopGrace = try options.double("stop-grace")
        codeTrimInterval = try options.int("code-trim-interval")
        metricsListen = options.optionalString("metrics-listen")
        imageBudget = try options.string("image-budget")
        workloadUser = try options.string("workload-user")
        cgroupParent = options.optionalString("cgroup-parent")
    }

    func validate() throws(ValidationError) {
        guard (Quantity.parseMemory(imageBudget) ?? -1) >= 0 else {
            throw ValidationError("--image-budget: '\(imageBudget)' must be a size, e.g. 512Mi or 2Gi")
        }
        guard Names.isValidRunAs(workloadUser), workloadUser != "root", workloadUser != "0" else {
            throw ValidationError("--workload-user: '\(workloadUser)' must be an unprivileged user name or UID[:GID]; root only per workload, with spec.user: root")
        }
        if let cgroupParent {
            let parts = cgroupParent.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
            guard cgroupParent.hasPrefix("/"), cgroupParent.utf8.count <= 200, !parts.isEmpty,
                parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." && $0.allSatisfy { $0.isLetter || $0.isNumber || "._-".contains($0) } })
            else { throw ValidationError("--cgroup-parent: '\(cgroupParent)' must be an absolute cgroup path, e.g. /drover/gw-1 (letters, digits, '.', '_', '-')") }
        }
        if let id, !Names.isValidDeviceID(id) { throw ValidationError("--id: '\(id)' must be 1-64 letters, digits, '.', '_' or '-'") }
        if let broker {
            do { _ = try BrokerAddress(url: broker) } catch { throw ValidationError("--broker: \(error)") }
        }
        if token != nil, tokenFile != nil { throw ValidationError("give --token or --token-file, not both") }
        if token != nil || tokenFile != nil, controller == nil { throw ValidationError("--token needs --controller URL, the controller's API to enroll with") }
        guard LinkClass(rawValue: link) != nil else {
            throw ValidationError("--link: '\(link)' must be one of \(LinkClass.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard (0.1...3600).contains(beatInterval) else { throw ValidationError("--beat-interval must be 0.1 to 3600 seconds") }
        guard (1...86400).contains(idleBeatInterval), idleBeatInterval >= beatInterval else {
            throw ValidationError("--idle-beat-interval must be 1 to 86400 seconds, and at least --beat-interval")
        }
        guard (5...3600).contains(keepalive) else { throw ValidationError("--keepalive must be 5 to 3600 seconds") }
        guard (Quantity.parseMemory(logLimit) ?? 0) >= 1024 else {
            throw ValidationError("--log-limit: '\(logLimit)' must be a size of at least 1Ki, e.g. 512Ki or 1Mi")
        }
        guard (0...3600).contains(stopGrace) else { throw ValidationError("--stop-grace must be 0 to 3600 seconds") }
        guard codeTrimInterval == 0 || (60...86400).contains(codeTrimInterval) else { throw ValidationError("--code-trim-interval must be 0 (never) or 60 to 86400 seconds") }
        _ = try parsedMetricsPort()
        _ = try parsedLabels()
        _ = try parsedCapacity()
    }

    /// `PORT`, `127.0.0.1:PORT` or `localhost:PORT`: metrics are for this device only.
    func parsedMetricsPort() throws(ValidationError) -> UInt16? {
        guard let metricsListen else { return nil }
        let parts = metricsListen.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        let host = parts.count == 2 ? String(parts[0]) : "127.0.0.1"
        guard ["127.0.0.1", "localhost"].contains(host) else {
            throw ValidationError("--metrics-listen: '\(metricsListen)': metrics are served on 127.0.0.1 only; give PORT or 127.0.0.1:PORT")
        }
        guard let port = UInt16(parts.last ?? ""), port > 0 else { throw ValidationError("--metrics-listen: '\(metricsListen)': the port must be 1-65535") }
        return port
    }

    func parsedLabels() throws(ValidationError) -> [String: String] {
        let parsed = Names.parseLabels(labels)
        if let bad = parsed.bad { throw ValidationError("--labels: '\(bad)' is not key=value with a valid key and value") }
        return parsed.labels
    }

    func parsedCapacity() throws(ValidationError) -> (cpu: Int?, memory: Int64?) {
        do { return try Quantity.parseCapacity(capacity) } catch { throw ValidationError("--capacity: \(error.path) \(error.reason)") }
    }

    /// The enrollment token, from --token or --token-file (small: 64 KiB is plenty).
    func enrollmentToken() throws(StartError) -> String? {
        if let token { return token }
        guard let tokenFile else { return nil }
        guard let text = POSIX.readFile(tokenFile, limit: 64 << 10) else { throw StartError("cannot read --token-file \(tokenFile)") }
        return text
    }

    /// Credentials kept from an earlier enrollment, or new ones for the token; nil for an
    /// anonymous device on a broker of the operator's that allows it.
    func credentials(logger: Logger) throws -> DeviceCredentials? {
        if let saved = try StoredCredentials.load(dataDir: dataDir) { return saved }
        guard let token = try enrollmentToken(), let controller else { return nil }
        let credentials = try Enroller.enroll(controller: controller, token: token, dataDir: dataDir, expectedDevice: id)
        logger.notice("enrolled", metadata: ["device": "\(credentials.device)", "broker": "\(credentials.broker)"])
        return credentials
    }

    func run() async throws {
        // A peer that resets a TLS or HTTP connection mid-write must cost an error, not the process.
        signal(SIGPIPE, SIG_IGN)
        try RunAs.checkUnprivileged(workloadUser)
        var logger = Logger(label: "drover-agent")
        let credentials = try credentials(logger: logger)
        if let credentials, let id, id != credentials.device {
            throw StartError("--id is \(id), but \(dataDir) holds the credentials of \(credentials.device)")
        }
        guard let deviceID = credentials?.device ?? id else {
            throw StartError("this device is not enrolled: start it once with --controller URL --token-file FILE (drover devices enroll ID makes the token), or give --id and --broker for a broker that allows anonymous devices")
        }
        guard let brokerURL = broker ?? credentials?.broker else { throw StartError("--broker is required for a device that is not enrolled") }
        logger[metadataKey: "device"] = "\(deviceID)"
        let capacity = try parsedCapacity()
        // Labels given at enrollment win: the controller holds to them whatever is announced.
        let labels = try parsedLabels().merging(credentials?.labels ?? [:]) { _, enrolled in enrolled }
        var configuration = AgentConfiguration(
            deviceID: deviceID, broker: try BrokerAddress(url: brokerURL), dataDir: dataDir, labels: labels,
            capacityCPU: capacity.cpu, capacityMemory: capacity.memory, link: LinkClass(rawValue: link) ?? .wired, beatInterval: .milliseconds(Int64(beatInterval * 1000)),
            username: credentials?.username, password: credentials?.password, stopGrace: .milliseconds(Int64(stopGrace * 1000)),
            maxLogBytes: Quantity.parseMemory(logLimit) ?? 1 << 20, caFile: credentials.map { _ in StoredCredentials.caPath(dataDir) }, workloadUser: workloadUser)
        configuration.idleBeatInterval = .milliseconds(Int64(idleBeatInterval * 1000))
        configuration.keepAliveSeconds = Int32(keepalive)
        configuration.imageBudget = Quantity.parseMemory(imageBudget) ?? 2 << 30
        configuration.controllerURL = controller ?? credentials?.controller
        configuration.credentials = credentials
        configuration.cgroupParent = cgroupParent
        configuration.codeTrimInterval = codeTrimInterval == 0 ? nil : .seconds(codeTrimInterval)
        configuration.metricsPort = try parsedMetricsPort()
        try await Agent.serviceGroup(configuration: configuration, logger: logger).run()
    }
}

/// A reason the agent cannot start, printed as one line.
struct StartError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

struct PullImage {
    static let command = CommandSpec(
        "pull", abstract: "Pull an image into this device's image store (verified, resumed where a download stopped), and exit.",
        options: [OptionSpec("data-dir", required: true, help: "The agent's data directory (its credentials reach the controller's registry).")],
        arguments: [ArgumentSpec("image", help: "NAME[:TAG][@sha256:DIGEST] from the controller's registry, or HOST[:PORT]/NAME... from another.")])

    var dataDir: String
    var image: String

    init(_ options: ParsedOptions) throws(CommandLineError) {
        dataDir = try options.string("data-dir")
        image = try options.argument("image")
    }

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
        let credentials = try StoredCredentials.load(dataDir: dataDir)
        let store = ImageStore(dataDir: dataDir, controller: credentials?.controller, credentials: credentials)
        let pulled = try store.pull(image) { print($0) }
        print("pulled \(image): manifest \(pulled.manifest), \(pulled.layers.count) layers; fetched \(pulled.fetched) bytes, \(pulled.reused) already here")
    }
}
