import ArgumentParser
import CMosquitto
import DroverCore
import DroverMQTT
import DroverSim
import Foundation
import Synchronization

/// What every shard needs besides its devices.
struct SimOptions: Sendable {
    var profile: SimProfile
    var keepalive: Int32
    var churnDowntime: Int64
}

struct SimError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Set by SIGINT/SIGTERM.
let interrupted = Atomic<Bool>(false)

@main
struct DroverSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drover-sim",
        abstract: "Simulates N Drover devices over real MQTT connections: hello, beats, desired state, reports, churn.",
        discussion: """
            Each device has its own client id (drover-sim-ID), username (its id), last will and
            session, and speaks the wire protocol of Sources/DroverProtocol/README.md. Replicas are
            not run: each goes running (or failed) --start-delay after the device is asked for it.
            A few threads drive all connections. Each device takes three open files (its socket
            and libmosquitto's socket pair), so one process holds about 6,600 devices here (20,000
            open files); for more, run several processes with --first, and past about 19,000
            connections a broker, several brokers.
            """)

    @Option(name: .customLong("broker"), help: "Broker URL (mqtt://HOST:PORT); repeat to spread devices over several brokers.")
    var brokers: [String] = []

    @Option(help: "Devices to simulate (1-100000).")
    var devices: Int = 100

    @Option(help: "Number of the first device (ids are PREFIX + number, zero-padded to 6 digits).")
    var first: Int = 0

    @Option(help: "Device id prefix.")
    var prefix: String = "sim-"

    @Option(help: "Threads driving the connections (1-64).")
    var threads: Int = 2

    @Option(help: "New connections per second while the fleet comes up (1-100000).")
    var connectRate: Int = 2000

    @Option(help: "What each device offers, e.g. cpu=2,memory=2Gi.")
    var capacity: String = "cpu=2,memory=2Gi"

    @Option(help: "Labels of every device, e.g. site=plant-a,role=gateway.")
    var labels: String = ""

    @Option(help: "Spread devices over N zones: label zone=z0 ... z(N-1) (0: none).")
    var zones: Int = 0

    @Option(help: "Link classes with weights, e.g. wired=70,wifi=20,cellular=10.")
    var links: String = "wired=1"

    @Option(help: "Milliseconds from a replica being asked for to it running, give or take a quarter (0-600000).")
    var startDelay: Int = 200

    @Option(help: "Share of replica starts that fail (0-1).")
    var failRatio: Double = 0

    @Option(help: "Seconds between looks for a change to beat about (0.1-3600).")
    var beatInterval: Double = 5

    @Option(help: "Longest silence when nothing changes, seconds (1-86400).")
    var idleBeatInterval: Double = 300

    @Option(help: "MQTT keepalive, seconds (5-3600).")
    var keepalive: Int = 15

    @Option(help: "Disconnects per minute over the whole simulated fleet, without DISCONNECT (the broker fires the will).")
    var churn: Double = 0

    @Option(help: "Seconds a churned device stays away before reconnecting (0-3600).")
    var churnDowntime: Double = 5

    @Option(help: "A file of 'DEVICE-ID PASSWORD' lines, for a broker that requires passwords; without it devices connect with their id and no password.")
    var passwordFile: String?

    @Option(help: "Stop after this many seconds (0: at SIGINT or SIGTERM).")
    var duration: Double = 0

    @Option(help: "Seconds between status lines.")
    var statsEvery: Double = 5

    @Flag(help: "Status lines as JSON.")
    var json = false

    @Option(help: "Seed of every device's random stream (links, jitter, failures).")
    var seed: UInt64 = 1

    mutating func validate() throws {
        guard !brokers.isEmpty else { throw ValidationError("--broker URL is required") }
        for broker in brokers {
            do { _ = try BrokerAddress(url: broker) } catch { throw ValidationError("--broker: \(error)") }
            guard !broker.hasPrefix("mqtts") else { throw ValidationError("--broker \(broker): the simulator speaks plain MQTT (mqtt://) only") }
        }
        guard (1...100_000).contains(devices) else { throw ValidationError("--devices must be 1 to 100000") }
        guard (0...999_999).contains(first), first + devices <= 1_000_000 else { throw ValidationError("--first must be 0 to 999999, and --first + --devices at most 1000000") }
        guard Names.isValidDeviceID(prefix + "000000") else { throw ValidationError("--prefix '\(prefix)' makes invalid device ids") }
        guard (1...64).contains(threads) else { throw ValidationError("--threads must be 1 to 64") }
        guard (1...100_000).contains(connectRate) else { throw ValidationError("--connect-rate must be 1 to 100000") }
        guard (0...600_000).contains(startDelay) else { throw ValidationError("--start-delay must be 0 to 600000 ms") }
        guard (0...1).contains(failRatio) else { throw ValidationError("--fail-ratio must be 0 to 1") }
        guard (0.1...3600).contains(beatInterval) else { throw ValidationError("--beat-interval must be 0.1 to 3600 seconds") }
        guard (1...86400).contains(idleBeatInterval), idleBeatInterval >= beatInterval else { throw ValidationError("--idle-beat-interval must be 1 to 86400 seconds, and at least --beat-interval") }
        guard (5...3600).contains(keepalive) else { throw ValidationError("--keepalive must be 5 to 3600 seconds") }
        guard churn == 0 || (0.01...1_000_000).contains(churn) else { throw ValidationError("--churn must be 0, or 0.01 to 1000000 a minute") }
        guard (0...3600).contains(churnDowntime) else { throw ValidationError("--churn-downtime must be 0 to 3600 seconds") }
        guard (0...31_536_000).contains(duration) else { throw ValidationError("--duration must be 0 to 31536000 seconds") }
        guard (0.1...3600).contains(statsEvery) else { throw ValidationError("--stats-every must be 0.1 to 3600 seconds") }
        guard (0...10_000).contains(zones) else { throw ValidationError("--zones must be 0 to 10000") }
        _ = try profile()
    }

    func profile() throws -> SimProfile {
        let parsed: (cpu: Int?, memory: Int64?)
        do { parsed = try Quantity.parseCapacity(capacity) } catch { throw ValidationError("--capacity: \(error.path) \(error.reason)") }
        let labelSet = Names.parseLabels(labels)
        if let bad = labelSet.bad { throw ValidationError("--labels: '\(bad)' is not key=value with a valid key and value") }
        var weights: [(LinkClass, Int)] = []
        for pair in links.split(separator: ",") {
            let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
            guard let link = kv.first.flatMap(LinkClass.init(rawValue:)), let weight = kv.count == 2 ? Int(kv[1]) : 1, (0...1_000_000).contains(weight) else {
                throw ValidationError("--links: '\(pair)' must be CLASS=WEIGHT with a class of \(LinkClass.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            weights.append((link, weight))
        }
        return SimProfile(
            capacity: Resources(cpuMillis: parsed.cpu ?? 2000, memoryBytes: parsed.memory ?? 2 << 30), labels: labelSet.labels, links: weights,
            startDelay: Int64(startDelay), failRatio: failRatio, beatInterval: Int64(beatInterval * 1000), idleBeatInterval: Int64(idleBeatInterval * 1000))
    }

    func run() throws {
        // Three descriptors a device: its socket, and the socket pair libmosquitto makes for
        // every client (to wake its own loop, which is not used here).
        let files = try Self.raiseOpenFiles()
        guard devices * Self.filesPerDevice + 64 <= files else {
            throw SimError(
                "--devices \(devices) needs \(devices * Self.filesPerDevice) open files, and this process may open \(files): at most \(Self.maxDevices(files: files)) devices a process here; run several drover-sim processes with --first (over several brokers past about 19,000 connections each)")
        }
        let passwords = try passwordFile.map(Self.readPasswords) ?? [:]
        let addresses = try brokers.map { try BrokerAddress(url: $0) }
        let profile = try profile()
        mosquitto_lib_init()
        defer { mosquitto_lib_cleanup() }
        let stats = SimStats()
        let options = SimOptions(profile: profile, keepalive: Int32(keepalive), churnDowntime: Int64(churnDowntime * 1000))
        var shards: [Shard] = []
        for t in 0..<threads {
            var members: [Shard.Member] = []
            for n in stride(from: first + t, to: first + devices, by: threads) {
                let id = prefix + String(repeating: "0", count: max(0, 6 - String(n).count)) + String(n)
                var own = profile
                if zones > 0 { own.labels["zone"] = "z\(n % zones)" }
                members.append(Shard.Member(device: SimDevice(id: id, seed: seed &+ UInt64(n) &* 0x9E37_79B9, profile: own), broker: addresses[n % addresses.count], password: passwords[id]))
            }
            shards.append(try Shard(members, options: options, churnPerMinute: churn / Double(threads), stats: stats))
        }
        signal(SIGINT) { _ in interrupted.store(true, ordering: .relaxed) }
        signal(SIGTERM) { _ in interrupted.store(true, ordering: .relaxed) }
        signal(SIGPIPE, SIG_IGN)
        let rate = max(1, connectRate / threads)
        let threadsDone = Atomic<Int>(0)
        for shard in shards {
            let thread = Thread {
                shard.run(connectsPerSecond: rate)
                threadsDone.add(1, ordering: .relaxed)
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        let started = Date()
        var lastPrint = Date.distantPast
        while !interrupted.load(ordering: .relaxed), duration == 0 || Date().timeIntervalSince(started) < duration {
            usleep(50_000)
            if Date().timeIntervalSince(lastPrint) >= statsEvery {
                lastPrint = Date()
                // One write per line: the output is read live by benchmarks through a pipe.
                FileHandle.standardOutput.write(Data((Self.statusLine(stats, elapsed: Date().timeIntervalSince(started), devices: devices, json: json) + "\n").utf8))
            }
        }
        for shard in shards { shard.requestStop() }
        while threadsDone.load(ordering: .relaxed) < shards.count { usleep(10_000) }
        print(Self.statusLine(stats, elapsed: Date().timeIntervalSince(started), devices: devices, json: json))
    }

    static func statusLine(_ s: SimStats, elapsed: Double, devices: Int, json: Bool) -> String {
        let fields: [(String, Int)] = [
            ("connected", s.connected.load(ordering: .relaxed)), ("connects", s.connects.load(ordering: .relaxed)),
            ("disconnects", s.drops.load(ordering: .relaxed)), ("refused", s.refused.load(ordering: .relaxed)),
            ("desired", s.desired.load(ordering: .relaxed)), ("running", s.running.load(ordering: .relaxed)),
            ("beats", s.beats.load(ordering: .relaxed)), ("reports", s.reports.load(ordering: .relaxed)), ("published", s.published.load(ordering: .relaxed)),
        ]
        if json { return "{\"elapsed\":\(String(format: "%.1f", elapsed)),\"devices\":\(devices)," + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}" }
        return String(format: "%7.1fs ", elapsed) + "devices \(devices) " + fields.map { "\($0.0) \($0.1)" }.joined(separator: " ")
    }

    static let filesPerDevice = 3
    static func maxDevices(files: Int) -> Int { max(0, (files - 64) / filesPerDevice) }

    /// Raises the soft limit of open files to the hard one; returns it.
    static func raiseOpenFiles() throws -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { throw SimError("getrlimit: errno \(errno)") }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        return Int(min(limit.rlim_cur, 10_000_000))
    }

    static func readPasswords(_ path: String) throws -> [String: String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw SimError("--password-file: cannot read \(path)") }
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            out[parts[0]] = parts[1]
        }
        return out
    }
}
