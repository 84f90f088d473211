import AsyncHTTPClient
import NIOCore
import NIOSSL
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import DroverPOSIX
import Synchronization
import Testing

/// A process a test started; stopped by pid, always.
final class TestProcess: @unchecked Sendable {
    let pid: pid_t
    let name: String
    let logPath: String
    private var exited = false

    init(_ executable: String, _ arguments: [String], log: String, environment: [String: String] = [:]) throws {
        var spawn = Spawn(executable: executable, arguments: arguments, environment: ProcessInfo.processInfo.environment.merging(environment) { $1 })
        spawn.outputPath = log
        let pid = try spawn.run()
        self.pid = pid
        self.name = URL(fileURLWithPath: executable).lastPathComponent
        self.logPath = log
    }

    var isRunning: Bool {
        if exited { return false }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid {
            exited = true
            exitCode = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        }
        return !exited
    }

    /// The exit code once it has exited (128 + signal when killed).
    private(set) var exitCode: Int32?

    /// SIGTERM (or `signal`), then SIGKILL if it has not exited within `grace`.
    func stop(signal: Int32 = SIGTERM, grace: Duration = .seconds(10)) async {
        guard isRunning else { return }
        kill(pid, signal)
        let deadline = ContinuousClock.now + grace
        while isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        if isRunning {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            exited = true
        }
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

enum Harness {
    /// The executables sit next to the test bundle in the build directory.
    static let binDir: String = {
        if let dir = ProcessInfo.processInfo.environment["DROVER_BIN_DIR"] { return dir }
        var url = URL(fileURLWithPath: CommandLine.arguments.first { $0.contains(".xctest") } ?? CommandLine.arguments[0])
        while url.path != "/", !FileManager.default.fileExists(atPath: url.appendingPathComponent("drover-agent").path) {
            url.deleteLastPathComponent()
        }
        return url.path
    }()

    static func binary(_ name: String) -> String { binDir + "/" + name }

    static let repoRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static func temporaryDirectory(_ label: String) throws -> String {
        let path = NSTemporaryDirectory() + "drover-it-\(label)-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// A free loopback port never handed out before in this test run: tests run side by side,
    /// and a port freed by one probe could otherwise go to two brokers or two APIs at once.
    /// A loopback port that something else holds (a listening socket), for tests of what a
    /// daemon does when its port is taken. Close the descriptor to free it.
    static func holdPort() throws -> (fd: Int32, port: Int) {
        guard let (fd, port) = bindLoopbackSocket() else { throw HarnessError("cannot bind a loopback port") }
        guard listen(fd, 1) == 0 else {
            close(fd)
            throw HarnessError("cannot listen on a loopback port")
        }
        return (fd, port)
    }

    static func freePort() throws -> Int {
        for _ in 0..<100 {
            guard let port = freeLoopbackPort() else { break }
            if handedOut.withLock({ $0.insert(port).inserted }) { return port }
        }
        throw HarnessError("no free loopback port")
    }

    private static let handedOut = Mutex<Set<Int>>([])

    /// Polls `condition` until it holds or `timeout` passes.
    static func eventually(_ timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async rethrows -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return try await condition()
    }

    /// Runs a command to completion; returns its exit status and its stdout and stderr together.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        let log = NSTemporaryDirectory() + "drover-run-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: log) }
        let p = try TestProcess(executable, arguments, log: log, environment: environment)
        var status: Int32 = 0
        waitpid(p.pid, &status, 0)
        return ((status >> 8) & 0xff, p.log)
    }

    /// Kills, by pid, every process whose working directory lies under `dir`: the replicas
    /// that agents started, which outlive their agent by design.
    static func killProcesses(under dir: String) {
        for pid in processes(under: dir) { kill(pid, SIGKILL) }
    }

    static func processes(under dir: String) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { pid_t($0) }.filter { pid in
            guard let cwd = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd") else { return false }
            return cwd.hasPrefix(dir + "/")
        }
    }

    /// True when `pid` is a live, non-zombie process.
    static func isAlive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(close, offsetBy: 2)]
        return state != "Z" && state != "X"
    }
}

