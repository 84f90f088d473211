import ArgumentParser
import DroverAPI
import DroverCore
import Foundation

/// `drover rollout history|undo WORKLOAD`.
struct RolloutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollout", abstract: "A workload's rollouts and revisions: watch, pause, resume, abort; list revisions, go back to one.",
        subcommands: [StatusCommand.self, PauseCommand.self, ResumeCommand.self, AbortCommand.self, HistoryCommand.self, UndoCommand.self])

    struct StatusCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "status", abstract: "Show a workload's rollout: its wave, phase, why it waits, replicas by revision.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The workload's name.") var name: String
        @Flag(help: "Print it again every 2 seconds until the rollout ends.") var watch = false

        func run() async {
            while true {
                let (view, data) = await options.client.get("/v1/workloads/\(name.pathEscaped)/rollout", as: RolloutView.self)
                guard options.output == .table else {
                    Output.print(data, format: options.output) { [] }
                    return
                }
                FileHandle.standardOutput.write(Data(Self.text(view).utf8))
                guard watch, view.state?.isActive == true || view.state?.phase == .paused else { return }
                try? await Task.sleep(for: .seconds(2))
            }
        }

        static func text(_ view: RolloutView) -> String {
            let byRevision = view.replicasByRevision.sorted { $0.key < $1.key }.map { "\($0.value) on \($0.key)" }.joined(separator: ", ")
            guard let state = view.state else { return "\(view.workload): revision \(view.revision), no rollout yet; replicas: \(byRevision)\n" }
            let waves = view.spec?.waves.count ?? 1
            var line = "\(view.workload): revision \(state.from) → \(state.to), \(state.phase.rawValue), wave \(min(state.wave + 1, waves)) of \(waves)"
            if let left = view.bakeSecondsLeft { line += ", bake \(left) s left" }
            return line + "\n  \(state.message)\n  replicas: \(byRevision.isEmpty ? "none" : byRevision)\n"
        }
    }

    /// `pause`, `resume`, `abort`: the same call with another verb.
    static func control(_ options: GlobalOptions, _ name: String, _ action: String) async {
        let data = await options.client.send("POST", "/v1/workloads/\(name.pathEscaped)/rollout/\(action)")
        guard options.output == .table, let view = try? JSONDecoder().decode(RolloutView.self, from: data) else {
            Output.print(data, format: options.output) { [] }
            return
        }
        FileHandle.standardOutput.write(Data(StatusCommand.text(view).utf8))
    }

    struct PauseCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "pause", abstract: "Pause a workload's rollout where it is.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The workload's name.") var name: String
        func run() async { await RolloutCommand.control(options, name, "pause") }
    }

    struct ResumeCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "resume", abstract: "Resume a paused rollout.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The workload's name.") var name: String
        func run() async { await RolloutCommand.control(options, name, "resume") }
    }

    struct AbortCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "abort", abstract: "Abort a rollout and roll back to the revision before it.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The workload's name.") var name: String
        func run() async { await RolloutCommand.control(options, name, "abort") }
    }

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
