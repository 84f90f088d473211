import DroverAPI
import DroverCore
import Foundation
import Hummingbird

extension API {
    /// Pins a workload's image to a digest, so that every device runs the same bytes: a tag
    /// of the controller's registry is looked up there; an image elsewhere must name its digest.
    static func pinImage(_ spec: WorkloadSpec, store: RegistryStore?) throws -> WorkloadSpec {
        guard let text = spec.image, let ref = ImageReference(parsing: text) else { return spec }
        func refuse(_ reason: String) -> APIError {
            APIError(.unprocessableContent, "manifest is invalid: spec.image: \(reason)", errors: [FieldError(path: "spec.image", reason: reason)])
        }
        guard ref.registry == nil else {
            if ref.digest == nil { throw refuse("name a digest (@sha256:...) for an image outside the controller's registry, so that every device runs the same bytes") }
            return spec
        }
        guard let store, let manifest = store.manifest(ref.name, reference: ref.reference) else {
            throw refuse("\(ref) is not in the controller's registry (push it first: skopeo copy ... docker://CONTROLLER/\(ref.name):TAG)")
        }
        var pinned = spec
        pinned.image = ImageReference(registry: nil, name: ref.name, tag: ref.tag, digest: manifest.digest).description
        return pinned
    }

    /// `/v1/images`: what the registry holds and which workloads use it; removing a tag a
    /// workload runs is refused.
    static func imageRoutes(viewer: RouterGroup<BasicRequestContext>, change: RouterGroup<BasicRequestContext>, fleet: Fleet, store: RegistryStore) {
        viewer.get("images") { _, _ in
            let workloads = await fleet.workloadList()
            return APIJSON.response(store.images().map { image in
                ImageView(name: image.name, tag: image.tag, digest: image.digest, size: image.size, usedBy: users(of: image.digest, in: workloads))
            })
        }
        change.delete("images") { request, _ in
            guard let text = request.uri.queryParameters.get("ref"), let ref = ImageReference(parsing: String(text)), ref.registry == nil, let tag = ref.tag else {
                throw APIError(.badRequest, "give ?ref=NAME:TAG of an image in this registry", errors: [FieldError(path: "ref", reason: "must be NAME:TAG")])
            }
            guard let manifest = store.manifest(ref.name, reference: tag) else { throw APIError(.notFound, "image '\(ref.name):\(tag)' not found") }
            let users = users(of: manifest.digest, in: await fleet.workloadList())
            guard users.isEmpty else {
                throw APIError(.conflict, "image '\(ref.name):\(tag)' is used by workload \(users.joined(separator: ", ")); delete or change those first")
            }
            guard store.removeTag(ref.name, tag) else { throw APIError(.internalServerError, "cannot remove the tag") }
            return Response(status: .noContent)
        }
    }

    static func users(of digest: String, in workloads: [WorkloadView]) -> [String] {
        workloads.filter { $0.spec.image.flatMap(ImageReference.init(parsing:))?.digest == digest }.map(\.name).sorted()
    }
}
