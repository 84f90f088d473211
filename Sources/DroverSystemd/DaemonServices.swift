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
