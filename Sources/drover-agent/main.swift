import ArgumentParser
import DroverAgent
import DroverCore
import DroverMQTT
import Logging

@main
struct DroverAgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drover-agent", abstract: "Drover device agent: runs the workloads the controller places on this device.")

    @Option(help: "Device id; also the MQTT username. Letters, digits, '.', '_' or '-'.")
    var id: String

    @Option(help: "Broker URL, e.g. mqtt://127.0.0.1:1883 (drover status shows it).")
    var broker: String

    @Option(help: "Directory for agent.db and replica logs.")
    var dataDir: String

    @Option(help: "Device labels, e.g. site=plant-a,zone=z1.")
    var labels: String = ""

    @Option(help: "Capacity to offer instead of what the machine has, e.g. cpu=2,memory=1Gi.")
    var capacity: String = ""

    @Option(help: "How this device reaches the broker: wired, wifi, cellular or satellite.")
    var link: String = "wired"

    @Option(help: "Seconds between beats.")
    var beatInterval: Double = 5

    @Option(help: "Size at which a replica's output.log is rotated to output.log.1, e.g. 1Mi.")
    var logLimit: String = "1Mi"

    @Option(help: "Seconds a replica gets to exit after SIGTERM before its process group is killed.")
    var stopGrace: Double = 5

    @Option(help: "MQTT password (the username is the device id).")
    var password: String?

    mutating func validate() throws {
        guard Names.isValidDeviceID(id) else { throw ValidationError("--id: '\(id)' must be 1-64 letters, digits, '.', '_' or '-'") }
        do { _ = try BrokerAddress(url: broker) } catch { throw ValidationError("--broker: \(error)") }
        guard LinkClass(rawValue: link) != nil else {
            throw ValidationError("--link: '\(link)' must be one of \(LinkClass.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard beatInterval >= 0.1 else { throw ValidationError("--beat-interval must be at least 0.1 seconds") }
        guard (Quantity.parseMemory(logLimit) ?? 0) >= 1024 else {
            throw ValidationError("--log-limit: '\(logLimit)' must be a size of at least 1Ki, e.g. 512Ki or 1Mi")
        }
        guard stopGrace >= 0 else { throw ValidationError("--stop-grace must not be negative") }
        _ = try parsedLabels()
        _ = try parsedCapacity()
    }

    func parsedLabels() throws -> [String: String] {
        var labels: [String: String] = [:]
        for pair in self.labels.split(separator: ",") {
            let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2, Names.isValidLabelKey(kv[0]), Names.isValidLabelValue(kv[1]) else {
                throw ValidationError("--labels: '\(pair)' is not key=value with a valid key and value")
            }
            labels[kv[0]] = kv[1]
        }
        return labels
    }

    func parsedCapacity() throws -> (cpu: Int?, memory: Int64?) {
        var cpu: Int?
        var memory: Int64?
        for pair in capacity.split(separator: ",") {
            let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
            switch (kv.first, kv.count == 2 ? kv[1] : nil) {
            case ("cpu", let v?): cpu = Quantity.parseCPU(v)
                if cpu == nil { throw ValidationError("--capacity: cpu '\(v)' must be cores (2, 0.5) or millicores (500m)") }
            case ("memory", let v?): memory = Quantity.parseMemory(v)
                if memory == nil { throw ValidationError("--capacity: memory '\(v)' must be bytes with an optional Ki/Mi/Gi suffix") }
            default: throw ValidationError("--capacity: '\(pair)' must be cpu=N or memory=N")
            }
        }
        return (cpu, memory)
    }

    func run() async throws {
        var logger = Logger(label: "drover-agent")
        logger[metadataKey: "device"] = "\(id)"
        let capacity = try parsedCapacity()
        let configuration = AgentConfiguration(
            deviceID: id, broker: try BrokerAddress(url: broker), dataDir: dataDir, labels: try parsedLabels(),
            capacityCPU: capacity.cpu, capacityMemory: capacity.memory, link: LinkClass(rawValue: link) ?? .wired, beatInterval: .milliseconds(Int64(beatInterval * 1000)),
            password: password, stopGrace: .milliseconds(Int64(stopGrace * 1000)), maxLogBytes: Quantity.parseMemory(logLimit) ?? 1 << 20)
        try await Agent.serviceGroup(configuration: configuration, logger: logger).run()
    }
}
