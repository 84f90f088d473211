import Logging
import ServiceLifecycle

/// Runs `body` every `interval` until graceful shutdown.
public struct PeriodicService: Service {
    let interval: Duration
    let body: @Sendable () async -> Void

    public init(interval: Duration, _ body: @escaping @Sendable () async -> Void) {
        self.interval = interval
        self.body = body
    }

    public func run() async {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                guard !Task.isCancelled else { return }
                await body()
            }
        }
    }
}

/// Feeds the systemd watchdog while the daemon runs and says STOPPING on shutdown; with no
/// watchdog configured it only waits for shutdown.
public struct WatchdogService: Service {
    let notifier: SystemdNotifier

    public init(notifier: SystemdNotifier) {
        self.notifier = notifier
    }

    public func run() async {
        await withGracefulShutdownHandler {
            await cancelWhenGracefulShutdown {
                if notifier.watchdogInterval == nil {
                    try? await gracefulShutdown()
                } else {
                    await notifier.runWatchdog()
                }
            }
        } onGracefulShutdown: {
            notifier.stopping()
        }
    }
}

extension ServiceGroup {
    /// A daemon: every service is essential, so any of them ending (an error, or returning)
    /// shuts the others down in reverse order and `run()` ends; an error is rethrown, and the
    /// process exits non-zero for systemd to restart it. SIGTERM and SIGINT shut it down.
    public static func daemon(_ services: [any Service], logger: Logger) -> ServiceGroup {
        var configuration = ServiceGroupConfiguration(
            services: services.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup) },
            logger: logger)
        configuration.gracefulShutdownSignals = [.sigterm, .sigint]
        return ServiceGroup(configuration: configuration)
    }
}

/// Runs `loops` side by side until graceful shutdown cancels them (or they all end): the body
/// of a service made of several long-running loops, such as an MQTT link's.
public func runUntilShutdown(_ loops: [@Sendable () async -> Void]) async {
    await cancelWhenGracefulShutdown {
        await withTaskGroup(of: Void.self) { group in
            for loop in loops { group.addTask { await loop() } }
            await group.waitForAll()
        }
    }
}
