import Foundation
import Testing

/// A controller on the embedded default and a set of agents, each a real process, in a temp
/// dir. `shutdown()` stops all of them and every replica they started, by pid.
final class FleetTestbed: @unchecked Sendable {
    let dir: String
    let apiPort: Int
    var api: APIClient
    var controller: TestProcess?
    var agents: [String: TestProcess] = [:]
    var brokerURL = ""
    let unreachableAfter: Double

    /// A broker of the test's own instead of the controller's managed one.
    var external: TestBroker?

    /// The controller's API and its managed broker on `host` (a veth address the test made)
    /// over TLS with certificates from the controller's CA, as for devices on other machines.
    struct Exposed {
        var host: String
        var mqttPort: Int
    }
    let exposed: Exposed?

    /// Where agents and the CLI reach the API.
    var controllerURL: String { exposed.map { "https://\($0.host):\(apiPort)" } ?? "http://127.0.0.1:\(apiPort)" }
    var caFile: String { dir + "/controller/tls/ca.pem" }

    init(label: String, unreachableAfter: Double = 2, externalBroker: Bool = false, brokerAlsoOn: String? = nil, exposedOn: String? = nil) throws {
        dir = try Harness.temporaryDirectory(label)
        if externalBroker {
            try FileManager.default.createDirectory(atPath: dir + "/broker", withIntermediateDirectories: true)
            external = try TestBroker(dir: dir + "/broker", alsoOn: brokerAlsoOn)
        }
        apiPort = try Harness.freePort()
        // The managed broker's port too comes from the harness, so no two testbeds share one.
        try FileManager.default.createDirectory(atPath: dir + "/controller", withIntermediateDirectories: true)
        try "\(try Harness.freePort())\n".write(toFile: dir + "/controller/broker.port", atomically: true, encoding: .utf8)
        if let exposedOn { exposed = FleetTestbed.Exposed(host: exposedOn, mqttPort: try Harness.freePort()) } else { exposed = nil }
        let port = apiPort
        api = APIClient(base: exposedOn.map { "https://\($0):\(port)" } ?? "http://127.0.0.1:\(port)")
        self.unreachableAfter = unreachableAfter
    }

    /// Runs `body` against a fresh testbed with its controller up; records any error as an
    /// issue and always shuts everything down.
    static func run(
        _ label: String, unreachableAfter: Double = 2, externalBroker: Bool = false, brokerAlsoOn: String? = nil, exposedOn: String? = nil,
        _ body: (FleetTestbed) async throws -> Void
    ) async throws {
        let bed = try FleetTestbed(label: label, unreachableAfter: unreachableAfter, externalBroker: externalBroker, brokerAlsoOn: brokerAlsoOn, exposedOn: exposedOn)
        do {
            try await bed.startController()
            try await body(bed)
        } catch {
            Issue.record("\(error)")
        }
        await bed.shutdown()
    }

    /// When the controller last started.
    private(set) var controllerStarted = ContinuousClock.now

    /// Waits until the controller judges presence again: its grace after a start is
    /// `--unreachable-after`, 10 s at least.
    func waitPastGrace() async throws {
        try await Task.sleep(until: controllerStarted + .seconds(max(10, unreachableAfter)) + .milliseconds(500))
    }

    func startController() async throws {
        controllerStarted = ContinuousClock.now
        controller = try TestProcess(
            Harness.binary("drover-controller"),
            ["--data-dir", dir + "/controller", "--listen", "\(exposed?.host ?? "127.0.0.1"):\(apiPort)", "--unreachable-after", "\(unreachableAfter)", "--ping-interval", "0.5"]
                + (external.map { ["--broker", $0.url] } ?? [])
                + (exposed.map { ["--tls", "--advertise", $0.host, "--mqtt-listen", "\($0.host):\($0.mqttPort)"] } ?? []),
            log: dir + "/controller.log")
        if exposed != nil {
            // The CA exists once the controller has started; until then nothing is trusted.
            _ = await Harness.eventually(.seconds(20)) { FileManager.default.fileExists(atPath: self.caFile) }
            api.ca = caFile
        }
        guard await Harness.eventually(.seconds(20), { await self.api.isUp() }) else {
            throw HarnessError("controller did not come up:\n\(controller?.log ?? "")")
        }
        try loadAdminToken()
        let status = try await api.get("/v1/status")
        brokerURL = (status["controller"] as? [String: Any])?["brokerURL"] as? String ?? ""
        guard await Harness.eventually(.seconds(10), { ((try? await self.api.get("/v1/status"))?["brokerConnected"] as? Bool) == true }) else {
            throw HarnessError("controller did not reach its broker:\n\(controller?.log ?? "")")
        }
    }

