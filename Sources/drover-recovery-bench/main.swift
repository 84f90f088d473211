// Recovery figures with real processes: a controller on the embedded default and N real agents
// (100 by default), each running one replica of a `mode: every` workload. Then:
//   1. the managed broker is killed (kill -9) and comes back;
//   2. the controller is stopped and started again.
// For each, the time from the broker's return until every device has been heard again and every
// replica's phase and pid are right in the API, and how many replicas restarted or moved (target:
// zero). Run through tools/bench (release build). Prints figures; never fails on a time.
import DroverPOSIX
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

struct BenchError: Error, CustomStringConvertible {
    var description: String
}

let arguments = CommandLine.arguments.dropFirst()
let count = arguments.firstIndex(of: "--agents").flatMap { arguments.index(after: $0) < arguments.endIndex ? Int(arguments[arguments.index(after: $0)]) : nil } ?? 100
let binDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
let dir = NSTemporaryDirectory() + "drover-recovery-bench-" + UUID().uuidString.prefix(8)
try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)

var children: [pid_t] = []
@MainActor func start(_ name: String, _ args: [String], log: String) throws -> pid_t {
    var spawn = Spawn(executable: binDir + "/" + name, arguments: args, environment: Spawn.currentEnvironment)
    spawn.outputPath = dir + "/" + log
    let pid = try spawn.run()
    children.append(pid)
    return pid
}

@MainActor func stop(_ pid: pid_t, signal: Int32 = SIGTERM) {
    kill(pid, signal)
    var status: Int32 = 0
    for _ in 0..<200 {
        if waitpid(pid, &status, WNOHANG) == pid { return }
        usleep(50_000)
    }
    kill(pid, SIGKILL)
    waitpid(pid, &status, 0)
}

/// The controller's admin token (written at its first start).
@MainActor func adminToken() -> String { ((try? String(contentsOfFile: dir + "/controller/admin.token", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines) }

@MainActor func call(_ method: String, _ path: String, body: Data? = nil) async -> Data? {
    guard let url = URL(string: "http://127.0.0.1:\(apiPort)" + path) else { return nil }
    var request = URLRequest(url: url)
    request.httpMethod = method
    request.httpBody = body
    request.setValue("Bearer \(adminToken())", forHTTPHeaderField: "Authorization")
    guard let (data, response) = try? await URLSession.shared.data(for: request), ((response as? HTTPURLResponse)?.statusCode ?? 0) < 300 else { return nil }
    return data
}

@MainActor func get(_ path: String) async -> Any? {
    guard let data = await call("GET", path) else { return nil }
    return try? JSONSerialization.jsonObject(with: data)
}

@MainActor func until(_ timeout: Duration, _ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return false
}

@MainActor func listening(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    return withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 } }
}

@MainActor func isAlive(_ pid: Int) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return false }
    let state = stat[stat.index(close, offsetBy: 2)]
    return state != "Z" && state != "X"
}

/// (replica id → "device:pid:restarts") for running replicas whose process is alive.
@MainActor func replicaView() async -> [String: String] {
    guard let view = await get("/v1/workloads/probe") as? [String: Any], let rows = view["replicas"] as? [[String: Any]] else { return [:] }
    var result: [String: String] = [:]
    for r in rows {
        guard r["phase"] as? String == "running", let id = r["id"] as? String, let pid = r["pid"] as? Int, isAlive(pid) else { continue }
        result[id] = "\(r["device"] as? String ?? "?"):\(pid):\(r["restarts"] as? Int ?? -1)"
    }
    return result
}

/// Devices the controller has heard from since `since` (epoch milliseconds).
@MainActor func heardSince(_ since: Int64) async -> Int {
    guard let devices = await get("/v1/devices") as? [[String: Any]] else { return 0 }
    return devices.filter { (($0["record"] as? [String: Any])?["lastSeen"] as? Int).map { Int64($0) >= since } ?? false }.count
}

@MainActor func events(_ kind: String) async -> Int {
    guard let list = await get("/v1/events?limit=10000") as? [[String: Any]] else { return 0 }
    return list.filter { $0["kind"] as? String == kind }.count
}

@MainActor func nowMillis() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

