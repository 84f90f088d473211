import ArgumentParser
import DroverAPI
import Foundation

struct TokensCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokens", abstract: "Create, list and revoke API tokens (admin).", subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a token; it is printed once and never shown again.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "A name for the token: 1-64 letters, digits, '.', '_' or '-'.") var name: String
        @Option(help: "admin, operator (apply, scale, cordon, drain, delete) or viewer (read-only).") var role: Role = .viewer

        func run() async {
            let body = (try? JSONEncoder().encode(TokenRequest(name: name, role: role))) ?? Data()
            let data = await options.client.send("POST", "/v1/tokens", body: body)
            guard let created = try? JSONDecoder().decode(TokenCreated.self, from: data) else { fail("unexpected answer from the controller") }
            if options.output == .table {
                print(created.token)
                FileHandle.standardError.write(Data("token \(created.info.name) (\(created.info.role.rawValue), id \(created.info.id)) created; it is not shown again\n".utf8))
            } else {
                Output.print(data, format: options.output) { [] }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tokens (never their secrets).")
        @OptionGroup var options: GlobalOptions

        func run() async {
            let (tokens, data) = await options.client.get("/v1/tokens", as: [TokenView].self)
            Output.print(data, format: options.output) {
                [["ID", "NAME", "ROLE", "AGE", "REVOKED"]]
                    + tokens.map { [$0.id, $0.name, $0.role.rawValue, Output.age($0.created), $0.revoked.map { Output.age($0) + " ago" } ?? "-"] }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token by id or name; it is refused from the next request on.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "Token id or name.") var token: String

        func run() async {
            let data = await options.client.send("DELETE", "/v1/tokens/\(token.pathEscaped)")
            guard let view = try? JSONDecoder().decode(TokenView.self, from: data) else { fail("unexpected answer from the controller") }
            print("token \(view.name) (\(view.id)) revoked")
        }
    }
}

extension Role: ExpressibleByArgument {}
