import ArgumentParser
import DroverAPI
import DroverCore
import Foundation

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Controller, broker and fleet at a glance.")
    @OptionGroup var options: GlobalOptions

    func run() async {
        let (s, data) = await options.client.get("/v1/status", as: StatusResponse.self)
        Output.print(data, format: options.output) {
            let drops = s.fleet.droppedMessages.values.reduce(0, +)
            let p = s.fleet.placement
            return [
                ["FIELD", "VALUE"],
                ["controller", "drover-controller \(s.controller.version)"],
                ["store", s.controller.store],
                ["broker", "\(s.controller.brokerURL) (\(s.controller.brokerManaged ? "managed" : "external"), \(s.brokerConnected ? "connected" : "disconnected"))"],
                ["broker security", s.controller.brokerSecurity],
                ["devices", "\(s.fleet.devices) (\(s.fleet.online) online, \(s.fleet.unreachable) unreachable)"],
                ["workloads", "\(s.fleet.workloads)"],
                ["replicas", "\(s.fleet.runningReplicas)/\(s.fleet.desiredReplicas) running"],
                ["placement", String(
                    format: "%d full plans (last %.1f ms), %d incremental (last %.2f ms)", p.fullPlans, p.lastFullPlanMillis, p.incrementalPlans, p.lastIncrementalMillis)],
                ["dropped messages", drops == 0 ? "0" : "\(drops) (" + s.fleet.droppedMessages.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")"],
            ]
        }
    }
}

struct DevicesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices", abstract: "List devices with presence, capacity and load; enroll and revoke them.",
        subcommands: [DevicesList.self, EnrollCommand.self, RevokeCommand.self], defaultSubcommand: DevicesList.self)
}

struct DevicesList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List devices with presence, capacity and load.")
    @OptionGroup var options: GlobalOptions

    func run() async {
        let (devices, data) = await options.client.get("/v1/devices", as: [DeviceView].self)
        Output.print(data, format: options.output) {
            [["DEVICE", "PRESENCE", "ARCH", "CPU", "MEMORY", "REPLICAS", "LAST SEEN", "LABELS"]] + devices.map { d in
                let cap = d.record.facts.capacity
                return [
                    d.record.id, d.record.presence.rawValue + (d.record.schedulability == "normal" ? "" : ",\(d.record.schedulability)"), d.record.facts.arch,
                    "\(Quantity.formatCPU(d.allocated.cpuMillis))/\(Quantity.formatCPU(cap.cpuMillis))",
                    "\(Quantity.formatMemory(d.allocated.memoryBytes))/\(Quantity.formatMemory(cap.memoryBytes))",
                    "\(d.replicas.count)", Output.age(d.record.lastSeen) + " ago",
                    d.record.facts.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","),
                ]
            }
        }
    }
}

struct WorkloadsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "workloads", abstract: "List workloads with their replica counts.")
    @OptionGroup var options: GlobalOptions

    func run() async {
        let (workloads, data) = await options.client.get("/v1/workloads", as: [WorkloadView].self)
        Output.print(data, format: options.output) {
            [["WORKLOAD", "REVISION", "RUNNING", "PENDING", "RUNTIME", "AGE"]] + workloads.map { w in
                ["\(w.name)", "\(w.revision)", "\(w.runningReplicas)/\(w.desiredReplicas)", "\(w.unplaced.count)", w.spec.runtime.rawValue, Output.age(w.createdAt)]
            }
        }
    }
}

struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "events", abstract: "Recent fleet events, oldest first.")
    @OptionGroup var options: GlobalOptions
    @Option(help: "How many events to show (1-10000).") var limit = 50
    @Option(help: "Only events about this device or workload.") var subject: String?

    func run() async {
        var path = "/v1/events?limit=\(limit)"
        if let subject { path += "&subject=\(subject.pathEscaped)" }
        let (events, data) = await options.client.get(path, as: [EventRecord].self)
        Output.print(data, format: options.output) {
            [["AGE", "KIND", "SUBJECT", "MESSAGE"]] + events.map { [Output.age($0.time), $0.kind, $0.subject, $0.message] }
        }
    }
}

struct DescribeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "describe", abstract: "Show one device or workload in detail.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "device or workload") var kind: String
    @Argument(help: "Its id or name.") var name: String

    func validate() throws {
        guard ["device", "workload"].contains(kind) else { throw ValidationError("kind must be 'device' or 'workload', not '\(kind)'") }
    }

    func run() async {
        if kind == "device" {
            let (d, data) = await options.client.get("/v1/devices/\(name.pathEscaped)", as: DeviceView.self)
            Output.print(data, format: options.output) { Describe.device(d) }
        } else {
            let (w, data) = await options.client.get("/v1/workloads/\(name.pathEscaped)", as: WorkloadView.self)
            Output.print(data, format: options.output) { Describe.workload(w) }
        }
    }
}

