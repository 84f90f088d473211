#if canImport(Glibc)
import Glibc
#endif

// A small command-line parser for the agent, in place of swift-argument-parser, which brings
// Foundation into a binary that must stay small. It keeps ArgumentParser's conventions and
// messages: `--name value` or `--name=value`, the last of a repeated option wins, `--help` or
// `-h` anywhere, `Error: ...` plus the usage on stderr with exit code 64.

/// An option taking a value, `--name <value-name>`.
public struct OptionSpec: Sendable {
    /// Without the dashes: `data-dir`.
    public var name: String
    public var valueName: String
    public var help: String
    /// What the option reads when it is not given; shown in the help unless empty.
    public var defaultValue: String?
    /// Left out, the command line is refused.
    public var isRequired: Bool

    public init(_ name: String, valueName: String? = nil, default defaultValue: String? = nil, required: Bool = false, help: String) {
        self.name = name
        self.valueName = valueName ?? name
        self.help = help
        self.defaultValue = defaultValue
        self.isRequired = required
    }

    var synopsis: String { "--\(name) <\(valueName)>" }
}

/// A positional argument; every one is required.
public struct ArgumentSpec: Sendable {
    public var name: String
    public var help: String
    public init(_ name: String, help: String) {
        self.name = name
        self.help = help
    }
}

public struct CommandSpec: Sendable {
    public var name: String
    public var abstract: String
    public var options: [OptionSpec]
    public var arguments: [ArgumentSpec]
    public init(_ name: String, abstract: String, options: [OptionSpec], arguments: [ArgumentSpec] = []) {
        self.name = name
        self.abstract = abstract
        self.options = options
        self.arguments = arguments
    }
}

/// A refused command line: `Error: message`, then the usage, on stderr; exit code 64 (EX_USAGE).
public struct CommandLineError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    /// `Usage: ...` and where to find the help.
    public var usage: String
    public init(_ message: String, usage: String) {
        self.message = message
        self.usage = usage
    }
    public var description: String { "Error: \(message)\n\(usage)" }
}

/// What a command line asks for.
public enum CommandLineRequest: Sendable {
    /// Print this text to stdout and exit 0.
    case help(String)
    case run(ParsedOptions)
}

/// The values of one command's options and arguments, read with typed accessors.
public struct ParsedOptions: Sendable {
    public let command: CommandSpec
    /// For errors found after parsing (validation), printed under them.
    public let usage: String
    let values: [String: String]
    let arguments: [String: String]

    func spec(_ name: String) -> OptionSpec? { command.options.first { $0.name == name } }

    /// The value given, else the default; nil when neither.
    public func optionalString(_ name: String) -> String? { values[name] ?? spec(name)?.defaultValue }

    public func string(_ name: String) throws(CommandLineError) -> String {
        guard let value = optionalString(name) else {
            throw CommandLineError("Missing expected argument '\(spec(name)?.synopsis ?? "--" + name)'", usage: usage)
        }
        return value
    }

    public func int(_ name: String) throws(CommandLineError) -> Int {
        let text = try string(name)
        guard let value = Int(text) else { throw CommandLineError("--\(name): '\(text)' is not an integer", usage: usage) }
        return value
    }

    public func double(_ name: String) throws(CommandLineError) -> Double {
        let text = try string(name)
        guard let value = Double(text) else { throw CommandLineError("--\(name): '\(text)' is not a number", usage: usage) }
        return value
    }

    /// A positional argument (all are required, so parsing made sure it is there).
    public func argument(_ name: String) throws(CommandLineError) -> String {
        guard let value = arguments[name] else { throw CommandLineError("Missing expected argument '<\(name)>'", usage: usage) }
        return value
    }
}

/// A program with subcommands, one of which may run when none is named.
public struct CommandLineTool: Sendable {
    public var name: String
    public var abstract: String
    public var commands: [CommandSpec]
    public var defaultCommand: String?
    /// Help text is wrapped to this many columns.
    public var width = 80

