import AsyncHTTPClient
import DroverPOSIX
import DroverProtocol
import Foundation
import NIOCore
import NIOHTTP1

/// A broker, a controller and simulated devices, started for one benchmark and stopped (by
/// pid) at its end: a plain mosquitto on a free loopback port that lets devices in without
/// passwords, the release controller on it (`--broker`), and `drover-sim`.
final class LoadBed: @unchecked Sendable {
    let bin: String
    let dir: String
    let brokerPort: Int
    let apiPort: Int
    private(set) var pids: [String: pid_t] = [:]
    /// CPU seconds (user + system) of the processes `exited` reaped, by name.
    private(set) var exitCPU: [String: Double] = [:]
    private(set) var token = ""

    init(bin: String) throws {
        self.bin = bin
        dir = NSTemporaryDirectory() + "drover-load-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        brokerPort = try Self.freePort()
        apiPort = try Self.freePort()
    }

    static func freePort() throws -> Int {
        guard let (fd, port) = bindLoopbackSocket() else { throw BenchError("no free port") }
        close(fd)
        return port
    }

    var brokerURL: String { "mqtt://127.0.0.1:\(brokerPort)" }

    func start(_ name: String, _ executable: String, _ arguments: [String]) throws {
        var spawn = Spawn(executable: executable, arguments: arguments, environment: ProcessInfo.processInfo.environment)
        spawn.outputPath = "\(dir)/\(name).log"
        pids[name] = try spawn.run()
    }

    func startBroker() throws {
        let conf = """
            listener \(brokerPort) 127.0.0.1
            allow_anonymous true
            persistence false
            max_queued_messages 1000000
            max_inflight_messages 0

            """
        try conf.write(toFile: dir + "/mosquitto.conf", atomically: true, encoding: .utf8)
        try start("mosquitto", "/usr/sbin/mosquitto", ["-c", dir + "/mosquitto.conf"])
        usleep(300_000)
    }

    /// `count` edge brokers, each bridged to the core broker (`startBroker`), where the
    /// controller is: devices connect to the edges. mosquitto has no clustering; a bridge is
    /// how several broker processes serve one fleet. What devices publish goes up to the core
    /// once; what the controller publishes to devices comes down to every edge (each keeps
    /// the retained desired state of the whole fleet). The bridges speak MQTT 3.1.1: Debian
    /// 12's mosquitto 2.0.11 refuses its own MQTT 5 bridge (a protocol error), and 3.1.1 drops
    /// MQTT 5 properties, so commands (response topic, correlation data) do not cross it.
    /// Returns the edges' URLs.
    func startEdgeBrokers(_ count: Int) throws -> [String] {
        let up = Topic.controllerSubscriptions.map { "topic \($0) out 1" }
        let down = ["topic \(Topic.prefix)dev/+/\(Topic.Channel.desired.rawValue) in 1", "topic \(Topic.prefix)dev/+/\(Topic.Channel.cmd.rawValue) in 1", "topic \(Topic.controllerState) in 1"]
        var urls: [String] = []
        for k in 0..<count {
            let port = try Self.freePort()
            let conf = [
                "listener \(port) 127.0.0.1", "allow_anonymous true", "persistence false", "max_queued_messages 1000000", "max_inflight_messages 0",
                "connection edge-\(k)", "address 127.0.0.1:\(brokerPort)", "bridge_protocol_version mqttv311", "cleansession true", "try_private true", "notifications false",
            ] + up + down
            try (conf.joined(separator: "\n") + "\n").write(toFile: "\(dir)/edge-\(k).conf", atomically: true, encoding: .utf8)
            try start("edge-\(k)", "/usr/sbin/mosquitto", ["-c", "\(dir)/edge-\(k).conf"])
            urls.append("mqtt://127.0.0.1:\(port)")
        }
        usleep(500_000)
        return urls
    }

    var brokerNames: [String] { pids.keys.filter { $0 == "mosquitto" || $0.hasPrefix("edge-") }.sorted() }

