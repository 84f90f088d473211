import ArgumentParser
import DroverCore
import Foundation

/// `drover image push FILE NAME:TAG`: an OCI image archive (a tar of an OCI layout, as
/// `tools/build-image` and `skopeo copy ... oci-archive:` write) or an OCI layout directory,
/// into the controller's registry: every blob it lacks, then the manifests, then the tag.
struct ImagePush: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "push", abstract: "Upload an OCI image archive or layout to the controller's registry.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "An OCI image archive (.tar) or OCI layout directory.") var source: String
    @Argument(help: "NAME:TAG to store it as, e.g. demo/busybox:v1.") var image: String

    struct Descriptor: Decodable { var digest: String; var mediaType: String?; var annotations: [String: String]? }
    struct Manifest: Decodable { var mediaType: String?; var config: Descriptor?; var layers: [Descriptor]?; var manifests: [Descriptor]? }

    func validate() throws {
        guard let ref = ImageReference(parsing: image), ref.registry == nil, ref.digest == nil, image.contains(":") else {
            throw ValidationError("'\(image)' must be NAME:TAG, e.g. demo/busybox:v1")
        }
    }

    func run() async throws {
        guard let ref = ImageReference(parsing: image), let tag = ref.tag else { fail("'\(image)' must be NAME:TAG") }
        let layout = try unpacked()
        defer { if layout != source { try? FileManager.default.removeItem(atPath: layout) } }
        guard let indexData = FileManager.default.contents(atPath: layout + "/index.json"),
            let index = try? JSONDecoder().decode(Manifest.self, from: indexData), let top = index.manifests?.first
        else { fail("\(source) is not an OCI image layout (no index.json with a manifest)") }
        var pushed = (blobs: 0, present: 0)
        try await pushManifest(top.digest, mediaType: top.mediaType, reference: tag, name: ref.name, layout: layout, counts: &pushed)
        print("pushed \(ref.name):\(tag) (\(top.digest)): \(pushed.blobs) blobs uploaded, \(pushed.present) already there")
    }

    /// The layout directory: `source` itself, or the archive unpacked into a temporary one.
    func unpacked() throws -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source, isDirectory: &isDirectory) else { fail("cannot read \(source)") }
        if isDirectory.boolValue { return source }
        let dir = NSTemporaryDirectory() + "drover-push-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/bin/tar")
        tar.arguments = ["-C", dir, "--no-same-owner", "-xf", source]
        tar.standardOutput = FileHandle.nullDevice
        tar.standardError = FileHandle.nullDevice
        try tar.run()
        tar.waitUntilExit()
        guard tar.terminationStatus == 0 else {
            try? FileManager.default.removeItem(atPath: dir)
            fail("\(source) is not an OCI image archive (tar cannot read it)")
        }
        return dir
    }

    func blob(_ digest: String, in layout: String) -> Data {
        guard let hex = OCI.hex(ofDigest: digest), let data = try? Data(contentsOf: URL(fileURLWithPath: layout + "/blobs/sha256/" + hex), options: .alwaysMapped) else {
            fail("the layout lacks blob \(digest)")
        }
        return data
    }

    /// Blobs first (each only if the registry lacks it), child manifests by digest, then this one.
    func pushManifest(_ digest: String, mediaType: String?, reference: String, name: String, layout: String, counts: inout (blobs: Int, present: Int)) async throws {
        let body = blob(digest, in: layout)
        guard let manifest = try? JSONDecoder().decode(Manifest.self, from: body) else { fail("\(digest) is not an image manifest or index") }
        for child in manifest.manifests ?? [] {
            try await pushManifest(child.digest, mediaType: child.mediaType, reference: child.digest, name: name, layout: layout, counts: &counts)
        }
        for d in (manifest.config.map { [$0] } ?? []) + (manifest.layers ?? []) {
            let (status, _) = await options.client.exchange("HEAD", "/v2/\(name)/blobs/\(d.digest)")
            if status == 200 {
                counts.present += 1
                continue
            }
            let (code, answer) = await options.client.exchange(
                "POST", "/v2/\(name)/blobs/uploads/?digest=\(d.digest)", body: blob(d.digest, in: layout), contentType: "application/octet-stream", timeout: 3600)
            guard code == 201 else { fail("uploading \(d.digest): \(Self.registryMessage(code, answer))") }
            counts.blobs += 1
        }
        let type = mediaType ?? manifest.mediaType ?? "application/vnd.oci.image.manifest.v1+json"
        let (code, answer) = await options.client.exchange("PUT", "/v2/\(name)/manifests/\(reference)", body: body, contentType: type)
        guard code == 201 else { fail("storing manifest \(digest): \(Self.registryMessage(code, answer))") }
    }

    static func registryMessage(_ status: Int, _ body: Data) -> String {
        struct Errors: Decodable {
            struct Entry: Decodable { var code: String?; var message: String? }
            var errors: [Entry]?
            var message: String?
        }
        let decoded = try? JSONDecoder().decode(Errors.self, from: body)
        return decoded?.errors?.first?.message ?? decoded?.message ?? "HTTP \(status)"
    }
}