    public init(_ name: String, abstract: String, commands: [CommandSpec], defaultCommand: String? = nil) {
        self.name = name
        self.abstract = abstract
        self.commands = commands
        self.defaultCommand = defaultCommand
    }

    /// `arguments` without the program name. `help` and `help COMMAND` work as ArgumentParser's
    /// help subcommand; a first argument naming no command starts the default one.
    public func parse(_ arguments: [String]) throws(CommandLineError) -> CommandLineRequest {
        if arguments == ["--help"] || arguments == ["-h"] || arguments == ["help"] { return .help(help()) }
        if arguments.count == 2, arguments[0] == "help", let command = commands.first(where: { $0.name == arguments[1] }) {
            return .help(help(for: command))
        }
        let named = arguments.first.flatMap { first in commands.first { $0.name == first } }
        let rest = named == nil ? arguments[...] : arguments.dropFirst()
        guard let command = named ?? commands.first(where: { $0.name == defaultCommand }) else {
            throw CommandLineError("Missing required subcommand.", usage: usage())
        }
        // As ArgumentParser does, a help flag wins over every error in the same command line.
        if rest.prefix(while: { $0 != "--" }).contains(where: { $0 == "--help" || $0 == "-h" }) { return .help(help(for: command)) }
        return .run(try parse(rest, for: command))
    }

    func parse(_ arguments: ArraySlice<String>, for command: CommandSpec) throws(CommandLineError) -> ParsedOptions {
        let usage = usage(for: command)
        var values: [String: String] = [:]
        var positionals: [String] = []
        var rest = arguments
        while let argument = rest.popFirst() {
            if argument == "--" {
                positionals += rest
                break
            }
            guard Self.isOption(argument) else {
                positionals.append(argument)
                continue
            }
            let (name, inline) = Self.split(argument)
            guard let option = command.options.first(where: { "--" + $0.name == name }) else {
                throw CommandLineError(unknownOption(name, in: command), usage: usage)
            }
            if let inline {
                values[option.name] = inline
            } else if let value = rest.first, !Self.isOption(value) {
                values[option.name] = value
                rest = rest.dropFirst()
            } else {
                throw CommandLineError("Missing value for '\(option.synopsis)'", usage: usage)
            }
        }
        if let missing = command.options.first(where: { $0.isRequired && values[$0.name] == nil }) {
            throw CommandLineError("Missing expected argument '\(missing.synopsis)'", usage: usage)
        }
        if positionals.count < command.arguments.count {
            throw CommandLineError("Missing expected argument '<\(command.arguments[positionals.count].name)>'", usage: usage)
        }
        let extra = positionals.dropFirst(command.arguments.count)
        if extra.count == 1, let value = extra.first { throw CommandLineError("Unexpected argument '\(value)'", usage: usage) }
        if extra.count > 1 {
            throw CommandLineError("\(extra.count) unexpected arguments: '\(extra.joined(separator: "', '"))'", usage: usage)
        }
        let arguments = Dictionary(zip(command.arguments.map(\.name), positionals), uniquingKeysWith: { _, last in last })
        return ParsedOptions(command: command, usage: usage, values: values, arguments: arguments)
    }

    /// `-` alone is a value (stdin, by convention); so is anything not starting with a dash.
    static func isOption(_ argument: String) -> Bool { argument.hasPrefix("-") && argument.count > 1 }

    /// `--name=value` into `--name` and `value`; the value may itself hold `=`.
    static func split(_ argument: String) -> (name: String, value: String?) {
        guard argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") else { return (argument, nil) }
        return (String(argument[..<equals]), String(argument[argument.index(after: equals)...]))
    }

