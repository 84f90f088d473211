import DroverAgent
import Testing

/// The agent's own command-line parser: ArgumentParser's conventions and messages, without it.
@Suite("Command-line flags")
struct CommandLineFlagsTests {
    static let tool = CommandLineTool(
        "demo", abstract: "A tool to try the parser on.",
        commands: [
            CommandSpec("run", abstract: "Run it (the default).", options: [
                OptionSpec("data-dir", required: true, help: "Directory for the data."),
                OptionSpec("name", help: "A name, taken from elsewhere when not given."),
                OptionSpec("link", default: "wired", help: "How this device reaches the broker: wired, wifi, cellular or satellite."),
                OptionSpec("labels", default: "", help: "Labels, e.g. site=a."),
                OptionSpec("keepalive", default: "15", help: "Keepalive in seconds."),
                OptionSpec("beat-interval", default: "5.0", help: "Seconds between looks for something to tell the controller; a beat goes out only when something changed, which can take a long while on a quiet device."),
            ]),
            CommandSpec("pull", abstract: "Pull an image.", options: [OptionSpec("data-dir", required: true, help: "The agent's data directory.")],
                        arguments: [ArgumentSpec("image", help: "NAME[:TAG].")]),
        ],
        defaultCommand: "run")

    static func options(_ arguments: [String]) throws -> ParsedOptions {
        guard case .run(let options) = try tool.parse(arguments) else { throw CommandLineError("help instead of options", usage: "") }
        return options
    }

    static func refusal(_ arguments: [String]) -> CommandLineError? {
        do {
            _ = try options(arguments)
            return nil
        } catch {
            return error as? CommandLineError
        }
    }

    static func help(_ arguments: [String]) throws -> String {
        guard case .help(let text) = try tool.parse(arguments) else { throw CommandLineError("options instead of help", usage: "") }
        return text
    }

    @Test("--name value and --name=value; the value after = may hold = or be empty")
    func spellings() throws {
        #expect(try Self.options(["--data-dir", "/d", "--name", "gw-1"]).optionalString("name") == "gw-1")
        #expect(try Self.options(["--data-dir=/d", "--name=gw-1"]).string("data-dir") == "/d")
        #expect(try Self.options(["--data-dir", "/d", "--labels=site=a,zone=b"]).string("labels") == "site=a,zone=b")
        #expect(try Self.options(["--data-dir", "/d", "--name="]).optionalString("name") == "")
        // A lone dash is a value, not an option.
        #expect(try Self.options(["--data-dir", "-"]).string("data-dir") == "-")
    }

    @Test("a repeated option: the last one wins")
    func lastWins() throws {
        let options = try Self.options(["--data-dir", "/a", "--link", "wifi", "--data-dir=/b", "--link", "cellular"])
        #expect(try options.string("data-dir") == "/b")
        #expect(try options.string("link") == "cellular")
    }

    @Test("defaults when not given; nil for an option with none")
    func defaults() throws {
        let options = try Self.options(["--data-dir", "/d"])
        #expect(try options.string("link") == "wired")
        #expect(try options.string("labels") == "")
        #expect(try options.int("keepalive") == 15)
        #expect(try options.double("beat-interval") == 5)
        #expect(options.optionalString("name") == nil)
        #expect(throws: CommandLineError.self) { try options.string("name") }
    }

    @Test("typed values, and a clear error naming the flag for a bad one")
    func typed() throws {
        let options = try Self.options(["--data-dir", "/d", "--keepalive", "30", "--beat-interval", "0.5"])
        #expect(try options.int("keepalive") == 30)
        #expect(try options.double("beat-interval") == 0.5)
        let bad = try Self.options(["--data-dir", "/d", "--keepalive", "x", "--beat-interval", "soon"])
        #expect(throws: CommandLineError("--keepalive: 'x' is not an integer", usage: bad.usage)) { try bad.int("keepalive") }
        #expect(throws: CommandLineError("--beat-interval: 'soon' is not a number", usage: bad.usage)) { try bad.double("beat-interval") }
        #expect(throws: CommandLineError.self) { try Self.options(["--data-dir", "/d", "--keepalive", "1.5"]).int("keepalive") }
    }

