// End-to-end figures with simulated devices: apply → every replica running over 1,000
// devices (an HdrHistogram of repeated applies, beside a minimal controller's floor on the same
// broker and devices), and a fleet of 10,000 devices on one controller (its CPU and memory, beats
// lost). Run by tools/bench in release mode; prints Markdown rows, never fails on a time.
import ArgumentParser
import DroverCore
import DroverMQTT
import DroverProtocol
import Foundation
import Histogram

@main
struct LoadBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drover-load-bench", abstract: "Drover end to end with drover-sim devices.", subcommands: [ApplyBench.self, FleetBench.self, IngestBench.self])
}

struct Common: ParsableArguments {
    @Option(help: "Directory of the release binaries (drover-controller, drover-sim).")
    var bin: String

    @Option(help: "Simulated devices.")
    var devices: Int = 1000
}

func workload(_ replicas: Int, tag: Int = 0) -> String {
    """
    apiVersion: drover/v1
    kind: Workload
    metadata: {name: load}
    spec:
      replicas: \(replicas)
      resources: {cpu: 100m, memory: 16Mi}
      env: {TAG: "\(tag)"}
      command: [/bin/sleep, "100000"]
    """
}

func micros(since start: ContinuousClock.Instant) -> UInt64 {
    let c = (ContinuousClock.now - start).components
    return UInt64(max(0, c.seconds)) * 1_000_000 + UInt64(max(0, c.attoseconds)) / 1_000_000_000_000
}

func summary(_ h: Histogram<UInt64>) -> String {
    let ms = { (p: Double) in String(format: "%.0f", Double(h.valueAtPercentile(p)) / 1000) }
    return "p50 \(ms(50)) ms, p90 \(ms(90)) ms, p99 \(ms(99)) ms, max \(String(format: "%.0f", Double(h.max) / 1000)) ms (n = \(h.totalCount))"
}

/// Waits until all `devices` are online; throws with the simulator's last words otherwise.
func fleetOnline(_ bed: LoadBed, _ devices: Int, within: Duration) async throws {
    let up = await bed.until(within, every: .milliseconds(250)) { (try? await bed.fleet().online) == devices }
    guard up else { throw BenchError("\(devices) devices did not come online: \((try? await bed.fleet()).map { "\($0)" } ?? "?"); sim: \(bed.log("sim").suffix(600))") }
}

struct ApplyBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "apply", abstract: "Apply → every replica running, and scale to zero → none, repeated.")

    @OptionGroup var common: Common

    @Option(help: "Applies up and down.")
    var repeats: Int = 20

    @Option(help: "The simulated replica start time, ms (0: the control plane alone).")
    var startDelay: Int = 0

    func run() async throws {
        let n = common.devices
        let bed = try LoadBed(bin: common.bin)
        defer { bed.stopAll() }
        try bed.startBroker()
        try await bed.startController()
        try bed.startSim(devices: n, ["--start-delay", "\(startDelay)", "--connect-rate", "5000"])
        try await fleetOnline(bed, n, within: .seconds(120))
        // Each apply creates the replicas (from zero); the next scales them away again.
        var up = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        for r in 0..<repeats {
            let start = ContinuousClock.now
            try await bed.apply(workload(n, tag: r))
            guard await bed.until(.seconds(60), every: .milliseconds(10), { (try? await bed.fleet().running) == n }) else { throw BenchError("not all running after an apply") }
            up.record(micros(since: start))
            try await bed.apply(workload(0, tag: r))
            guard await bed.until(.seconds(60), every: .milliseconds(10), { (try? await bed.fleet().running) == 0 }) else { throw BenchError("replicas left after scaling to zero") }
            try await Task.sleep(for: .milliseconds(300))
        }
        // The floor: a minimal controller (no store, no plan) on the same broker and devices.
        bed.stop("controller")
        let floor = try await FloorController(bed: bed, devices: n).run(repeats: repeats)
        print("| what | Drover | floor (a minimal controller, same broker and devices) | ratio |")
        print("|---|---|---|---|")
        print("| apply → \(n) replicas running (\(n) devices, start delay \(startDelay) ms) | \(summary(up)) | \(summary(floor)) | \(ratio(up, floor)) |")
    }

    func ratio(_ a: Histogram<UInt64>, _ b: Histogram<UInt64>) -> String {
        String(format: "%.1fx at p50, %.1fx at p99", Double(a.valueAtPercentile(50)) / Double(max(1, b.valueAtPercentile(50))), Double(a.valueAtPercentile(99)) / Double(max(1, b.valueAtPercentile(99))))
    }
}