    /// With the nearest long option when it is close enough to be a typo (ArgumentParser's rule).
    func unknownOption(_ name: String, in command: CommandSpec) -> String {
        guard name.hasPrefix("--") else { return "Unknown option '\(name)'" }
        let nearest = command.options.map { "--" + $0.name }.map { ($0, Self.editDistance($0, name)) }.filter { $0.1 < 4 }.min { $0.1 < $1.1 }
        return "Unknown option '\(name)'" + (nearest.map { ". Did you mean '\($0.0)'?" } ?? "")
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1]
            for (j, y) in b.enumerated() {
                current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1)))
            }
            previous = current
        }
        return previous[b.count]
    }

    // MARK: Usage and help, in ArgumentParser's layout.

    /// Past 12 options the optional ones are folded into `[<options>]`, as ArgumentParser does.
    public func synopsis(for command: CommandSpec) -> String {
        let options = command.options.count > 12
            ? ["[<options>]"] + command.options.filter(\.isRequired).map(\.synopsis)
            : command.options.map { $0.isRequired ? $0.synopsis : "[\($0.synopsis)]" }
        return ([name, command.name] + options + command.arguments.map { "<\($0.name)>" }).joined(separator: " ")
    }

    public func usage(for command: CommandSpec) -> String {
        "Usage: \(synopsis(for: command))\n  See '\(name) \(command.name) --help' for more information."
    }

    public func usage() -> String { "Usage: \(name) <subcommand>\n  See '\(name) --help' for more information." }

    public func help() -> String {
        let rows = [("-h, --help", "Show help information.")]
        let subcommands = commands.map { ($0.name + ($0.name == defaultCommand ? " (default)" : ""), $0.abstract) }
        return render(abstract: abstract, usage: "\(name) <subcommand>", sections: [("OPTIONS", rows), ("SUBCOMMANDS", subcommands)])
            + "\n\n  See '\(name) help <subcommand>' for detailed help."
    }

    public func help(for command: CommandSpec) -> String {
        let arguments = command.arguments.map { ("<\($0.name)>", $0.help) }
        let options = command.options.map { option in
            let shown = option.defaultValue.flatMap { $0.isEmpty ? nil : " (default: \($0))" } ?? ""
            return (option.synopsis, option.help + shown)
        }
        return render(abstract: command.abstract, usage: synopsis(for: command),
                      sections: [("ARGUMENTS", arguments), ("OPTIONS", options + [("-h, --help", "Show help information.")])])
    }

    func render(abstract: String, usage: String, sections: [(String, [(String, String)])]) -> String {
        var blocks = [Self.wrap("OVERVIEW: " + abstract, width: width).joined(separator: "\n"), "USAGE: " + usage]
        for (title, rows) in sections where !rows.isEmpty {
            blocks.append(([title + ":"] + rows.map { row($0.0, $0.1) }).joined(separator: "\n"))
        }
        return blocks.joined(separator: "\n\n")
    }

    /// The label in a 26-column gutter, the text wrapped beside it (below it, when the label is wider).
    func row(_ label: String, _ text: String) -> String {
        let gutter = 26, label = "  " + label
        let lines = Self.wrap(text, width: max(width - gutter, 20)).map { String(repeating: " ", count: gutter) + $0 }
        guard let first = lines.first else { return label }
        guard label.count < gutter else { return ([label] + lines).joined(separator: "\n") }
        return ([label + first.dropFirst(label.count)] + lines.dropFirst()).joined(separator: "\n")
    }

    /// Words filled into lines of at most `width` characters; a longer word gets a line of its own.
    static func wrap(_ text: String, width: Int) -> [String] {
        var lines: [String] = []
        var line = ""
        for word in text.split(separator: " ") {
            if line.isEmpty {
                line = String(word)
            } else if line.count + 1 + word.count <= width {
                line += " " + word
            } else {
                lines.append(line)
                line = String(word)
            }
        }
        if !line.isEmpty { lines.append(line) }
        return lines
    }

    // MARK: Exit, as ArgumentParser's `exit(withError:)`.

    /// A refused command line exits 64 with its usage; any other error exits 1 with one line.
    public static func exit(withError error: any Error) -> Never {
        if let error = error as? CommandLineError {
            writeStandardError(error.description + "\n")
            Glibc.exit(64)
        }
        writeStandardError("Error: \(error)\n")
        Glibc.exit(1)
    }

    public static func writeStandardError(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return }
            bytes = bytes.dropFirst(n)
        }
    }
}