enum Describe {
    static func device(_ d: DeviceView) -> [[String]] {
        let r = d.record
        var rows = [
            ["FIELD", "VALUE"], ["device", r.id], ["presence", r.presence.rawValue], ["last seen", Output.age(r.lastSeen) + " ago"],
            ["schedulable", r.schedulability],
            ["connectivity", "\((r.facts.link ?? .wired).rawValue), uptime \(Int((r.uptimeRatio(at: Int64(Date().timeIntervalSince1970 * 1000)) * 100).rounded()))%, \(r.flaps) flaps, rtt \(r.rttMillis.map { String(format: "%.1f ms", $0) } ?? "not measured yet")"],
            ["agent", r.facts.agentVersion], ["arch / os", "\(r.facts.arch) / \(r.facts.os)"],
            ["capacity", "cpu \(Quantity.formatCPU(r.facts.capacity.cpuMillis)), memory \(Quantity.formatMemory(r.facts.capacity.memoryBytes))"],
            ["allocated", "cpu \(Quantity.formatCPU(d.allocated.cpuMillis)), memory \(Quantity.formatMemory(d.allocated.memoryBytes))"],
            ["labels", r.facts.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")],
            ["runtimes", r.facts.runtimes.map(\.rawValue).joined(separator: ",")],
            ["generation", "desired \(d.generation), applied \(r.lastAppliedGeneration)"],
        ]
        if let u = r.usage {
            rows.append(["usage", String(format: "cpu %.1f%%, memory %@/%@, disk %@/%@", u.cpuPercent, Quantity.formatMemory(u.memoryUsedBytes), Quantity.formatMemory(u.memoryTotalBytes), Quantity.formatMemory(u.diskUsedBytes), Quantity.formatMemory(u.diskTotalBytes))])
        }
        for replica in d.replicas { rows.append(["replica", "\(replica.id) \(replica.phase.rawValue)\(replica.pid.map { " pid \($0)" } ?? "")"]) }
        return rows
    }

    static func workload(_ w: WorkloadView) -> [[String]] {
        var rows = [
            ["FIELD", "VALUE"], ["workload", w.name], ["revision", "\(w.revision)"], ["replicas", "\(w.runningReplicas)/\(w.desiredReplicas) running"],
            ["image", w.spec.image ?? "-"], ["command", w.spec.command.isEmpty ? (w.spec.image == nil ? "" : "(the image's)") : w.spec.command.joined(separator: " ")],
            ["runtime", w.spec.runtime.rawValue],
            ["ports", w.spec.ports.map(String.init).joined(separator: ",")],
            ["volumes", w.spec.volumes.map { "\($0.name):\($0.path)\($0.readOnly ? ":ro" : "")" }.joined(separator: " ")], ["restart policy", w.spec.restartPolicy.rawValue],
            ["resources", "cpu \(Quantity.formatCPU(w.spec.resources.cpuMillis)), memory \(Quantity.formatMemory(w.spec.resources.memoryBytes))"],
            ["selector", (w.spec.selector.matchLabels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" } + w.spec.selector.matchExpressions.map(\.description)).joined(separator: ",")],
        ]
        if w.spec.mode == .every { rows.append(["mode", "every matching device"]) }
        if w.spec.priority != 0 { rows.append(["priority", "\(w.spec.priority)"]) }
        if let spread = w.spec.spread { rows.append(["spread", "over \(spread.labelKey), maxSkew \(spread.maxSkew)"]) }
        for r in w.replicas {
            var text = "\(r.id) on \(r.device): \(r.phase.rawValue)"
            if let ready = r.ready { text += ready ? ", ready" : ", not ready" }
            if let revision = r.revision, revision != w.revision { text += ", revision \(revision)" }
            if let pid = r.pid { text += ", pid \(pid)" }
            if r.restarts > 0 { text += ", \(r.restarts) restarts" }
            if let code = r.exitCode { text += ", last exit \(code)" }
            if let m = r.message { text += " (\(m))" }
            rows.append(["replica", text])
        }
        for p in w.unplaced.prefix(20) { rows.append(["pending", "\(p.id): " + p.reasons.joined(separator: " · ")]) }
        if w.unplaced.count > 20 { rows.append(["pending", "… and \(w.unplaced.count - 20) more"]) }
        return rows
    }
}
