import ArgumentParser
import DroverAPI
import Foundation

struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs", abstract: "Print the end of a workload's replica logs, fetched from their devices; --follow keeps printing.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Workload name.") var workload: String
    @Option(help: "Only this replica.") var replica: String?
    @Option(help: "Only replicas on this device.") var device: String?
    @Option(help: "Lines from the end of each log (1-10000).") var tail: Int = 100
    @Flag(name: [.short, .long], help: "Keep printing what the logs get (once a second) until interrupted.") var follow = false

    func validate() throws {
        guard (1...10_000).contains(tail) else { throw ValidationError("--tail must be 1-10000") }
        if follow, options.output != .table { throw ValidationError("--follow prints text; leave out -o") }
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
            if logs.count > 1, !follow { FileHandle.standardOutput.write(Data("==> \(log.replica) on \(log.device) <==\n".utf8)) }
            if let output = log.output { FileHandle.standardOutput.write(Data(prefixed(output, log.replica, many: follow && logs.count > 1).utf8)) }
            if let error = log.error { failed.append("\(log.replica): \(error)") }
        }
        guard follow else {
            if !failed.isEmpty { fail(failed.joined(separator: "; ")) }
            return
        }
        for message in failed { FileHandle.standardError.write(Data("drover logs: \(message); still trying\n".utf8)) }
        await followLogs(Dictionary(logs.map { ($0.replica, $0.offset) }, uniquingKeysWith: { a, _ in a }), many: logs.count > 1)
    }

    /// Asks each replica's device for what its log got since the last answer, once a second.
    /// A device that is away is said once, and asked again until it is back.
    func followLogs(_ start: [String: Int64?], many: Bool) async {
        var offsets = start
        var complaints: [String: String] = [:]
        while true {
            try? await Task.sleep(for: .seconds(1))
            for replica in offsets.keys.sorted() {
                var query = "replica=\(replica.pathEscaped)"
                if let offset = offsets[replica] ?? nil { query += "&since=\(offset)" } else { query += "&tail=\(tail)" }
                guard let log = await options.client.tryGet("/v1/workloads/\(workload.pathEscaped)/logs?\(query)", as: [LogView].self)?.first else { continue }
                if let error = log.error {
                    if complaints[replica] != error { FileHandle.standardError.write(Data("drover logs: \(replica): \(error); still trying\n".utf8)) }
                    complaints[replica] = error
                    continue
                }
                complaints[replica] = nil
                // Unbuffered: whoever reads the pipe sees each line as it comes.
                if let output = log.output, !output.isEmpty { FileHandle.standardOutput.write(Data(prefixed(output, replica, many: many).utf8)) }
                if let offset = log.offset { offsets[replica] = offset }
            }
        }
    }

    /// Lines of several replicas, interleaved as they come, each with its replica's name.
    func prefixed(_ output: String, _ replica: String, many: Bool) -> String {
        guard many else { return output }
        return output.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { "[\(replica)] \($0)\n" }.joined()
    }
}
