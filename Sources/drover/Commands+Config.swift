import ArgumentParser
import Foundation

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Manage named contexts (controller URL, token, CA) in ~/.config/drover/config.yaml or $DROVER_CONFIG.",
        subcommands: [SetContext.self, UseContext.self, GetContexts.self, CurrentContext.self, DeleteContext.self])

    struct SetContext: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set-context", abstract: "Create or change a context.")
        @Argument(help: "Context name.") var name: String
        @Option(help: "Controller URL, e.g. https://10.0.0.5:7070.") var controller: String?
        @Option(help: "File holding an API token (e.g. the controller's admin.token); its contents are stored in the config.") var tokenFile: String?
        @Option(help: "An API token (prefer --token-file: a command line is visible to other users).") var token: String?
        @Option(help: "CA certificate (PEM) to verify the controller's HTTPS certificate with.") var ca: String?
        @Flag(help: "Make it the current context.") var use = false

        func validate() throws {
            guard !name.isEmpty, name.count <= 64, !name.contains(where: { $0.isWhitespace }) else {
                throw ValidationError("context name must be 1-64 characters without spaces")
            }
            if token != nil, tokenFile != nil { throw ValidationError("give --token or --token-file, not both") }
            if let controller, URL(string: controller)?.host == nil { throw ValidationError("--controller: '\(controller)' is not a URL like https://HOST:PORT") }
        }

        func run() {
            var config = CLIConfig.load()
            var context = config.context(named: name) ?? CLIConfig.Context(name: name, controller: controller ?? "http://127.0.0.1:7070")
            if let controller { context.controller = controller }
            if let tokenFile {
                guard let data = FileManager.default.contents(atPath: tokenFile) else { fail("cannot read \(tokenFile)") }
                context.token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            if let token { context.token = token }
            if let ca {
                guard FileManager.default.isReadableFile(atPath: ca) else { fail("cannot read \(ca)") }
                context.ca = (ca as NSString).standardizingPath.hasPrefix("/") ? ca : FileManager.default.currentDirectoryPath + "/" + ca
            }
            config.upsert(context)
            if use || config.currentContext == nil { config.currentContext = name }
            config.save()
            print("context \(name) saved in \(CLIConfig.path)\(config.currentContext == name ? " (current)" : "")")
        }
    }

    struct UseContext: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "use-context", abstract: "Switch the current context.")
        @Argument(help: "Context name.") var name: String

        func run() {
            var config = CLIConfig.load()
            guard config.context(named: name) != nil else { fail("no context '\(name)' in \(CLIConfig.path) (drover config get-contexts lists them)") }
            config.currentContext = name
            config.save()
            print("switched to context \(name)")
        }
    }

    struct GetContexts: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "get-contexts", abstract: "List contexts; tokens are never shown.")

        func run() {
            let config = CLIConfig.load()
            print(Output.render([["CURRENT", "NAME", "CONTROLLER", "TOKEN", "CA"]] + config.contexts.map {
                [$0.name == config.currentContext ? "*" : "", $0.name, $0.controller, $0.token == nil ? "-" : "set", $0.ca ?? "-"]
            }), terminator: "")
        }
    }

    struct CurrentContext: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "current-context", abstract: "Print the current context's name.")

        func run() {
            guard let name = CLIConfig.load().currentContext else { fail("no current context in \(CLIConfig.path)") }
            print(name)
        }
    }

    struct DeleteContext: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "delete-context", abstract: "Remove a context.")
        @Argument(help: "Context name.") var name: String

        func run() {
            var config = CLIConfig.load()
            guard config.context(named: name) != nil else { fail("no context '\(name)' in \(CLIConfig.path)") }
            config.contexts.removeAll { $0.name == name }
            if config.currentContext == name { config.currentContext = nil }
            config.save()
            print("context \(name) deleted")
        }
    }
}
