import Foundation
import Testing

/// A unix datagram socket standing in for systemd's notify socket (PID 1 here is not systemd).
/// Like systemd it must be read continuously: once its queue is full, sd_notify blocks.
final class NotifySocket: @unchecked Sendable {
    let path: String
    let fd: Int32

    init(dir: String, name: String) throws {
        path = dir + "/\(name).sock"
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            let bytes = Array(path.utf8.prefix(raw.count - 1))
            raw.copyBytes(from: bytes + [0])
        }
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0 }
        }
        guard fd >= 0, ok else { throw HarnessError("cannot bind \(path)") }
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    private let lock = NSLock()
    private var received: [String] = []
    private var reading = true

    /// Reads on a thread of its own until `finish()`, as systemd would.
    func startReading() {
        Thread.detachNewThread { [self] in
            while lock.withLock({ reading }) {
                let batch = receive(for: .milliseconds(100))
                lock.withLock { received += batch }
            }
        }
    }

    func finish() { lock.withLock { reading = false } }

    /// Everything read so far, and forgets it.
    func take() -> [String] { lock.withLock { defer { received = [] }; return received } }

    /// Every datagram received within `duration`.
    func receive(for duration: Duration) -> [String] {
        var messages: [String] = []
        let deadline = ContinuousClock.now + duration
        var buffer = [UInt8](repeating: 0, count: 4096)
        while ContinuousClock.now < deadline {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { messages.append(String(decoding: buffer[0..<n], as: UTF8.self)) }
        }
        return messages
    }
}

@Suite("systemd notify and watchdog", .serialized)
struct SystemdTests {
    @Test("controller and agent report READY=1 and feed the watchdog when systemd asks for it")
    func readyAndWatchdog() async throws {
        let bed = try FleetTestbed(label: "systemd")
        do {
            let notify = try NotifySocket(dir: bed.dir, name: "controller")
            let agentNotify = try NotifySocket(dir: bed.dir, name: "agent")
            // The controller: started by hand here to give it the notify environment.
            bed.controller = try TestProcess(
                Harness.binary("drover-controller"),
                ["--data-dir", bed.dir + "/controller", "--listen", "127.0.0.1:\(bed.apiPort)"],
                log: bed.dir + "/controller.log", environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"])
            notify.startReading()
            defer { notify.finish() }
            try await Task.sleep(for: .seconds(4))
            let controllerMessages = notify.take()
            #expect(controllerMessages.filter { $0.hasPrefix("READY=1") }.count == 1, "only the controller may say READY: got \(controllerMessages)")
            #expect(controllerMessages.contains { $0.hasPrefix("READY=1") }, "got \(controllerMessages)")
            #expect(controllerMessages.filter { $0 == "WATCHDOG=1" }.count >= 3, "got \(controllerMessages)")
            try bed.loadAdminToken()
            let status = try await bed.api.get("/v1/status")
            bed.brokerURL = (status["controller"] as? [String: Any])?["brokerURL"] as? String ?? ""

            bed.environment = ["NOTIFY_SOCKET": agentNotify.path, "WATCHDOG_USEC": "400000"]
            try bed.startAgent("gw-1", labels: "role=gateway", capacity: "cpu=1,memory=256Mi")
            let agentMessages = agentNotify.receive(for: .seconds(3))
            #expect(agentMessages.contains { $0.hasPrefix("READY=1\nSTATUS=device gw-1") }, "got \(agentMessages)")
            #expect(agentMessages.filter { $0 == "WATCHDOG=1" }.count >= 3)
            await bed.agents["gw-1"]?.stop()
            #expect(agentNotify.receive(for: .milliseconds(500)).contains("STOPPING=1"))
            await bed.controller?.stop()
            // The reader thread collects in 100 ms batches.
            var seen: [String] = []
            #expect(await Harness.eventually(.seconds(3)) {
                seen += notify.take()
                return seen.contains("STOPPING=1")
            })
        } catch {
            Issue.record("\(error)")
        }
        await bed.shutdown()
    }

    @Test("the unit files ask for notify, a watchdog and restart on failure")
    func unitFiles() throws {
        for name in ["drover-controller", "drover-agent"] {
            let unit = try String(contentsOfFile: Harness.repoRoot + "/fleet-configs/systemd/\(name).service", encoding: .utf8)
            #expect(unit.contains("Type=notify"))
            #expect(unit.contains("WatchdogSec="))
            #expect(unit.contains("Restart=on-failure"))
            #expect(unit.contains("ExecStart=/usr/local/bin/\(name) "))
        }
    }
}