    /// The first start writes the admin token; later starts keep it.
    func loadAdminToken() throws {
        guard let token = try? String(contentsOfFile: dir + "/controller/admin.token", encoding: .utf8) else {
            throw HarnessError("controller wrote no admin.token:\n\(controller?.log ?? "")")
        }
        api.token = token.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func stopController() async {
        await controller?.stop()
    }

    /// A crash: SIGKILL, no chance to clean up.
    func killController() async {
        await controller?.stop(signal: SIGKILL, grace: .seconds(5))
    }

    /// mosquitto processes started from this testbed's managed-broker config.
    func managedBrokers() -> [pid_t] {
        let config = dir + "/controller/mosquitto.conf"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { pid_t($0) }.filter { pid in
            guard Harness.isAlive(pid), let cmdline = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8) else { return false }
            return cmdline.split(separator: "\0").contains { $0 == config }
        }
    }

    /// The fleet's events, oldest first, as (kind, subject, message).
    func events(limit: Int = 1000) async throws -> [(kind: String, subject: String, message: String)] {
        let (_, _, data) = try await api.request("GET", "/v1/events?limit=\(limit)")
        let list = (try? JSONSerialization.jsonObject(with: data)) as? [[String: Any]] ?? []
        return list.map { ($0["kind"] as? String ?? "", $0["subject"] as? String ?? "", $0["message"] as? String ?? "") }
    }

    /// Runs the `drover` CLI against this testbed's controller.
    func drover(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try Harness.run(Harness.binary("drover"), arguments, environment: droverEnvironment)
    }

    /// What the CLI needs to reach this testbed: the URL and the admin token, and no
    /// config file of the machine's user.
    var droverEnvironment: [String: String] {
        ["DROVER_CONTROLLER": controllerURL, "DROVER_TOKEN": api.token ?? "", "DROVER_CONFIG": dir + "/drover-config.yaml"]
            .merging(exposed == nil ? [:] : ["DROVER_CA": caFile]) { a, _ in a }
    }

    func agentDir(_ id: String) -> String { dir + "/agents/" + id }

    /// `netns`: run the agent inside this network namespace, reaching the broker at `broker`.
    /// `executable`: another build of the agent (the device build of `tools/build-agent`).
    /// On the managed broker an agent enrolls, as an operator would set it up: a token from
    /// `drover devices enroll`, handed over in a file, the first time its data dir is used.
    func startAgent(_ id: String, labels: String, capacity: String, extra: [String] = [], netns: String? = nil, broker: String? = nil, executable: String? = nil) throws {
        // Fault tests judge silence in seconds: beats at least every second (the default is
        // every 5 minutes, with presence from the broker session and the will).
        var arguments = ["--id", id, "--data-dir", agentDir(id), "--labels", labels, "--capacity", capacity, "--beat-interval", "0.5", "--idle-beat-interval", "1"]
        if external != nil || broker != nil { arguments += ["--broker", broker ?? brokerURL] }
        if external == nil, !FileManager.default.fileExists(atPath: agentDir(id) + "/credentials.json") {
            arguments += ["--controller", controllerURL, "--token-file", try enrollmentTokenFile(id)]
        }
        arguments += extra
        let agent = executable ?? Harness.binary("drover-agent")
        let (program, full) = netns.map { ("/usr/sbin/ip", ["netns", "exec", $0, agent] + arguments) } ?? (agent, arguments)
        agents[id] = try TestProcess(program, full, log: dir + "/agent-\(id)-\(agentStarts).log", environment: environment)
        agentStarts += 1
    }

    private var agentStarts = 0

    /// `-u ID -P PASSWORD` for mosquitto_pub/sub, from the credentials the agent got.
    func mqttLogin(_ id: String) throws -> [String] {
        let data = try Data(contentsOf: URL(fileURLWithPath: agentDir(id) + "/credentials.json"))
        guard let json = try JSONSerialization.jsonObject(with: data) as? [String: Any], let password = json["password"] as? String else {
            throw HarnessError("no credentials for \(id)")
        }
        return ["-u", id, "-P", password]
    }

