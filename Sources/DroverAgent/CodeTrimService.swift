import Logging
import ServiceLifecycle

/// Keeps only the code the agent runs mapped, its own and its libraries' (`POSIX.trimOwnCode`): once it has settled after
/// a start, then every `interval` (`--code-trim-interval`), so that code a rare event ran (a
/// rollout, an image pull) does not stay mapped. Each trim costs a few dozen page faults from
/// the page cache as the running code maps itself again. Measured on an idle agent (README,
/// "Footprint"): PSS 13.0 → 9.6–10.1 MiB for its own code, → 7.1–7.3 MiB with its libraries', → 4.8–5.2 MiB
/// with the code it runs when idle laid out together (`tools/agent-idle-order`).
struct CodeTrimService: Service {
    var settle: Duration = .seconds(10)
    let interval: Duration
    let logger: Logger

    func run() async {
        await cancelWhenGracefulShutdown {
            var wait = settle
            var lastRefusal: String?
            while !Task.isCancelled {
                try? await Task.sleep(for: wait)
                guard !Task.isCancelled else { return }
                let refusal = POSIX.trimOwnCode()
                if let refusal, refusal != lastRefusal { logger.notice("not unmapping the code of the agent and its libraries: \(refusal)") }
                lastRefusal = refusal
                wait = interval
            }
        }
    }
}
