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

    func run() async throws {
        let bed = try LoadBed(bin: bin)
        defer { bed.stopAll() }
        try bed.startBroker()
        let perDevice = beats / publishers
        let total = perDevice * publishers
        let ids = (0..<publishers).map { "sim-" + String(String($0 + 1_000_000).dropFirst()) }
        for id in ids { try Self.beatFile(id, count: perDevice).write(toFile: "\(bed.dir)/\(id).beats", atomically: true, encoding: .utf8) }

        // The baseline: mosquitto_sub takes them all.
        try bed.start("sub", "/usr/bin/mosquitto_sub", ["-h", "127.0.0.1", "-p", "\(bed.brokerPort)", "-q", "1", "-t", "drover/v1/dev/+/beat", "-C", "\(total)", "-V", "5"])
        try await Task.sleep(for: .milliseconds(500))
        var start = ContinuousClock.now
        try publish(bed, ids)
        let subDone = await bed.until(.seconds(300), every: .milliseconds(5)) { bed.exited("sub") }
        let raw = Double(micros(since: start)) / 1e6
        guard subDone else { throw BenchError("mosquitto_sub did not get all \(total) beats") }
        waitPublishers(bed)

        // Drover: the devices are known (simulated, idle), then the same beats arrive.
        try await bed.startController()
        try bed.startSim(devices: publishers, [])
        try await fleetOnline(bed, publishers, within: .seconds(60))
        let series = "drover_messages_received_total{channel=\"beat\"}"
        let before = try await bed.metric(series)
        start = ContinuousClock.now
        try publish(bed, ids)
        let done = await bed.until(.seconds(300), every: .milliseconds(5)) { ((try? await bed.metric(series)) ?? 0) >= before + Double(total) }
        let drover = Double(micros(since: start)) / 1e6
        guard done else { throw BenchError("the controller took \(Int((try? await bed.metric(series)) ?? 0 - before)) of \(total) beats") }
        waitPublishers(bed)
        let dropped = try await bed.metric("drover_messages_dropped_total{reason=\"malformed\"}")
        print("| what | beats/s | of raw |")
        print("|---|---|---|")
        print("| mosquitto_sub (raw, the baseline): \(total) beats from \(publishers) mosquitto_pub, QoS 1 | \(Int(Double(total) / raw)) | 100 % |")
        print("| the controller: the same beats, decoded, checked and applied (\(Int(dropped)) dropped) | \(Int(Double(total) / drover)) | \(Int(raw / drover * 100)) % |")
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
