import ArgumentParser
import DroverAPI
import DroverCore
import Foundation

/// `drover rollout history|undo WORKLOAD`.
struct RolloutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollout", abstract: "A workload's revisions: list them, go back to one.", subcommands: [HistoryCommand.self, UndoCommand.self])

    struct HistoryCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "history", abstract: "List a workload's kept revisions (the last 10) with their time, cause and outcome.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The workload's name.") var name: String

        func run() async {
            let (revisions, data) = await options.client.get("/v1/workloads/\(name.pathEscaped)/revisions", as: [RevisionRecord].self)
            Output.print(data, format: options.output) {
                [["REVISION", "AGE", "CAUSE", "OUTCOME", "TEMPLATE"]] + revisions.map { r in
                    ["\(r.revision)", Output.age(r.createdAt), r.cause, r.outcome ?? "current", Self.template(r.spec)]
                }
            }
        }

        /// What a revision runs, in a few words: the image or the command.
        static func template(_ spec: WorkloadSpec) -> String {
            let what = spec.image ?? spec.command.joined(separator: " ")
            return String(what.prefix(60)) + (what.count > 60 ? "…" : "")
        }
    }

    struct UndoCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "undo", abstract: "Go back to an earlier revision's template (default: the one before), as a new revision.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The workload's name.") var name: String
        @Option(help: "The revision to go back to.") var toRevision: Int?

        func validate() throws {
            if let toRevision, toRevision < 1 { throw ValidationError("--to-revision must be 1 or more") }
        }

        func run() async {
            let body = (try? JSONEncoder().encode(UndoRequest(revision: toRevision))) ?? Data()
            let data = await options.client.send("POST", "/v1/workloads/\(name.pathEscaped)/undo", body: body)
            guard options.output == .table else {
                Output.print(data, format: options.output) { [] }
                return
            }
            let revision = (try? JSONDecoder().decode(WorkloadView.self, from: data))?.revision
            print("workload/\(name) rolled back\(toRevision.map { " to the template of revision \($0)" } ?? ""): now revision \(revision.map(String.init) ?? "?")")
        }
    }
}
