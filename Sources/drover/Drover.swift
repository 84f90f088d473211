import ArgumentParser
import Foundation

@main
struct Drover: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drover",
        abstract: "Operate a Drover fleet through its controller.",
        subcommands: [
            StatusCommand.self, DevicesCommand.self, WorkloadsCommand.self, DescribeCommand.self, ApplyCommand.self,
            DeleteCommand.self, ScaleCommand.self, CordonCommand.self, UncordonCommand.self, DrainCommand.self, EventsCommand.self,
        ])
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json, yaml
}

/// Options every subcommand shares.
struct GlobalOptions: ParsableArguments {
    @Option(help: "Controller URL (default: $DROVER_CONTROLLER or http://127.0.0.1:7070).")
    var controller: String?

    @Option(name: .shortAndLong, help: "Output format: table, json or yaml.")
    var output: OutputFormat = .table

    var client: ControllerClient {
        ControllerClient(base: controller ?? ProcessInfo.processInfo.environment["DROVER_CONTROLLER"] ?? "http://127.0.0.1:7070")
    }
}

/// Prints one clear line to stderr and exits non-zero; used for every failure the user can fix.
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    exit(1)
}
