import Foundation
import Testing

/// `--metrics-listen`: the agent's own metrics on a loopback port, only when asked.
@Suite("Agent metrics")
struct AgentMetricsTests {
    static func fetch(_ url: String) async throws -> (Int, String) {
        let (status, _, data) = try await APIClient(base: url).request("GET", "")
        return (status, String(decoding: data, as: UTF8.self))
    }

    /// One unlabelled sample of the agent's metrics.
    static func value(port: Int, _ name: String) async throws -> Double {
        let text = try await fetch("http://127.0.0.1:\(port)/metrics").1
        let line = text.split(separator: "\n").first { $0.hasPrefix(name + " ") }
        return try #require(line.flatMap { Double($0.dropFirst(name.count + 1)) }, "\(name) in \(text)")
    }

    @Test("an agent asked for metrics serves its replicas, its link and its outbox on 127.0.0.1; any other host is refused at start")
    func metrics() async throws {
        let refused = try Harness.run(Harness.binary("drover-agent"), ["--id", "gw-x", "--broker", "mqtt://127.0.0.1:1", "--data-dir", NSTemporaryDirectory() + "drover-never", "--metrics-listen", "0.0.0.0:9101"])
        #expect(refused.status != 0 && refused.output.contains("--metrics-listen") && refused.output.contains("127.0.0.1 only"), "\(refused.output)")
        try await FleetTestbed.run("agent-metrics", Self.body)
    }

    static func body(_ bed: FleetTestbed) async throws {
        let port = try Harness.freePort()
        try bed.startAgent("gw-1", labels: "site=a", capacity: "cpu=1,memory=256Mi", extra: ["--metrics-listen", "127.0.0.1:\(port)"])
        try await bed.waitForDevices(online: 1)
        try await bed.apply("""
            apiVersion: drover/v1
            kind: Workload
            metadata: {name: m}
            spec: {replicas: 1, command: [/bin/sleep, "1000"]}
            """)
        var text = ""
        let served = await Harness.eventually(.seconds(20)) {
            text = (try? await fetch("http://127.0.0.1:\(port)/metrics"))?.1 ?? ""
            // Running, and its report acknowledged by the broker.
            return text.contains("drover_agent_replicas{phase=\"running\"} 1\n") && text.contains("drover_agent_outbox_pending 0\n")
        }
        #expect(served, "\(text)")
        #expect(text.contains("drover_agent_broker_connected 1\n") && text.contains("# TYPE drover_agent_beats_sent_total counter"))
        #expect(!text.contains("drover_agent_reports_sent_total 0\n"), "reports were sent: \(text)")
        #expect(text.contains("drover_agent_applied_generation 1\n"))
        let other = try await fetch("http://127.0.0.1:\(port)/")
        #expect(other.0 == 404)

        // A local client that connects and says nothing does not hold the server (2 s at most;
        // the time is not checked, the machine is shared).
        let idle = try #require(Self.connect(port))
        defer { close(idle) }
        let again = try await fetch("http://127.0.0.1:\(port)/metrics")
        #expect(again.0 == 200)

        // A port that is taken: the agent logs it and runs on without metrics.
        let taken = try #require(Self.connect(port))
        close(taken)
        try bed.startAgent("gw-2", labels: "site=a", capacity: "cpu=1,memory=256Mi", extra: ["--metrics-listen", "\(port)"])
        try await bed.waitForDevices(online: 2)
        try await Task.sleep(for: .seconds(1))
        #expect(bed.agents["gw-2"]?.isRunning == true, "an agent whose metrics port is taken still runs")
    }

    /// A TCP connection to 127.0.0.1:`port`, or nil.
    static func connect(_ port: Int) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let ok = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if ok != 0 { close(fd) }
        return ok == 0 ? fd : nil
    }
}
