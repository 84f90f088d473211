import Foundation
import Testing

@Suite("drover logs", .serialized)
struct LogsTests {
    @Test("drover logs returns the tail of a running replica's output from its device, and a clear error for an offline device")
    func logs() async throws {
        try await FleetTestbed.run("logs", unreachableAfter: 1, Self.body)
    }

    /// Runs `talker` (a line every 50 ms) on the one device and asks for its last 3 lines.
    static func tailOfTalker(_ bed: FleetTestbed) async throws {
        try await bed.apply(AgentTests.manifest("talker", command: "i=0; while :; do i=$((i+1)); echo line $i; sleep 0.05; done"))
        #expect(await Harness.eventually { (try? await bed.running("talker").count) == 1 })
        try await Task.sleep(for: .seconds(1))
        let (status, output) = try bed.drover(["logs", "talker", "--tail", "3"])
        let lines = output.split(separator: "\n")
        #expect(status == 0 && lines.count == 3 && lines.allSatisfy { $0.hasPrefix("line ") }, "\(output)")
        let numbers = lines.compactMap { Int($0.dropFirst(5)) }
        #expect(numbers.count == 3 && numbers[1] == numbers[0] + 1 && numbers[2] == numbers[1] + 1, "consecutive, newest last: \(output)")
    }

    static func body(_ bed: FleetTestbed) async throws {
        try bed.startAgent("gw-1", labels: "role=gateway", capacity: "cpu=1,memory=256Mi")
        try await bed.waitForDevices(online: 1)
        try await tailOfTalker(bed)
        let unknown = try bed.drover(["logs", "talker", "--replica", "talker-7"])
        #expect(unknown.status != 0 && unknown.output.contains("no placed replica talker-7"), "\(unknown.output)")

        // The device goes away: its log stays on it, and the CLI says so in one line.
        await bed.agents["gw-1"]?.stop(signal: SIGKILL, grace: .seconds(5))
        try await bed.waitPastGrace()
        #expect(await Harness.eventually(.seconds(15)) {
            ((try? await bed.api.get("/v1/devices/gw-1"))?["record"] as? [String: Any])?["presence"] as? String == "unreachable"
        })
        let away = try bed.drover(["logs", "talker"])
        #expect(away.status != 0 && away.output.contains("device gw-1 is unreachable") && away.output.split(separator: "\n").count == 1, "\(away.output)")
    }
}
