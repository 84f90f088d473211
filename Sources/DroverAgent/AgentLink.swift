import DroverAgentStore
import DroverCore
import DroverMQTT
import DroverProtocol
import Logging

/// The agent's side of the wire: announces the device on every connect, feeds desired state
/// to the supervisor, sends beats and drains the outbox while connected.
actor AgentLink {
    let configuration: AgentConfiguration
    let client: MQTTClient
    let store: AgentStore
    let supervisor: ReplicaSupervisor
    let runtimes: [RuntimeKind]
    let logger: Logger
    private var cpu = CPUSampler()
    private var replicaCPU = ReplicaCPUSampler()
    private var ledger = DropLedger()
    private var beats: BeatPlanner
    /// Smoothed round-trip time to the broker, from the acknowledgements of QoS 1 publishes.
    private var rtt: Double?
    private var flushing = false
    /// The facts of this process's last announcement that reached the controller's session.
    private var announced: DeviceFacts?
    /// For `--metrics-listen`.
    private var beatsSent = 0
    private var reportsSent = 0

    init(configuration: AgentConfiguration, client: MQTTClient, store: AgentStore, supervisor: ReplicaSupervisor, runtimes: [RuntimeKind], logger: Logger) {
        self.runtimes = runtimes
        self.configuration = configuration
        self.client = client
        self.store = store
        self.supervisor = supervisor
        self.logger = logger
        beats = BeatPlanner(idleInterval: configuration.idleBeatInterval.millis)
    }

    nonisolated var deviceID: String { configuration.deviceID }

    /// The retained `state` payload of a device that is gone: its will, and its goodbye.
    static func offline(_ device: String) -> [UInt8] {
        WireCodec.encode(DeviceState(device: device, state: .offline))
    }

    func facts() -> DeviceFacts {
        let memory = MachineInfo.memory()
        return DeviceFacts(
            agentVersion: AgentConfiguration.agentVersion, arch: MachineInfo.arch(), os: MachineInfo.os(),
            capacity: Resources(cpuMillis: configuration.capacityCPU ?? MachineInfo.cpuMillis(), memoryBytes: configuration.capacityMemory ?? memory.total),
            labels: configuration.labels, runtimes: runtimes, link: configuration.link, encodings: [.deflate])
    }

    func handleEvents() async {
        for await event in client.events {
            if case .refused(let reason) = event {
                logger.error("cannot join the broker: \(reason); replicas keep running, reports are queued")
                continue
            }
            guard case .connected(let sessionPresent) = event else {
                logger.warning("broker connection lost; replicas keep running, reports are queued")
                continue
            }
            logger.info("connected to broker", metadata: ["sessionPresent": "\(sessionPresent)"])
            if sessionPresent, let announced, announced == facts() {
                await resume()
            } else {
                await announce()
            }
            await flushOutbox()
        }
    }

    /// Back on the session this process announced itself in, facts unchanged: only `online`
    /// (the will may have said `offline`). The session kept the subscriptions and queued what
    /// the controller sent meanwhile; the controller has this device's hello; a report or beat
    /// not acknowledged before the link dropped is sent again (the outbox; `BeatPlanner`);
    /// and a controller that started since says `online`, which makes a full announcement.
    /// A reconnect on a flaky link costs about 0.3 KB instead of 1.7 KB and more (the hello,
    /// a whole beat, a report of every replica, the whole desired state again).
    private func resume() async {
        do {
            try await sayOnline()
        } catch {
            logger.warning("cannot say online", metadata: ["error": "\(error)"])
        }
    }

    /// `online`, retained: what the will (`offline`) may have said is taken back.
    private func sayOnline() async throws {
        _ = try await timed { try await client.publish(Topic.device(deviceID, .state), WireCodec.encode(DeviceState(device: deviceID, state: .online)), qos: .atLeastOnce, retain: true) }
    }

    private func announce() async {
        // Until this announcement's hello is delivered, a reconnect announces in full again
        // (the controller that asked for it may have heard nothing of it).
        announced = nil
        let generation = await supervisor.appliedGeneration
        let hello = Hello(
            device: deviceID, facts: facts(), bootID: MachineInfo.bootID(), lastAppliedGeneration: generation,
            // Silent for the idle interval, then up to a sampling period until the next look.
            beatEvery: min(configuration.idleBeatInterval.millis + configuration.beatInterval.millis, WireLimits.beatEveryRange.upperBound))
        do {
            try await sayOnline()
            // The controller's session took it, or none did (the controller is away, and will
            // ask for it again when it is back).
            let taken = try await timed { try await client.publish(Topic.device(deviceID, .hello), WireCodec.encode(hello), qos: .atLeastOnce) }
            announced = taken == .delivered ? hello.facts : nil
            // The controller may know nothing of this device, or only an old picture: the
            // next beat tells everything.
            beats.reset()
            // Reports acknowledged by a broker that then lost them, or taken by a controller
            // that died before its commit, are never resent: a full snapshot after every
            // announcement sets the controller's view right.
            await supervisor.queueSnapshot()
        } catch {
            logger.warning("cannot announce", metadata: ["error": "\(error)"])
            return
        }
        await sendBeat()
    }

    /// Runs a QoS 1 publish and folds the wait for its PUBACK into the smoothed round-trip
    /// time (like TCP's SRTT: one slow answer moves it by an eighth).
    private func timed<T>(_ publish: () async throws -> T) async rethrows -> T {
        let start = ContinuousClock.now
        let result = try await publish()
        let c = (ContinuousClock.now - start).components
        let millis = min(Double(c.seconds) * 1000 + Double(c.attoseconds) / 1e15, WireLimits.rttRange.upperBound)
        rtt = ((rtt.map { $0 * 7 / 8 + millis / 8 } ?? millis) * 10).rounded() / 10
        return result
    }

    func handleMessages() async {
        for await message in client.messages {
            // The controller came (back) online: it may have missed this device's hello and
            // reports, so announce again and resend what is queued.
            // Publishing is never awaited on this loop: a PUBACK may sit behind the messages
            // that wait to be read here.
            // (Its retained `online`, replayed on subscribe, is not news: this device announced
            // itself on connecting.)
            if message.topic == Topic.controllerState {
                if message.payload == Array("online".utf8), !message.retain {
                    Task {
                        await self.announce()
                        await self.flushOutbox()
                    }
                }
                continue
            }
            if Topic.parse(message.topic)?.channel == .cmd {
                Task { await self.answer(message) }
                continue
            }
            guard let (device, channel) = Topic.parse(message.topic), device == deviceID, channel == .desired else {
                drop(.unknownTopic, message.topic)
                continue
            }
            do {
                let desired = try WireCodec.decode(Desired.self, from: message.payload, topicDevice: deviceID)
                if !(await supervisor.apply(desired)) {
                    logger.debug("ignored desired state that is not newer", metadata: ["generation": "\(desired.generation)"])
                }
            } catch {
                drop(error.reason, "\(message.topic): \(error.detail)")
            }
        }
    }

    /// Answers a request on the response topic it names, echoing its correlation data (the
    /// MQTT 5 property, and the payload's). A request without a response topic crossed an
    /// MQTT 3.1.1 bridge, which drops properties: it is answered on this device's reply
    /// topic, the only one there is. A command this agent does not know is answered
    /// `ok: false`, so the asker need not wait.
    private func answer(_ message: MQTTMessage) async {
        // Only this device's reply topic: a request cannot make the device publish elsewhere.
        let replyTopic = Topic.device(deviceID, .cmdReply)
        guard message.responseTopic == nil || message.responseTopic == replyTopic else {
            drop(.invalidField, "\(message.topic): response topic must be \(replyTopic)")
            return
        }
        var reply: CommandReply
        var correlation: String?
        do {
            let command = try WireCodec.decode(Command.self, from: message.payload, topicDevice: deviceID)
            correlation = command.correlation
            switch command.command {
            case .ping: reply = CommandReply(device: deviceID, command: command.command.rawValue, ok: true)
            case .snapshot:
                await supervisor.queueSnapshot()
                reply = CommandReply(device: deviceID, command: command.command.rawValue, ok: true)
            case .logs:
                let replica = command.replica ?? ""
                let log = if let since = command.since { await supervisor.logSince(replica, offset: since) } else { await supervisor.logTail(replica, lines: command.tail ?? 100) }
                if let log {
                    reply = CommandReply(device: deviceID, command: command.command.rawValue, ok: true, output: log.text, offset: log.offset)
                } else {
                    reply = CommandReply(device: deviceID, command: command.command.rawValue, ok: false, message: "no replica \(replica) on \(deviceID)")
                }
            }
        } catch {
            guard let unknown = unknownCommand(message.payload) else {
                drop(error.reason, "\(message.topic): \(error.detail)")
                return
            }
            reply = CommandReply(device: deviceID, command: unknown.name, ok: false, message: "unknown command")
            correlation = unknown.correlation
        }
        reply.correlation = correlation
        _ = try? await client.publish(replyTopic, WireCodec.encode(reply), qos: .atLeastOnce, correlationData: message.correlationData)
        if reply.command == Command.Name.snapshot.rawValue { await flushOutbox() }
    }

    /// The name (and payload correlation) of a well-formed request whose command this agent
    /// does not know.
    func unknownCommand(_ payload: [UInt8]) -> (name: String, correlation: String?)? {
        struct Loose: Decodable {
            var v: Int
            var device: String
            var command: String
            var correlation: String?
        }
        guard payload.count <= WireCodec.maxPayloadBytes, let loose = try? WireCodec.decodeValue(Loose.self, from: String(decoding: payload, as: UTF8.self)),
            loose.v == wireVersion, loose.device == deviceID, Command.Name(rawValue: loose.command) == nil, loose.command.utf8.count <= WireLimits.maxShortText
        else { return nil }
        return (loose.command, loose.correlation.flatMap { Correlation.bytes($0) == nil ? nil : $0 })
    }

    private func drop(_ reason: DropReason, _ detail: String) {
        if ledger.record(reason, device: deviceID, now: Double(epochMillis()) / 1000) {
            logger.warning("dropped message", metadata: ["reason": "\(reason.rawValue)", "detail": "\(detail)"])
        }
    }

    /// Sends queued reports in order, each deleted only after the broker acknowledged it.
    func flushOutbox() async {
        guard !flushing, client.isConnected else { return }
        flushing = true
        defer { flushing = false }
        while client.isConnected {
            guard let batch = try? store.pending(limit: 50), !batch.isEmpty else { return }
            for entry in batch {
                guard let body = QueuedReport.decode(entry.payload) else {
                    try? store.acknowledge(seq: entry.seq)  // unreadable row: never blocks the queue
                    continue
                }
                let report = Report(device: deviceID, seq: entry.seq, replicas: body.replicas, epoch: store.epoch, full: body.full ? true : nil)
                do {
                    // A report nobody subscribed to (the controller is away and the broker lost its
                    // session) stays queued until the controller is back.
                    guard try await timed({ try await client.publish(Topic.device(deviceID, .report), WireCodec.encode(report), qos: .atLeastOnce) }) == .delivered else { return }
                    try store.acknowledge(seq: entry.seq)
                    reportsSent += 1
                } catch {
                    return
                }
            }
        }
    }

    /// Samples every `--beat-interval` and sends a beat only with what changed, or after
    /// `--idle-beat-interval` of silence (`BeatPlanner`). Samples are taken only while they
    /// can be sent; the next one then covers the whole gap.
    func sendBeat() async {
        guard client.isConnected else { return }
        let usage = Usage.sample(cpu: &cpu, dataDir: configuration.dataDir)
        let phases = await supervisor.phaseCounts()
        let perReplica = replicaCPU.sample(await supervisor.runningGroups())
        let (generation, reportSeq, digest) = await supervisor.beatSummary()
        let sample = BeatPlanner.Sample(usage: usage, phases: phases, replicaCPU: perReplica, generation: generation, reportSeq: reportSeq, digest: digest, rtt: rtt)
        guard let beat = beats.next(sample, device: deviceID, now: epochMillis()) else { return }
        do {
            // QoS 1: the acknowledgement says it arrived, and times the link. "No subscribers"
            // means the controller is away; it asks for everything again when it is back.
            _ = try await timed { try await client.publish(Topic.device(deviceID, .beat), WireCodec.encode(beat), qos: .atLeastOnce) }
            beatsSent += 1
        } catch {
            beats.reset()
        }
    }

    /// `--metrics-listen`: the device's replicas, its link and its outbox, as of now.
    func metricsText() async -> String {
        var m = MetricsText()
        let phases = await supervisor.phaseCounts()
        let statuses = await supervisor.replicaStatuses()
        m.family("drover_agent_replicas", "gauge", "Replicas on this device, by phase", ReplicaPhase.allCases.map { ("phase=\"\($0.rawValue)\"", Double(phases[$0.rawValue] ?? 0)) })
        m.single("drover_agent_replicas_ready", "gauge", "Running replicas whose readiness probe passes (or that have none)", Double(statuses.filter { $0.phase == .running && $0.ready != false }.count))
        m.single("drover_agent_replica_restarts", "gauge", "Restarts of the replicas on this device, summed", Double(statuses.reduce(0) { $0 + min($1.restarts, 1 << 40) }))
        m.single("drover_agent_applied_generation", "gauge", "The newest desired state applied", Double(await supervisor.appliedGeneration))
        m.single("drover_agent_broker_connected", "gauge", "1 while connected to the broker", client.isConnected ? 1 : 0)
        m.single("drover_agent_outbox_pending", "gauge", "Reports waiting for the broker (kept through outages in agent.db)", Double((try? store.pendingCount()) ?? 0))
        m.single("drover_agent_beats_sent_total", "counter", "Beats sent since the agent started", Double(beatsSent))
        m.single("drover_agent_reports_sent_total", "counter", "Reports the broker acknowledged since the agent started", Double(reportsSent))
        m.family("drover_agent_messages_dropped_total", "counter", "Messages to this device dropped, by reason", DropReason.allCases.map { ("reason=\"\($0.rawValue)\"", Double(ledger.counts[$0] ?? 0)) })
        m.single("drover_agent_resident_bytes", "gauge", "The agent's resident memory", Double(MachineInfo.residentBytes() ?? 0))
        return m.text
    }
}
