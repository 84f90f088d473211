import DroverAPI
import DroverCore
import Foundation
import Hummingbird

extension API {
    /// `GET /v1/workloads/{name}/revisions` (the kept revisions, oldest first: time, cause,
    /// outcome, spec) and `POST /v1/workloads/{name}/undo` (`{"revision": N}` or `{}` for
    /// the one before): the template of then becomes a new revision; scale and placement stay.
    static func revisionRoutes(viewer v1: RouterGroup<BasicRequestContext>, change: RouterGroup<BasicRequestContext>, fleet: Fleet, access: AccessControl) {
        v1.get("workloads/:name/revisions") { _, context in
            let name = try context.parameters.require("name")
            do { return APIJSON.response(try await fleet.revisions(name)) } catch { throw APIError(error) }
        }
        v1.get("workloads/:name/rollout") { _, context in
            let name = try context.parameters.require("name")
            do { return APIJSON.response(try await fleet.rollout(name)) } catch { throw APIError(error) }
        }
        for action in [RolloutAction.pause, .resume, .abort] {
            change.post("workloads/:name/rollout/\(action.rawValue)") { _, context in
                let name = try context.parameters.require("name")
                do {
                    _ = try await fleet.control(rollout: name, action)
                    return APIJSON.response(try await fleet.rollout(name))
                } catch { throw APIError(error) }
            }
        }
        change.post("workloads/:name/undo") { request, context in
            let name = try context.parameters.require("name")
            let text = try await bodyText(request)
            let body = text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? "{}" : text
            guard let undo = try? JSONDecoder().decode(UndoRequest.self, from: Data(body.utf8)) else {
                throw APIError(.badRequest, "body must be JSON {\"revision\": N} or {}", errors: [FieldError(path: "revision", reason: "must be a whole number")])
            }
            // Going back to a revision that ran as root is an admin's call, as applying it was.
            let history = (try? await fleet.revisions(name)) ?? []
            let target = undo.revision.flatMap { r in history.first { $0.revision == r } } ?? history.dropLast().last
            if target?.spec.runsAsRoot == true, case .failure = await access.authorize(request.headers[.authorization], needs: .admin) {
                throw APIError(.forbidden, "revision \(target?.revision ?? 0) of '\(name)' runs as root (spec.user); going back to it needs an admin token", errors: [
                    FieldError(path: "revision", reason: "root needs the admin role"),
                ])
            }
            do {
                _ = try await fleet.undo(workload: name, to: undo.revision)
                return APIJSON.response(try await fleet.workload(name))
            } catch { throw APIError(error) }
        }
    }
}