/// A mosquitto the test owns, on a random loopback port.
final class TestBroker: @unchecked Sendable {
    let port: Int
    let dir: String
    private(set) var process: TestProcess

    /// `alsoOn`: another address to listen on (a veth the test made), same port.
    /// `tls`: serve TLS only, with this certificate and key (PEM files).
    /// `extra`: more configuration lines (a bridge).
    init(dir: String, port: Int? = nil, alsoOn: String? = nil, tls: (certificate: String, key: String)? = nil, extra: [String] = []) throws {
        self.dir = dir
        self.port = try port ?? Harness.freePort()
        let config = dir + "/mosquitto.conf"
        // Subscriptions are logged too (a test counts a client's SUBSCRIBEs).
        var lines = [
            "listener \(self.port) 127.0.0.1", "allow_anonymous true", "max_queued_messages 10000", "persistence false",
            "log_type error", "log_type warning", "log_type notice", "log_type information", "log_type subscribe",
        ]
        if let alsoOn { lines.insert("listener \(self.port) \(alsoOn)", at: 1) }
        if let tls { lines.insert(contentsOf: ["certfile \(tls.certificate)", "keyfile \(tls.key)"], at: 1) }
        if geteuid() == 0 { lines.append("user root") }
        lines += extra
        try lines.joined(separator: "\n").appending("\n").write(toFile: config, atomically: true, encoding: .utf8)
        process = try Self.start(config: config, dir: dir)
        try Self.waitForListener(port: self.port)
    }

    var url: String { "mqtt://127.0.0.1:\(port)" }

    private static func start(config: String, dir: String) throws -> TestProcess {
        try TestProcess("/usr/sbin/mosquitto", ["-c", config], log: dir + "/mosquitto.log")
    }

    static func waitForListener(port: Int) throws {
        for _ in 0..<100 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            let ok = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
            }
            close(fd)
            if ok { return }
            usleep(50_000)
        }
        throw HarnessError("broker did not listen on \(port)")
    }

    func restart() async throws {
        await process.stop()
        process = try Self.start(config: dir + "/mosquitto.conf", dir: dir)
        try Self.waitForListener(port: port)
    }

    /// A crash: SIGKILL, so everything it held only in memory is gone.
    func kill() async {
        await process.stop(signal: SIGKILL)
    }

    func start() throws {
        process = try Self.start(config: dir + "/mosquitto.conf", dir: dir)
        try Self.waitForListener(port: port)
    }

    func stop() async {
        await process.stop()
        try? FileManager.default.removeItem(atPath: dir)
    }
}

/// The REST API, as a client outside the controller sees it: over HTTPS, it trusts the
/// controller's CA only.
struct APIClient {
    let base: String
    /// Sent as `Authorization: Bearer` when set.
    var token: String?
    /// PEM file of the CA an HTTPS controller's certificate must lead to.
    var ca: String?

    func request(_ method: String, _ path: String, body: String? = nil) async throws -> (Int, [String: Any], Data) {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let ca { tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca)) }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(10))
        var request = HTTPClientRequest(url: base + path)
        request.method = .init(rawValue: method)
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        let (status, data) = try await HTTPClient.withHTTPClient(configuration: configuration) { client in
            let response = try await client.execute(request, timeout: .seconds(10))
            let bytes = try await response.body.collect(upTo: 64 << 20)
            return (Int(response.status.code), Data(bytes.readableBytesView))
        }
        let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        return (status, json, data)
    }

    func get(_ path: String) async throws -> [String: Any] { try await request("GET", path).1 }

    func list(_ path: String) async throws -> [[String: Any]] {
        let (_, _, data) = try await request("GET", path)
        return (try? JSONSerialization.jsonObject(with: data)) as? [[String: Any]] ?? []
    }

    func isUp() async -> Bool { ((try? await request("GET", "/v1/health"))?.0 ?? 0) == 200 }
}
