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
            TokensCommand.self, ConfigCommand.self, ImageCommand.self, LogsCommand.self, RolloutCommand.self,
        ])
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json, yaml
}

/// Options every subcommand shares.
struct GlobalOptions: ParsableArguments {
    @Option(help: "Controller URL (default: $DROVER_CONTROLLER, the current context, or http://127.0.0.1:7070).")
    var controller: String?

    @Option(help: "API token (default: $DROVER_TOKEN or the current context's). Prefer DROVER_TOKEN or a context: a command line is visible to other users.")
    var token: String?

    @Option(help: "CA certificate (PEM) for an HTTPS controller (default: $DROVER_CA or the current context's).")
    var ca: String?

    @Option(help: "Use this context of ~/.config/drover/config.yaml instead of the current one (default: $DROVER_CONTEXT).")
    var context: String?

    @Option(name: .shortAndLong, help: "Output format: table, json or yaml.")
    var output: OutputFormat = .table

    var client: ControllerClient {
        ControllerClient(connection: .resolve(controller: controller, token: token, ca: ca, context: context))
    }
}

/// Prints one clear line to stderr and exits non-zero; used for every failure the user can fix.
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    exit(1)
}
