import DroverCore

/// A replica's process as the driver started it.
public struct RuntimeProcess: Sendable, Hashable {
    public var pid: Int32
    public var startTicks: Int64?
    /// For a container: its name (the instance's, see `start`) and the instance's directory.
    public var replica: String?
    public var directory: String?

    public init(pid: Int32, startTicks: Int64?, replica: String? = nil, directory: String? = nil) {
        self.pid = pid
        self.startTicks = startTicks
        self.replica = replica
        self.directory = directory
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
    /// agent restart) and no monitor kept it. `reason`: `OOMKilled` when the memory limit
    /// killed it.
    case ended(ExitStatus?, reason: String?)
}

/// One way of running replicas: `exec` (a plain process) or `runc` (a container under conmon).
/// The agent's supervisor speaks only this protocol.
public protocol RuntimeDriver: Sendable {
    var kind: RuntimeKind { get }
    /// Whether a start takes long enough (runc, podman) to run on a thread of its own.
    var startsInBackground: Bool { get }
    /// Whether everything the replica needs on this device (its image) is here.
    func isReady(_ spec: ReplicaSpec) -> Bool
    /// Gets it here (pulls and unpacks the image); the replica can start once this returns.
    func prepare(_ spec: ReplicaSpec) async throws(RuntimeError)
    /// Starts the replica with its output going to `logPath`, working in `directory`.
    /// `name` is the instance's, unique on the device: the replica id, or `ID+1` for the
    /// second instance that runs beside the first during a surge (`+` is never in an id).
    func start(_ spec: ReplicaSpec, name: String, directory: String, logPath: String) throws(RuntimeError) -> RuntimeProcess
    func state(of process: RuntimeProcess) -> ProcessState
    /// Runs a probe's command in the replica's context (its user, environment, and for a
    /// container its namespaces); passes on exit code 0. Blocking, at most `timeout`.
    func probe(_ command: [String], in process: RuntimeProcess, spec: ReplicaSpec, timeout: Duration) -> ProbeCheck.Outcome
    /// Stops the replica and everything it started, waiting up to `grace` before killing.
    func stop(_ process: RuntimeProcess, grace: Duration) async
}

extension RuntimeDriver {
    public var startsInBackground: Bool { false }
    public func isReady(_ spec: ReplicaSpec) -> Bool { true }
    public func prepare(_ spec: ReplicaSpec) async throws(RuntimeError) {}
}
