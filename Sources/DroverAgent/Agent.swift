import DroverAgentStore
import DroverCore
import DroverMQTT
import DroverProtocol
import DroverSystemd
import Logging
import ServiceLifecycle
import CDroverSys

/// The device daemon: connection, supervision, beats and the outbox, as one service.
public struct Agent: Service {
    let configuration: AgentConfiguration
    let logger: Logger

    public init(configuration: AgentConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    public func run() async throws {
        let config = configuration
        POSIX.makeDirectories(config.dataDir)
        let store: AgentStore
        do {
            store = try AgentStore(path: config.dataDir + "/agent.db")
        } catch {
            throw AgentError("cannot open \(config.dataDir)/agent.db: \(error)")
        }
        // Orphans of replicas come back to the agent, which reaps them; none stays a zombie.
        _ = drover_set_child_subreaper()
        let reaper = ChildReaper(reapsOrphans: true)
        let supervisor = ReplicaSupervisor(
            deviceID: config.deviceID, store: store, drivers: [ExecDriver(reaper: reaper)], dataDir: config.dataDir,
            logger: logger, maxLogBytes: config.maxLogBytes, stopGrace: config.stopGrace)
        await supervisor.recover()

        let offline = WireCodec.encode(DeviceState(device: config.deviceID, state: .offline))
        let client = try MQTTClient(
            MQTTConfiguration(
                broker: config.broker, clientID: "drover-agent-\(config.deviceID)", username: config.username ?? config.deviceID,
                password: config.password, keepAliveSeconds: 15, sessionExpirySeconds: 7 * 24 * 3600, cleanStart: false,
                will: LastWill(topic: Topic.device(config.deviceID, .state), payload: offline, qos: .atLeastOnce, retain: true)))
        client.subscribe(Topic.device(config.deviceID, .desired), qos: .atLeastOnce)
        client.subscribe(Topic.controllerState, qos: .atLeastOnce)
        client.subscribe(Topic.device(config.deviceID, .cmd), qos: .atLeastOnce)
        let link = AgentLink(configuration: config, client: client, store: store, supervisor: supervisor, logger: logger)
        client.start()
        let notifier = SystemdNotifier()
        notifier.ready(status: "device \(config.deviceID), broker \(config.broker)")
        logger.info("agent started", metadata: ["device": "\(config.deviceID)", "broker": "\(config.broker)"])

        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await link.handleEvents() }
                group.addTask { await link.handleMessages() }
                group.addTask {
                    while !Task.isCancelled {
                        await supervisor.tick()
                        // Through a long outage only the newest reports matter: each carries
                        // the whole status of the replicas it names.
                        _ = try? store.trimOutbox(keep: 10_000)
                        await link.flushOutbox()
                        try? await Task.sleep(for: .milliseconds(500))
                    }
                }
                group.addTask {
                    while !Task.isCancelled {
                        await link.sendBeat()
                        try? await Task.sleep(for: config.beatInterval)
                    }
                }
                group.addTask { await notifier.runWatchdog() }
                try? await gracefulShutdown()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            notifier.stopping()
        }
        // A planned stop says so before leaving: the controller need not wait for the will.
        _ = try? await client.publish(Topic.device(config.deviceID, .state), offline, qos: .atLeastOnce, retain: true)
        await client.shutdown()
        logger.info("agent stopped; replicas keep running")
    }
}

public struct AgentError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