struct FleetBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "fleet", abstract: "Many devices on one controller: its CPU and memory, and beats lost.")

    @OptionGroup var common: Common

    @Option(help: "Seconds measured once every device is online.")
    var seconds: Int = 60

    @Option(help: "The devices' --idle-beat-interval (300 is the default; 1 makes every device beat each second).")
    var idleBeat: Double = 300

    @Option(help: "Edge brokers bridged to the controller's broker, for the devices (0: devices on the controller's broker).")
    var edgeBrokers: Int = 0

    func run() async throws {
        let n = common.devices
        let bed = try LoadBed(bin: common.bin)
        defer { bed.stopAll() }
        try bed.startBroker()
        try await bed.startController()
        let edges = edgeBrokers > 0 ? try bed.startEdgeBrokers(edgeBrokers) : nil
        let joinStart = ContinuousClock.now
        try bed.startSim(devices: n, brokers: edges, ["--connect-rate", "2000", "--idle-beat-interval", "\(idleBeat)", "--beat-interval", "\(min(5, idleBeat))"])
        try await fleetOnline(bed, n, within: .seconds(max(300, n / 200)))
        let joined = Double(micros(since: joinStart)) / 1e6
        guard let controller = bed.pids["controller"] else { throw BenchError("lost a process") }
        let brokers = bed.brokerNames.compactMap { bed.pids[$0] }
        let before = LoadBed.usage(controller)
        let brokerBefore = brokers.map(LoadBed.usage)
        try await Task.sleep(for: .seconds(seconds))
        let after = LoadBed.usage(controller)
        let brokerAfter = brokers.map(LoadBed.usage)
        // Stopped, the simulator sends nothing more; what the broker acknowledged arrives.
        let sims = bed.simNames
        for name in sims { bed.stop(name) }
        // What the brokers (and bridges) still hold arrives: until the count stands still for 3 s.
        var received = -1.0
        var still = 0
        for _ in 0..<120 where still < 3 {
            try await Task.sleep(for: .seconds(1))
            let now = try await bed.metric("drover_messages_received_total{channel=\"beat\"}")
            still = now == received ? still + 1 : 0
            received = now
        }
        let sent = bed.simStats(sims)["beats"] ?? 0
        let cpu = (after.cpu - before.cpu) / Double(seconds) * 100
        let brokerCPU = zip(brokerAfter, brokerBefore).map { $0.cpu - $1.cpu }.reduce(0, +) / Double(seconds) * 100
        let brokerRSS = brokerAfter.map(\.rss).reduce(0, +)
        let brokersUsed = edges.map { "\($0.count) edge brokers bridged to the controller's" } ?? "one broker"
        print(
            "| \(n) devices (\(brokersUsed)), idle beat \(Int(idleBeat)) s | all online in \(String(format: "%.1f", joined)) s | controller CPU \(String(format: "%.1f", cpu)) % of a core, RSS \(after.rss >> 20) MiB (peak \(after.peak >> 20) MiB) | beats \(Int(sent)) sent, \(Int(received)) received, \(max(0, Int(sent - received))) lost | brokers: CPU \(String(format: "%.1f", brokerCPU)) %, RSS \(brokerRSS >> 20) MiB |"
        )
    }
}
