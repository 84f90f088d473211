import DroverCore

/// A replica's process as the driver started it.
public struct RuntimeProcess: Sendable, Hashable {
    public var pid: Int32
    public var startTicks: Int64?

    public init(pid: Int32, startTicks: Int64?) {
        self.pid = pid
        self.startTicks = startTicks
    }
}

/// Why a driver could not start a replica.
public struct RuntimeError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// What the agent knows of a replica's process right now.
public enum ProcessState: Sendable, Hashable {
    case running
    /// Ended; the code is unknown when the process was not our child (adopted after an
    /// agent restart).
    case ended(ExitStatus?)
}

/// One way of running replicas: `exec` (a plain process), later `runc` and `podman`.
/// The agent's supervisor speaks only this protocol.
public protocol RuntimeDriver: Sendable {
    var kind: RuntimeKind { get }
    /// Starts the replica with its output going to `logPath`, working in `directory`.
    func start(_ spec: ReplicaSpec, directory: String, logPath: String) throws(RuntimeError) -> RuntimeProcess
    func state(of process: RuntimeProcess) -> ProcessState
    /// Stops the replica and everything it started, waiting up to `grace` before killing.
    func stop(_ process: RuntimeProcess, grace: Duration) async
}
