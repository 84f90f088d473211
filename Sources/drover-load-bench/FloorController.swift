import DroverCore
import DroverMQTT
import DroverProtocol
import Histogram

/// The baseline for apply → running: the least any controller must do on the same broker and
/// devices. It publishes each device's desired state at once (one replica each) and counts the
/// devices' `running` reports; no store, no plan, no rollout bookkeeping. Generations start
/// far above the real controller's, so the devices take them.
struct FloorController {
    let bed: LoadBed
    let devices: Int

    func ids() -> [String] { (0..<devices).map { "sim-" + String(String($0 + 1_000_000).dropFirst()) } }

    func run(repeats: Int) async throws -> Histogram<UInt64> {
        let client = try MQTTClient(MQTTConfiguration(broker: try BrokerAddress(url: bed.brokerURL), clientID: "drover-floor", keepAliveSeconds: 15))
        client.subscribe("drover/v1/dev/+/report", qos: .atLeastOnce)
        client.start()
        defer { Task { await client.shutdown() } }
        guard await bed.until(.seconds(10), every: .milliseconds(20), { client.isConnected }) else { throw BenchError("the floor controller cannot connect") }
        try await Task.sleep(for: .milliseconds(300))
        var up = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        var messages = client.messages.makeAsyncIterator()
        let ids = ids()
        for r in 0..<repeats {
            let generation = Int64(1_000_000_000 + 2 * r)
            let start = ContinuousClock.now
            try await publishAll(client, ids, generation: generation, running: true, tag: r)
            try await count(&messages, phase: .running, generation: generation)
            up.record(micros(since: start))
            try await publishAll(client, ids, generation: generation + 1, running: false, tag: r)
            try await count(&messages, phase: .stopped, generation: generation + 1)
            try await Task.sleep(for: .milliseconds(300))
        }
        return up
    }

    private func publishAll(_ client: MQTTClient, _ ids: [String], generation: Int64, running: Bool, tag: Int) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for id in ids {
                let spec = ReplicaSpec(
                    id: "load-\(id)", workload: "load", runtime: .exec, command: ["/bin/sleep", "100000"], env: ["TAG": "\(tag)"], restartPolicy: .always,
                    resources: Resources(cpuMillis: 100, memoryBytes: 16 << 20))
                let desired = Desired(device: id, generation: generation, replicas: running ? [spec] : [])
                group.addTask { _ = try await client.publish(Topic.device(id, .desired), WireCodec.encode(desired), qos: .atLeastOnce) }
            }
            try await group.waitForAll()
        }
    }

    /// Reads reports until every device has reported its replica in `phase` for `generation`.
    private func count(_ messages: inout MQTTMessages.AsyncIterator, phase: ReplicaPhase, generation: Int64) async throws {
        var seen = Set<String>()
        while seen.count < devices {
            guard let message = await messages.next() else { throw BenchError("the floor controller lost its broker") }
            guard let (device, _) = Topic.parse(message.topic), let report = try? WireCodec.decode(Report.self, from: message.payload, topicDevice: device) else { continue }
            if report.replicas.contains(where: { $0.phase == phase && $0.generation == generation }) { seen.insert(device) }
        }
    }
}