let apiPort = freeLoopbackPort() ?? 7979
let controllerArgs = ["--data-dir", dir + "/controller", "--listen", "127.0.0.1:\(apiPort)"]
var controller = try start("drover-controller", controllerArgs, log: "controller.log")
defer {
    for pid in children { kill(pid, SIGKILL) }
    if let text = try? String(contentsOfFile: dir + "/controller/mosquitto.pid", encoding: .utf8), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) { kill(pid, SIGKILL) }
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
        guard let pid = Int32(entry), let cwd = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd"), cwd.hasPrefix(dir + "/") else { continue }
        kill(pid, SIGKILL)
    }
    try? FileManager.default.removeItem(atPath: dir)
}
guard await until(.seconds(30), { await get("/v1/status") != nil }) else { throw BenchError(description: "controller did not start") }
guard let status = await get("/v1/status") as? [String: Any], let broker = (status["controller"] as? [String: Any])?["brokerURL"] as? String,
    let brokerPort = Int(broker.split(separator: ":").last ?? "")
else { throw BenchError(description: "no broker URL") }

let joinStart = ContinuousClock.now
// Each agent enrolls with a one-time token, as on the managed broker it must.
for i in 0..<count {
    let id = "dev-\(String(1000 + i).dropFirst())"
    guard let issued = await call("POST", "/v1/devices/\(id)/enroll", body: Data("{}".utf8)),
        let token = (try? JSONSerialization.jsonObject(with: issued) as? [String: Any])?["token"] as? String
    else { throw BenchError(description: "cannot enroll \(id)") }
    let tokenFile = dir + "/token-\(id)"
    try token.write(toFile: tokenFile, atomically: true, encoding: .utf8)
    _ = try start(
        "drover-agent",
        ["--controller", "http://127.0.0.1:\(apiPort)", "--token-file", tokenFile, "--data-dir", dir + "/agents/" + id, "--capacity", "cpu=1,memory=256Mi",
         "--labels", "role=probe", "--workload-user", "nobody"],
        log: "agent-\(id).log")
}
guard await until(.seconds(120), { await heardSince(0) == count }) else {
    let heard = await heardSince(0)
    let logs = (0..<count).compactMap { i -> String? in
        let id = "dev-\(String(1000 + i).dropFirst())"
        let log = (try? String(contentsOfFile: dir + "/agent-\(id).log", encoding: .utf8)) ?? ""
        return log.contains("connected to broker") ? nil : "\(id): \(log.suffix(300))"
    }
    throw BenchError(description: "\(heard) of \(count) agents joined; not connected: \(logs.prefix(3).joined(separator: "\n"))")
}
let manifest = """
    apiVersion: drover/v1
    kind: Workload
    metadata: {name: probe}
    spec:
      mode: every
      selector: {matchLabels: {role: probe}}
      resources: {cpu: 10m, memory: 1Mi}
      connectivity: {tolerateOffline: 1s}
      command: ["/bin/sh", "-c", "exec sleep 100000"]
    """
guard await call("POST", "/v1/workloads", body: Data(manifest.utf8)) != nil else { throw BenchError(description: "the workload was refused") }
guard await until(.seconds(120), { await replicaView().count == count }) else { throw BenchError(description: "replicas did not all run") }
print("\(count) agents joined and \(count) replicas running after \(ContinuousClock.now - joinStart)")

/// One fault: `act` breaks something and returns when the broker listens again; then the time
/// until every device is heard and every replica is as before.
@MainActor func measure(_ name: String, _ act: () async throws -> Void) async throws {
    let before = await replicaView()
    let unreachableBefore = await events("DeviceUnreachable")
    try await act()
    let back = ContinuousClock.now
    let backMillis = nowMillis()
    let converged = await until(.seconds(60)) {
        guard await heardSince(backMillis) == count else { return false }
        return await replicaView() == before
    }
    let took = ContinuousClock.now - back
    let after = await replicaView()
    let changed = before.filter { after[$0.key] != $0.value }.count
    let unreachable = await events("DeviceUnreachable") - unreachableBefore
    let seconds = Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18
    print(String(format: "%@: every device heard and every replica right %.2f s after the broker was back%@; replicas restarted or moved: %d; devices recorded unreachable: %d",
                 name, seconds, converged ? "" : " (NOT converged within 60 s)", changed, unreachable))
}

try await measure("managed broker killed (kill -9)") {
    guard let text = try? String(contentsOfFile: dir + "/controller/mosquitto.pid", encoding: .utf8), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
        throw BenchError(description: "no broker pid")
    }
    kill(pid, SIGKILL)
    _ = await until(.seconds(5)) { !listening(brokerPort) }
    _ = await until(.seconds(30)) { listening(brokerPort) }
}
try await Task.sleep(for: .seconds(3))
try await measure("controller restarted (SIGTERM, then started again)") {
    stop(controller)
    try? await Task.sleep(for: .seconds(1))
    controller = try start("drover-controller", controllerArgs, log: "controller-2.log")
    _ = await until(.seconds(30)) { listening(brokerPort) }
}
