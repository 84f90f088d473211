import ArgumentParser
import DroverCore
import DroverPOSIX
import DroverProtocol
import Foundation

/// Beats through the controller against the raw broker: the same beats, published by the same
/// `mosquitto_pub` processes to the same broker, received once by `mosquitto_sub` (the
/// baseline) and once by the controller (decoded, checked and applied).
struct IngestBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ingest", abstract: "Beat ingest through the controller, beside mosquitto_sub.")

    @Option(help: "Directory of the release binaries (drover-controller, drover-sim).")
    var bin: String

    @Option(help: "Publishing devices (one mosquitto_pub each).")
    var publishers: Int = 20

    @Option(help: "Beats in all.")
    var beats: Int = 100_000

    @Option(help: "Rounds, each the baseline and then the controller on a fresh broker; the median ratio is reported.")
    var rounds: Int = 3

    func run() async throws {
        let bed = try LoadBed(bin: bin)
        defer { bed.stopAll() }
        let perDevice = beats / publishers
        let total = perDevice * publishers
        let ids = (0..<publishers).map { "sim-" + String(String($0 + 1_000_000).dropFirst()) }
        for id in ids { try Self.beatFile(id, count: perDevice).write(toFile: "\(bed.dir)/\(id).beats", atomically: true, encoding: .utf8) }
        // The machine is shared: one baseline and one controller run side by side in time,
        // round after round, and each round gives its own ratio.
        var results: [(raw: Double, drover: Double)] = []
        var cpu: [(raw: Double, drover: Double)] = []
        var dropped = 0.0
        for _ in 0..<max(1, rounds) {
            // A fresh broker: a stopped controller's session would otherwise queue the next
            // baseline's beats.
            try bed.startBroker()
            let (raw, rawCPU) = try await baseline(bed, ids, total)
            let (drover, droverCPU, drops) = try await controller(bed, ids, total)
            results.append((raw, drover))
            cpu.append((rawCPU, droverCPU))
            dropped += drops
            for name in bed.simNames + ["controller", "mosquitto"] { bed.stop(name) }
            // And a controller of its own: nothing it heard in one round carries into the next.
            try? FileManager.default.removeItem(atPath: bed.dir + "/controller")
        }
        let ratios = results.map { $0.raw / $0.drover }
        let sorted = ratios.sorted()
        let median = (sorted[(sorted.count - 1) / 2] + sorted[sorted.count / 2]) / 2
        let f = { (xs: [Double]) in xs.map { String(Int(Double(total) / $0)) }.joined(separator: ", ") }
        print("| what | beats/s, round by round | of raw |")
        print("|---|---|---|")
        print("| mosquitto_sub (raw, the baseline): \(total) beats from \(publishers) mosquitto_pub, QoS 1 | \(f(results.map(\.raw))) | 100 % |")
        print("| the controller: the same beats, decoded, checked and applied (\(Int(dropped)) dropped) | \(f(results.map(\.drover))) | "
            + "\(ratios.map { "\(Int($0 * 100))" }.joined(separator: ", ")) %; median \(Int(median * 100)) % |")
        // CPU is steadier than throughput on a shared machine: what each receiver spent per beat.
        let perBeat = { (xs: [Double]) in xs.map { String(format: "%.1f", $0 / Double(total) * 1e6) }.joined(separator: ", ") }
        print("")
        print("CPU per beat received (µs, round by round): mosquitto_sub \(perBeat(cpu.map(\.raw))); the controller \(perBeat(cpu.map(\.drover)))")
    }

    /// mosquitto_sub takes them all: seconds, and its CPU seconds.
    private func baseline(_ bed: LoadBed, _ ids: [String], _ total: Int) async throws -> (Double, Double) {
        try bed.start("sub", "/usr/bin/mosquitto_sub", ["-h", "127.0.0.1", "-p", "\(bed.brokerPort)", "-q", "1", "-t", "drover/v1/dev/+/beat", "-C", "\(total)", "-V", "5"])
        try await Task.sleep(for: .milliseconds(500))
        let start = ContinuousClock.now
        try publish(bed, ids)
        let done = await bed.until(.seconds(300), every: .milliseconds(5)) { bed.exited("sub") }
        let raw = Double(micros(since: start)) / 1e6
        guard done else { throw BenchError("mosquitto_sub did not get all \(total) beats") }
        waitPublishers(bed)
        return (raw, bed.exitCPU["sub"] ?? 0)
    }

    /// The devices are known (simulated, idle), then the same beats arrive: seconds, the
    /// controller's CPU seconds meanwhile, and the malformed messages counted.
    private func controller(_ bed: LoadBed, _ ids: [String], _ total: Int) async throws -> (Double, Double, Double) {
        try await bed.startController()
        try bed.startSim(devices: publishers, [])
        try await fleetOnline(bed, publishers, within: .seconds(60))
        let series = "drover_messages_received_total{channel=\"beat\"}"
        let before = try await bed.metric(series)
        guard let pid = bed.pids["controller"] else { throw BenchError("lost the controller") }
        let cpuBefore = LoadBed.usage(pid).cpu
        let start = ContinuousClock.now
        try publish(bed, ids)
        // Each look at /metrics costs the controller a render: every 5 ms only near the end
        // (mosquitto_sub's end is seen every 5 ms for nothing), every 50 ms before.
        var seen = before
        let done = await bed.until(.seconds(300), every: .milliseconds(5)) {
            if seen < before + Double(total) * 0.95 { try? await Task.sleep(for: .milliseconds(45)) }
            seen = (try? await bed.metric(series)) ?? seen
            return seen >= before + Double(total)
        }
        let drover = Double(micros(since: start)) / 1e6
        let cpu = LoadBed.usage(pid).cpu - cpuBefore
        guard done else { throw BenchError("the controller took \(Int(((try? await bed.metric(series)) ?? 0) - before)) of \(total) beats") }
        waitPublishers(bed)
        return (drover, cpu, try await bed.metric("drover_messages_dropped_total{reason=\"malformed\"}"))
    }

    /// A whole beat, as an agent's first after connecting, once per line.
    static func beatFile(_ id: String, count: Int) -> String {
        var beat = Beat(
            device: id, time: 1_795_600_000_000, usage: Usage(cpuPercent: 12.5, memoryUsedBytes: 300 << 20, memoryTotalBytes: 1 << 30, diskUsedBytes: 2 << 30, diskTotalBytes: 16 << 30),
            phases: ["running": 2])
        beat.replicaCPU = ["w-0": 120, "w-1": 40]
        (beat.generation, beat.reportSeq, beat.digest, beat.rtt) = (0, 0, "8c3f0e9a1b2d4c5e", 2.5)
        let line = WireCodec.encodeText(beat)
        return String(repeating: line + "\n", count: count)
    }

    private func publish(_ bed: LoadBed, _ ids: [String]) throws {
        for id in ids {
            var spawn = Spawn(
                executable: "/usr/bin/mosquitto_pub",
                arguments: ["-h", "127.0.0.1", "-p", "\(bed.brokerPort)", "-q", "1", "-V", "5", "-l", "-t", Topic.device(id, .beat), "-i", "pub-\(id)"],
                environment: ProcessInfo.processInfo.environment)
            spawn.stdinPath = "\(bed.dir)/\(id).beats"
            try bed.adopt("pub-\(id)", spawn.run())
        }
    }

    private func waitPublishers(_ bed: LoadBed) {
        for name in bed.pids.keys where name.hasPrefix("pub-") { bed.stop(name) }
    }
}