    func startController() async throws {
        try start("controller", bin + "/drover-controller", ["--data-dir", dir + "/controller", "--listen", "127.0.0.1:\(apiPort)", "--broker", brokerURL])
        for _ in 0..<200 {
            if let text = try? String(contentsOfFile: dir + "/controller/admin.token", encoding: .utf8), !text.isEmpty {
                token = text.trimmingCharacters(in: .whitespacesAndNewlines)
                if (try? await get("/v1/health")) != nil { return }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw BenchError("the controller did not start: \(log("controller").suffix(800))")
    }

    /// `devices` simulated devices, in processes of at most 6,000 (each device takes three
    /// open files; a process may have 20,000 here): `sim`, `sim-1`, ..., each on one of
    /// `brokers` in turn (the core broker by default).
    func startSim(devices: Int, brokers: [String]? = nil, _ arguments: [String]) throws {
        let perProcess = 6_000
        let brokers = brokers ?? [brokerURL]
        for (n, first) in stride(from: 0, to: devices, by: perProcess).enumerated() {
            let count = min(perProcess, devices - first)
            let broker = brokers[n % brokers.count]
            try start(n == 0 ? "sim" : "sim-\(n)", bin + "/drover-sim", ["--broker", broker, "--stats-every", "1", "--json", "--devices", "\(count)", "--first", "\(first)"] + arguments)
        }
    }

    var simNames: [String] { pids.keys.filter { $0.hasPrefix("sim") }.sorted() }

    func adopt(_ name: String, _ pid: pid_t) { pids[name] = pid }

    /// Whether the process has exited (it is reaped, and forgotten; its CPU seconds are
    /// kept in `exitCPU`).
    func exited(_ name: String) -> Bool {
        guard let pid = pids[name] else { return true }
        var status: Int32 = 0
        var usage = rusage()
        guard wait4(pid, &status, WNOHANG, &usage) == pid else { return false }
        pids[name] = nil
        let seconds = { (t: timeval) in Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        exitCPU[name] = seconds(usage.ru_utime) + seconds(usage.ru_stime)
        return true
    }

    func stop(_ name: String, signal: Int32 = SIGTERM) {
        guard let pid = pids.removeValue(forKey: name) else { return }
        kill(pid, signal)
        var status: Int32 = 0
        for _ in 0..<300 {
            if waitpid(pid, &status, WNOHANG) == pid { return }
            usleep(20_000)
        }
        kill(pid, SIGKILL)
        waitpid(pid, &status, 0)
    }

    func stopAll() {
        for name in simNames + ["controller"] + brokerNames { stop(name) }
        for name in Array(pids.keys) { stop(name) }
        try? FileManager.default.removeItem(atPath: dir)
    }

    func log(_ name: String) -> String { (try? String(contentsOfFile: "\(dir)/\(name).log", encoding: .utf8)) ?? "" }

    /// The simulators' last status lines, as numbers, summed over `names`.
    func simStats(_ names: [String]) -> [String: Double] {
        var total: [String: Double] = [:]
        for name in names {
            guard let line = log(name).split(separator: "\n").last(where: { $0.hasPrefix("{") }),
                let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            else { continue }
            total.merge(object.compactMapValues { ($0 as? NSNumber)?.doubleValue }) { $0 + $1 }
        }
        return total
    }

    // MARK: the controller's API

    func request(_ method: HTTPMethod, _ path: String, body: String? = nil) async throws -> (Int, Data) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(apiPort)\(path)")
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/yaml")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 256 << 20)
        return (Int(response.status.code), Data(bytes.readableBytesView))
    }

    func get(_ path: String) async throws -> [String: Any] {
        let (code, data) = try await request(.GET, path)
        guard code == 200, let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else { throw BenchError("GET \(path): \(code)") }
        return object
    }

    func apply(_ manifest: String) async throws {
        let (code, data) = try await request(.POST, "/v1/workloads", body: manifest)
        guard (200..<300).contains(code) else { throw BenchError("apply: \(code) \(String(decoding: data, as: UTF8.self))") }
    }

    /// (online devices, running replicas) from `/v1/status`.
    func fleet() async throws -> (online: Int, running: Int) {
        let fleet = try await get("/v1/status")["fleet"] as? [String: Any]
        return (fleet?["online"] as? Int ?? -1, fleet?["runningReplicas"] as? Int ?? -1)
    }

    /// One sample of the controller's `/metrics`, by its whole series name.
    func metric(_ series: String) async throws -> Double {
        let (_, data) = try await request(.GET, "/metrics")
        let line = String(decoding: data, as: UTF8.self).split(separator: "\n").first { $0.hasPrefix(series + " ") }
        return line.flatMap { Double($0.dropFirst(series.count + 1)) } ?? 0
    }

    /// Waits until `condition` holds, checking every `every`; false after `timeout`.
    func until(_ timeout: Duration, every: Duration = .milliseconds(100), _ condition: () async throws -> Bool) async rethrows -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try? await Task.sleep(for: every)
        }
        return try await condition()
    }

    /// CPU seconds (user + system) and resident memory of a process.
    static func usage(_ pid: pid_t) -> (cpu: Double, rss: Int64, peak: Int64) {
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
        let ticks = fields.count > 12 ? (Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0) : 0
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        func kib(_ key: String) -> Int64 {
            let line = status.split(separator: "\n").first { $0.hasPrefix(key) }
            return (line?.split(separator: " ").dropFirst().first.flatMap { Int64($0) } ?? 0) * 1024
        }
        return (ticks / Double(sysconf(Int32(_SC_CLK_TCK))), kib("VmRSS:"), kib("VmHWM:"))
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
