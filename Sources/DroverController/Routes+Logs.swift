import DroverAPI
import DroverCore
import DroverProtocol
import Hummingbird

extension API {
    /// Asks a device and waits for its answer; nil: no answer in time (see `Ingest.request`).
    public typealias DeviceRequest = @Sendable (Command) async -> CommandReply?

    /// `GET /v1/workloads/{name}/logs?replica=&device=&tail=&since=`: each placed replica's log
    /// tail (or, with `since`, what its log holds past that offset: to follow one replica),
    /// fetched from its device over MQTT request/reply, or why it cannot be had.
    static func logRoutes(_ v1: RouterGroup<BasicRequestContext>, fleet: Fleet, ask: DeviceRequest?) {
        v1.get("workloads/:name/logs") { request, context in
            let name = try context.parameters.require("name")
            let tail = try integerParameter("tail", in: request) ?? 100
            guard (1...Command.maxTail).contains(tail) else {
                throw APIError(.badRequest, "tail must be 1-\(Command.maxTail)", errors: [FieldError(path: "tail", reason: "must be 1-\(Command.maxTail)")])
            }
            let since = try integerParameter("since", in: request)
            let replica: String? = request.uri.queryParameters.get("replica").map { String($0) }
            if let since {
                guard (0...Int(WireLimits.maxCounter)).contains(since) else {
                    throw APIError(.badRequest, "since must be a byte offset of 0 or more", errors: [FieldError(path: "since", reason: "must be 0-\(WireLimits.maxCounter)")])
                }
                guard replica != nil else {
                    throw APIError(.badRequest, "since needs replica: an offset is one log's", errors: [FieldError(path: "since", reason: "needs replica")])
                }
            }
            let device: String? = request.uri.queryParameters.get("device").map { String($0) }
            let view: WorkloadView
            do { view = try await fleet.workload(name) } catch { throw APIError(error) }
            let rows = view.replicas.filter { !$0.device.isEmpty && (replica == nil || $0.id == replica) && (device == nil || $0.device == device) }
            guard !rows.isEmpty else {
                throw APIError(.notFound, "workload '\(name)' has no placed replica\(replica.map { " \($0)" } ?? "")\(device.map { " on \($0)" } ?? "")")
            }
            var logs: [LogView] = []
            for row in rows {
                let presence = (try? await fleet.device(row.device))?.record.presence
                guard presence == .online else {
                    logs.append(LogView(replica: row.id, device: row.device, error: "device \(row.device) is \(presence?.rawValue ?? "unknown"): the log stays on it until it is back"))
                    continue
                }
                guard let ask, let reply = await ask(Command(device: row.device, command: .logs, replica: row.id, tail: tail, since: since.map(Int64.init))) else {
                    logs.append(LogView(replica: row.id, device: row.device, error: "device \(row.device) did not answer within 5 s"))
                    continue
                }
                logs.append(reply.ok
                    ? LogView(replica: row.id, device: row.device, output: reply.output ?? "", offset: reply.offset)
                    : LogView(replica: row.id, device: row.device, error: reply.message ?? "the device refused"))
            }
            return APIJSON.response(logs)
        }
    }
}
