import CDroverSys
import DroverAgentStore
import DroverCore
import DroverMQTT
import DroverProtocol
import DroverSystemd
import Logging
import ServiceLifecycle

/// The device daemon as a `ServiceGroup` of real services, started in this order and stopped
/// in reverse: supervision (restart policies, the outbox), the MQTT link, beats and the
/// systemd watchdog. Before any of them runs, the agent recovers from `agent.db`: after a
/// reboot its workloads run again whether or not a broker is reachable.
public enum Agent {
    public static func serviceGroup(configuration config: AgentConfiguration, logger: Logger) async throws -> ServiceGroup {
        // The data dir holds credentials and every replica's environment. Others may pass
        // through it (0711), since replicas running as another user must reach their
        // working directory (their HOME) by path, but never list it; every file in it that
        // holds a secret is 0600. The database is made owner-only before SQLite creates it;
        // its -wal and -shm files take the same mode.
        POSIX.makeDirectories(config.dataDir, mode: 0o711)
        POSIX.ownerOnly(config.dataDir + "/agent.db")
        let store: AgentStore
        do {
            store = try AgentStore(path: config.dataDir + "/agent.db")
        } catch {
            throw AgentError("cannot open \(config.dataDir)/agent.db: \(error); move it aside to start this device afresh")
        }
        // Orphans of replicas come back to the agent, which reaps them; none stays a zombie.
        _ = drover_set_child_subreaper()
        let reaper = ChildReaper(reapsOrphans: true)
        let images = ImageStore(dataDir: config.dataDir, controller: config.controllerURL ?? config.credentials?.controller, credentials: config.credentials)
        var drivers: [any RuntimeDriver] = [ExecDriver(reaper: reaper, workloadUser: config.workloadUser)]
        let host = ContainerHost(
            dataDir: config.dataDir, cgroupParent: config.cgroupParent ?? "/drover/\(config.deviceID)", images: images, reaper: reaper, workloadUser: config.workloadUser)
        if let runc = RuncDriver.available(host) {
            drivers.append(runc)
        } else {
            logger.notice("no runc runtime: runc, conmon and tar are needed, and root")
        }
        if let podman = PodmanDriver.available(host) { drivers.append(podman) }
        let supervisor = ReplicaSupervisor(
            deviceID: config.deviceID, store: store, drivers: drivers, dataDir: config.dataDir,
            logger: logger, bootID: MachineInfo.bootID(), maxLogBytes: config.maxLogBytes, stopGrace: config.stopGrace)
        do {
            try await supervisor.recover()
        } catch {
            throw AgentError("\(config.dataDir)/agent.db: \(error); move it aside to start this device afresh")
        }

        var mqtt = MQTTConfiguration(
                broker: config.broker, clientID: "drover-agent-\(config.deviceID)", username: config.username ?? config.deviceID,
                password: config.password, keepAliveSeconds: config.keepAliveSeconds, sessionExpirySeconds: 7 * 24 * 3600, cleanStart: false,
                will: LastWill(topic: Topic.device(config.deviceID, .state), payload: AgentLink.offline(config.deviceID), qos: .atLeastOnce, retain: true),
                // Every 0.25–0.5 s for the first 5 s, so a broker that restarts is found again
                // at once; then growing to 5 s at most, so after any outage every device is
                // back well within the controller's grace (10 s at least).
                backoff: BackoffPolicy(initial: .milliseconds(500), maximum: .seconds(5), steadyAttempts: 10))
        mqtt.caFile = config.caFile
        // A reconnect into the same session sends no SUBSCRIBE: the retained desired state is
        // not sent again (`AgentLink.resume`); once an hour at most, it does.
        mqtt.keepsSubscriptionsOnResume = .seconds(3600)
        let client = try MQTTClient(mqtt)
        client.subscribe(Topic.device(config.deviceID, .desired), qos: .atLeastOnce)
        client.subscribe(Topic.controllerState, qos: .atLeastOnce)
        client.subscribe(Topic.device(config.deviceID, .cmd), qos: .atLeastOnce)
        // Reports go out as soon as they are queued; the periodic pass only retries.
        let (queuedReports, queuedSignal) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        await supervisor.notifyQueued(queuedSignal)
        let link = AgentLink(configuration: config, client: client, store: store, supervisor: supervisor, runtimes: drivers.map(\.kind), logger: logger)

        var services: [any Service] = [
            PeriodicService(interval: .milliseconds(500)) {
                await supervisor.tick()
                // Through a long outage only the newest reports matter: each carries the
                // whole status of the replicas it names.
                _ = try? store.trimOutbox(keep: 10_000)
                await link.flushOutbox()
            },
            AgentLinkService(link: link, client: client, queuedReports: queuedReports, notifier: SystemdNotifier(), logger: logger),
            PeriodicService(interval: config.beatInterval) { await link.sendBeat() },
            // Images no replica of this device uses leave the store once it is past its budget.
            PeriodicService(interval: .seconds(300)) {
                images.collect(keep: await supervisor.desiredImages(), budget: config.imageBudget)
            },
            WatchdogService(notifier: SystemdNotifier()),
        ]
        if let interval = config.codeTrimInterval { services.append(CodeTrimService(interval: interval, logger: logger)) }
        if let port = config.metricsPort {
            services.append(AgentMetricsService(port: port, render: { await link.metricsText() }, logger: logger))
        }
        return .daemon(services, logger: logger)
    }
}

/// The MQTT connection as a service: announces the device, applies desired state, answers
/// commands. A planned stop says `offline` before leaving, so the controller need not wait
/// for the will; replicas keep running.
struct AgentLinkService: Service {
    let link: AgentLink
    let client: MQTTClient
    let queuedReports: AsyncStream<Void>
    let notifier: SystemdNotifier
    let logger: Logger

    func run() async {
        client.start()
        let device = link.deviceID
        notifier.ready(status: "device \(device), broker \(client.configuration.broker)")
        logger.info("agent started", metadata: ["device": "\(device)", "broker": "\(client.configuration.broker)"])
        await runUntilShutdown([
            { await link.handleEvents() }, { await link.handleMessages() },
            { for await _ in queuedReports { await link.flushOutbox() } },
        ])
        _ = try? await client.publish(Topic.device(device, .state), AgentLink.offline(device), qos: .atLeastOnce, retain: true)
        await client.shutdown()
        logger.info("agent stopped; replicas keep running")
    }
}

public struct AgentError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
