import DroverAPI
import DroverCore
import DroverManifest
import DroverScheduler
import DroverStore
import Foundation
import Hummingbird

/// The REST API under `/v1`. Routes are grouped by resource; the OpenAPI document in
/// `openapi.yaml` lists the same routes, and a test keeps the two in step.
public enum API {
    public static let maxBodyBytes = 1 << 20

    /// Routes are registered on the group of the role they need; `/v1/health` alone needs
    /// no token.
    public static func router(
        fleet: Fleet, info: ControllerInfo, access: AccessControl, registryDir: String? = nil, ask: DeviceRequest? = nil,
        brokerConnected: @escaping @Sendable () -> Bool
    ) throws -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: MethodNotAllowed())
        let open = router.group("v1")
        open.get("health") { _, _ in APIJSON.response(["status": "ok"]) }
        let v1 = router.group("v1").add(middleware: Authorization(access: access, needs: .viewer))
        let change = router.group("v1").add(middleware: Authorization(access: access, needs: .operator))
        let admin = router.group("v1").add(middleware: Authorization(access: access, needs: .admin))
        tokenRoutes(admin, access: access)
        enrollmentRoutes(open: open, admin: admin, access: access, fleet: fleet)
        logRoutes(v1, fleet: fleet, ask: ask)
        revisionRoutes(viewer: v1, change: change, fleet: fleet, access: access)
        let registry = try registryDir.map { try RegistryStore(dataDir: $0) }
        if let registry {
            registryRoutes(router, access: access, store: registry)
            imageRoutes(viewer: v1, change: change, fleet: fleet, store: registry)
        }

        // Prometheus's text format, at the usual path; scrapers send a viewer token.
        router.group().add(middleware: Authorization(access: access, needs: .viewer)).get("metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: await fleet.metricsText())))
        }

        v1.get("status") { _, _ in
            APIJSON.response(StatusResponse(controller: info, brokerConnected: brokerConnected(), fleet: await fleet.summary()))
        }
        v1.get("openapi.yaml") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/yaml"], body: ResponseBody(byteBuffer: ByteBuffer(string: openAPIDocument())))
        }

        v1.get("devices") { _, _ in APIJSON.response(await fleet.deviceList()) }
        v1.get("devices/:id") { _, context in
            let id = try context.parameters.require("id")
            do { return APIJSON.response(try await fleet.device(id)) } catch { throw APIError(error) }
        }

        for (action, value) in [("cordon", Schedulability.cordoned), ("uncordon", .normal), ("drain", .draining)] {
            change.post("devices/:id/\(action)") { _, context in
                let id = try context.parameters.require("id")
                do { return APIJSON.response(try await fleet.setSchedulability(id, value)) } catch { throw APIError(error) }
            }
        }

        v1.get("workloads") { _, _ in APIJSON.response(await fleet.workloadList()) }
        v1.post("plan") { request, _ in
            let spec = try pinImage(try manifest(try await bodyText(request)), store: registry)
            do { return APIJSON.response(try await fleet.preview(spec)) } catch { throw APIError(error) }
        }
        change.post("workloads") { request, context in
            let spec = try pinImage(try manifest(try await bodyText(request)), store: registry)
            // Root on every matching device is an admin's call, not an operator's.
            if spec.runsAsRoot, case .failure = await access.authorize(request.headers[.authorization], needs: .admin) {
                throw APIError(.forbidden, "workload '\(spec.name)' runs as root (spec.user); applying it needs an admin token", errors: [
                    FieldError(path: "spec.user", reason: "root needs the admin role"),
                ])
            }
            do {
                let outcome = try await fleet.apply(spec)
                return APIJSON.response(ApplyResponse(outcome: outcome, workload: try await fleet.workload(spec.name)), status: outcome == .created ? .created : .ok)
            } catch { throw APIError(error) }
        }
        v1.get("workloads/:name") { _, context in
            let name = try context.parameters.require("name")
            do { return APIJSON.response(try await fleet.workload(name)) } catch { throw APIError(error) }
        }
        change.delete("workloads/:name") { _, context in
            let name = try context.parameters.require("name")
            do { try await fleet.delete(workload: name) } catch { throw APIError(error) }
            return Response(status: .noContent)
        }
        change.post("workloads/:name/scale") { request, context in
            let name = try context.parameters.require("name")
            let text = try await bodyText(request)
            guard let scale = try? JSONDecoder().decode(ScaleRequest.self, from: Data(text.utf8)) else {
                throw APIError(.badRequest, "body must be JSON {\"replicas\": N}", errors: [FieldError(path: "replicas", reason: "is required and must be a whole number")])
            }
            do {
                _ = try await fleet.scale(workload: name, replicas: scale.replicas)
                return APIJSON.response(try await fleet.workload(name))
            } catch { throw APIError(error) }
        }

        v1.get("events") { request, _ in
            let limit = try integerParameter("limit", in: request) ?? 100
            guard (1...10_000).contains(limit) else {
                throw APIError(.badRequest, "limit must be 1-10000", errors: [FieldError(path: "limit", reason: "must be 1-10000")])
            }
            let subject = request.uri.queryParameters.get("subject")
            do { return APIJSON.response(try await fleet.events(limit: limit, subject: subject)) } catch {
                throw APIError(.internalServerError, "cannot read events: \(error)")
            }
        }
        return router
    }

    static func manifest(_ text: String) throws -> WorkloadSpec {
        do {
            return try Manifest.parseWorkload(text)
        } catch {
            throw APIError(.unprocessableContent, "manifest is invalid: \(error)", errors: error.errors)
        }
    }

    static func bodyText(_ request: Request) async throws -> String {
        do {
            let buffer = try await request.body.collect(upTo: maxBodyBytes)
            return String(buffer: buffer)
        } catch {
            throw APIError(.contentTooLarge, "body larger than \(maxBodyBytes) bytes")
        }
    }

    /// The OpenAPI document shipped with the controller.
    public static func openAPIDocument() -> String {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "yaml"),
            let text = try? String(contentsOf: url, encoding: .utf8)
        else { return "" }
        return text
    }
}

