import CSystemd

/// Readiness and watchdog for systemd units with `Type=notify` and `WatchdogSec=`.
/// Without `NOTIFY_SOCKET` every call is a no-op, as libsystemd defines it.
public struct SystemdNotifier: Sendable {
    public init() {}

    public func ready(status: String) {
        _ = sd_notify(0, "READY=1\nSTATUS=\(status)")
    }

    public func stopping() {
        _ = sd_notify(0, "STOPPING=1")
    }

    public func watchdogPing() {
        _ = sd_notify(0, "WATCHDOG=1")
    }

    /// Half the watchdog interval the service manager asked for, or nil when none is set.
    public var watchdogInterval: Duration? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return .microseconds(Int64(usec / 2))
    }

    /// Pings the watchdog at half the requested interval until the task is cancelled;
    /// returns at once when no watchdog is configured.
    public func runWatchdog() async {
        guard let interval = watchdogInterval else { return }
        while !Task.isCancelled {
            watchdogPing()
            try? await Task.sleep(for: interval)
        }
    }
}
