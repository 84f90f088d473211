import ArgumentParser
import DroverAPI
import Foundation

struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs", abstract: "Print the end of a workload's replica logs, fetched from their devices.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Workload name.") var workload: String
    @Option(help: "Only this replica.") var replica: String?
    @Option(help: "Only replicas on this device.") var device: String?
    @Option(help: "Lines from the end of each log (1-10000).") var tail: Int = 100

    func validate() throws {
        guard (1...10_000).contains(tail) else { throw ValidationError("--tail must be 1-10000") }
    }

    func run() async {
        var query = "tail=\(tail)"
        if let replica { query += "&replica=\(replica.pathEscaped)" }
        if let device { query += "&device=\(device.pathEscaped)" }
        let (logs, data) = await options.client.get("/v1/workloads/\(workload.pathEscaped)/logs?\(query)", as: [LogView].self)
        if options.output != .table {
            Output.print(data, format: options.output) { [] }
            return
        }
        var failed: [String] = []
        for log in logs {
            if logs.count > 1 { print("==> \(log.replica) on \(log.device) <==") }
            if let output = log.output { print(output, terminator: "") }
            if let error = log.error { failed.append("\(log.replica): \(error)") }
        }
        if !failed.isEmpty { fail(failed.joined(separator: "; ")) }
    }
}
