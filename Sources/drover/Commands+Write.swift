import ArgumentParser
import DroverAPI
import DroverCore
import DroverManifest
import Foundation

struct ApplyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "apply", abstract: "Create or update a workload from a manifest file.")
    @OptionGroup var options: GlobalOptions
    @Option(name: .shortAndLong, help: "Manifest file (YAML or JSON); - for standard input.") var file: String
    @Flag(help: "Print what would be placed, moved, stopped or left pending, and why; change nothing.") var dryRun = false

    func run() async {
        let text: String
        if file == "-" {
            text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        } else {
            guard let contents = FileManager.default.contents(atPath: file) else { fail("cannot read \(file)") }
            text = String(decoding: contents, as: UTF8.self)
        }
        // Checked here first so that a bad manifest fails without a round trip; the
        // controller checks again, since not every client is this CLI.
        do {
            _ = try Manifest.parseWorkload(text)
        } catch {
            fail("\(file): \(error)")
        }
        if dryRun {
            let data = await options.client.send("POST", "/v1/plan", body: Data(text.utf8), contentType: "application/yaml")
            guard let plan = try? JSONDecoder().decode(PlanPreview.self, from: data) else { fail("unexpected answer from the controller") }
            Output.print(data, format: options.output) {
                [["ACTION", "REPLICA", "DEVICE", "DETAIL"]]
                    + plan.changes.map { [$0.action, $0.replica, $0.device, $0.from.map { "from \($0)" } ?? ""] }
                    + plan.unplaced.map { ["pending", $0.id, "-", $0.reasons.joined(separator: " · ")] }
            }
            if options.output == .table { print("(dry run: workload/\(plan.workload) would be \(plan.outcome.rawValue); nothing changed)") }
            return
        }
        let data = await options.client.send("POST", "/v1/workloads", body: Data(text.utf8), contentType: "application/yaml")
        guard let answer = try? JSONDecoder().decode(ApplyResponse.self, from: data) else { fail("unexpected answer from the controller") }
        if options.output == .table {
            print("workload/\(answer.workload.name) \(answer.outcome.rawValue) (revision \(answer.workload.revision))")
        } else {
            Output.print(data, format: options.output) { [] }
        }
    }
}

struct DeleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a workload; its replicas stop.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "workload") var kind: String
    @Argument(help: "The workload's name.") var name: String

    func validate() throws {
        guard kind == "workload" else { throw ValidationError("only 'workload' can be deleted, not '\(kind)'") }
    }

    func run() async {
        _ = await options.client.send("DELETE", "/v1/workloads/\(name.pathEscaped)")
        print("workload/\(name) deleted")
    }
}

struct ScaleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "scale", abstract: "Set a workload's replica count.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "The workload's name.") var name: String
    @Option(help: "New replica count.") var replicas: Int

    func validate() throws {
        guard (0...WorkloadSpec.maxReplicas).contains(replicas) else { throw ValidationError("--replicas must be between 0 and \(WorkloadSpec.maxReplicas)") }
    }

    func run() async {
        let body = (try? JSONEncoder().encode(ScaleRequest(replicas: replicas))) ?? Data()
        let data = await options.client.send("POST", "/v1/workloads/\(name.pathEscaped)/scale", body: body)
        if options.output == .table {
            print("workload/\(name) scaled to \(replicas)")
        } else {
            Output.print(data, format: options.output) { [] }
        }
    }
}

/// `drover cordon|uncordon|drain DEVICE`.
struct DeviceStateCommand {
    static func run(_ options: GlobalOptions, action: String, device: String, done: String) async {
        let data = await options.client.send("POST", "/v1/devices/\(device.pathEscaped)/\(action)")
        if options.output == .table { print("device/\(device) \(done)") } else { Output.print(data, format: options.output) { [] } }
    }
}

struct CordonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cordon", abstract: "Stop new placements on a device; what runs there stays.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "The device id.") var device: String
    func run() async { await DeviceStateCommand.run(options, action: "cordon", device: device, done: "cordoned") }
}

struct UncordonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "uncordon", abstract: "Let a cordoned or draining device take replicas again.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "The device id.") var device: String
    func run() async { await DeviceStateCommand.run(options, action: "uncordon", device: device, done: "uncordoned") }
}

struct DrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "drain", abstract: "Move a device's replicas elsewhere and stop new placements on it.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "The device id.") var device: String
    func run() async { await DeviceStateCommand.run(options, action: "drain", device: device, done: "draining") }
}