    @Test("an unknown option is named, with the nearest one when it looks like a typo, and the usage follows")
    func unknown() throws {
        let error = try #require(Self.refusal(["--data-dir", "/d", "--colour", "red"]))
        #expect(error.message == "Unknown option '--colour'")
        #expect(error.description == """
            Error: Unknown option '--colour'
            Usage: demo run --data-dir <data-dir> [--name <name>] [--link <link>] [--labels <labels>] [--keepalive <keepalive>] [--beat-interval <beat-interval>]
              See 'demo run --help' for more information.
            """)
        #expect(Self.refusal(["--data_dir", "/d"])?.message == "Unknown option '--data_dir'. Did you mean '--data-dir'?")
        #expect(Self.refusal(["--data-dir", "/d", "-x"])?.message == "Unknown option '-x'")
        // An option of another subcommand is unknown here.
        #expect(Self.refusal(["pull", "img", "--data-dir", "/d", "--link", "wifi"])?.message == "Unknown option '--link'")
    }

    @Test("an option without its value: at the end, or followed by another option")
    func missingValue() {
        #expect(Self.refusal(["--data-dir"])?.message == "Missing value for '--data-dir <data-dir>'")
        #expect(Self.refusal(["--name", "--data-dir", "/d"])?.message == "Missing value for '--name <name>'")
        #expect(Self.refusal(["--data-dir", "/d", "--keepalive", "-1"])?.message == "Missing value for '--keepalive <keepalive>'")
    }

    @Test("a required option or argument left out")
    func missingRequired() {
        #expect(Self.refusal([])?.message == "Missing expected argument '--data-dir <data-dir>'")
        #expect(Self.refusal(["--name", "gw-1"])?.message == "Missing expected argument '--data-dir <data-dir>'")
        #expect(Self.refusal(["pull", "--data-dir", "/d"])?.message == "Missing expected argument '<image>'")
        #expect(Self.refusal(["pull", "--data-dir", "/d"])?.usage.hasPrefix("Usage: demo pull --data-dir <data-dir> <image>\n") == true)
    }

    @Test("positional arguments anywhere among the options; extra ones refused; after -- even a dash is one")
    func positionals() throws {
        #expect(try Self.options(["pull", "web:v1", "--data-dir", "/d"]).argument("image") == "web:v1")
        #expect(try Self.options(["pull", "--data-dir", "/d", "web:v1"]).argument("image") == "web:v1")
        #expect(try Self.options(["pull", "--data-dir", "/d", "--", "-odd"]).argument("image") == "-odd")
        #expect(Self.refusal(["pull", "a", "b", "--data-dir", "/d"])?.message == "Unexpected argument 'b'")
        #expect(Self.refusal(["--data-dir", "/d", "x", "y"])?.message == "2 unexpected arguments: 'x', 'y'")
    }

    @Test("the named subcommand, else the default one; a subcommand's name counts only first")
    func subcommands() throws {
        #expect(try Self.options(["pull", "img", "--data-dir", "/d"]).command.name == "pull")
        #expect(try Self.options(["run", "--data-dir", "/d"]).command.name == "run")
        #expect(try Self.options(["--data-dir", "/d"]).command.name == "run")
        #expect(Self.refusal(["--data-dir", "/d", "pull"])?.message == "Unexpected argument 'pull'")
        let none = CommandLineTool("x", abstract: "", commands: [CommandSpec("a", abstract: "", options: [])])
        #expect(throws: CommandLineError.self) { try none.parse([]) }
    }

    @Test("--help lists every option with its help and default; -h anywhere wins over errors")
    func help() throws {
        let text = try Self.help(["run", "--help"])
        #expect(text.hasPrefix("OVERVIEW: Run it (the default).\n\nUSAGE: demo run --data-dir <data-dir> [--name <name>] [--link <link>]"))
        // Wrapped help, read back as one line per option.
        let flat = text.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        for option in Self.tool.commands[0].options {
            #expect(flat.contains("--\(option.name) <\(option.valueName)> \(option.help)"), "\(option.name) in \(text)")
        }
        #expect(flat.contains("(default: wired)") && flat.contains("(default: 15)") && !flat.contains("(default: )"))
        #expect(text.contains("\n  -h, --help              Show help information."))
        for line in text.split(separator: "\n") where !line.hasPrefix("USAGE") { #expect(line.count <= 80, "\(line)") }
        // A long label gets its text on the lines below it.
        #expect(text.contains("  --beat-interval <beat-interval>\n                          Seconds between"))

        #expect(try Self.help(["--data-dir", "/d", "-h"]) == text)
        #expect(try Self.help(["--nope", "--help"]) == text)
        #expect(try Self.help(["help", "pull"]).contains("ARGUMENTS:\n  <image>                 NAME[:TAG]."))
        #expect(try Self.help(["pull", "-h"]) == (try Self.help(["help", "pull"])))
        #expect(throws: CommandLineError.self) { try Self.options(["pull", "--", "--help"]) }

        let root = try Self.help(["--help"])
        #expect(try Self.help(["help"]) == root)
        #expect(try Self.help(["-h"]) == root)
        #expect(root.contains("USAGE: demo <subcommand>"))
        #expect(root.contains("  run (default)           Run it (the default).\n  pull                    Pull an image."))
    }

    @Test("past 12 options the usage folds the optional ones into [<options>]")
    func longUsage() throws {
        func tool(optional count: Int) -> CommandLineTool {
            let options = (0..<count).map { OptionSpec("o\($0)", help: "") } + [OptionSpec("must", required: true, help: "")]
            return CommandLineTool("t", abstract: "", commands: [CommandSpec("run", abstract: "", options: options)], defaultCommand: "run")
        }
        let twelve = tool(optional: 11), thirteen = tool(optional: 12)
        #expect(twelve.synopsis(for: twelve.commands[0]).hasPrefix("t run [--o0 <o0>] [--o1 <o1>]"))
        #expect(thirteen.synopsis(for: thirteen.commands[0]) == "t run [<options>] --must <must>")
    }
}