    /// A new enrollment token for `id`, from the CLI, in a file of its own.
    func enrollmentTokenFile(_ id: String, arguments: [String] = []) throws -> String {
        let (status, output) = try drover(["devices", "enroll", id] + arguments)
        guard status == 0, let token = output.split(separator: "\n").first(where: { $0.hasPrefix("dre_") }) else {
            throw HarnessError("drover devices enroll \(id) failed: \(output)")
        }
        try FileManager.default.createDirectory(atPath: dir + "/tokens", withIntermediateDirectories: true)
        let path = dir + "/tokens/\(id)-\(agentStarts)"
        try String(token).write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Extra environment for agents started from now on.
    var environment: [String: String] = [:]

    func apply(_ manifest: String) async throws {
        let (code, body, _) = try await api.request("POST", "/v1/workloads", body: manifest)
        guard code == 201 || code == 200 else { throw HarnessError("apply answered \(code): \(body)") }
    }

    /// The workload's replicas as the API shows them, whatever their phase.
    func replicas(_ workload: String) async throws -> [[String: Any]] {
        try await api.get("/v1/workloads/\(workload)")["replicas"] as? [[String: Any]] ?? []
    }

    /// The devices of fleet-configs/fleet.env, as the demo starts them.
    func startDemoAgents() throws -> [String] {
        let text = try String(contentsOfFile: Harness.repoRoot + "/fleet-configs/fleet.env", encoding: .utf8)
        var ids: [String] = []
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ").map(String.init)
            guard parts.count == 3 else { continue }
            try startAgent(parts[0], labels: parts[1], capacity: parts[2])
            ids.append(parts[0])
        }
        return ids
    }

    /// gw-1 online with one replica of a `steady` workload running: the start of many tests.
    @discardableResult
    func steadyOnGW1(extra: [String] = []) async throws -> [(id: String, device: String, pid: Int32)] {
        try startAgent("gw-1", labels: "role=gateway", capacity: "cpu=2,memory=1Gi", extra: extra)
        try await waitForDevices(online: 1)
        try await apply(FaultTests.manifest("steady"))
        let started = await Harness.eventually { (try? await self.running("steady").count) == 1 }
        guard started else {
            throw HarnessError("steady did not run: \((try? await replicas("steady")) ?? [])")
        }
        return try await running("steady")
    }

    func waitForDevices(online count: Int) async throws {
        let ok = await Harness.eventually(.seconds(20)) {
            (try? await self.api.list("/v1/devices"))?.filter { ($0["record"] as? [String: Any])?["presence"] as? String == "online" }.count == count
        }
        guard ok else { throw HarnessError("devices did not come online: \((try? await api.list("/v1/devices")) ?? [])") }
    }

    /// `online` or `unreachable`, as the controller sees the device.
    func presence(_ device: String) async throws -> String? {
        (try await api.get("/v1/devices/\(device)")["record"] as? [String: Any])?["presence"] as? String
    }

    /// (replica id, device, pid) of replicas the controller sees running.
    func running(_ workload: String) async throws -> [(id: String, device: String, pid: Int32)] {
        let view = try await api.get("/v1/workloads/\(workload)")
        return (view["replicas"] as? [[String: Any]] ?? []).compactMap { r in
            guard r["phase"] as? String == "running", let id = r["id"] as? String, let device = r["device"] as? String, let pid = r["pid"] as? Int else { return nil }
            return (id, device, Int32(pid))
        }
    }

    func shutdown() async {
        for agent in agents.values { await agent.stop(grace: .seconds(5)) }
        await controller?.stop()
        Harness.killProcesses(under: dir)
        for pid in managedBrokers() { kill(pid, SIGKILL) }
        await external?.kill()
        // A controller killed hard leaves its broker behind; its pid file names it.
        if let text = try? String(contentsOfFile: dir + "/controller/mosquitto.pid", encoding: .utf8), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)),
           (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8))?.contains(dir) == true {
            kill(pid, SIGKILL)
        }
        if ProcessInfo.processInfo.environment["DROVER_KEEP_TEST_DIRS"] == nil {
            try? FileManager.default.removeItem(atPath: dir)
        }
    }
}
