import DroverAPI
import Foundation
import HTTPTypes
import Hummingbird
import NIOPosix

/// The OCI distribution API under `/v2/`, enough for `skopeo` and the agents to push and pull:
/// blobs (`HEAD`, `GET` with `Range`, chunked and monolithic uploads), manifests by tag or digest,
/// tags lists. Reads need a viewer token or an enrolled device's credentials, writes an
/// operator's token.
extension API {
    static func registryRoutes(_ router: Router<BasicRequestContext>, access: AccessControl, store: RegistryStore) {
        // Devices pull with their own MQTT credentials (Basic); people and tools with tokens.
        let read = router.group("v2").add(middleware: Authorization(access: access, needs: .viewer, devices: true))
        let write = router.group("v2").add(middleware: Authorization(access: access, needs: .operator))
        let files = FileIO()
        read.get { _, _ in Registry.json("{}") }
        read.get("**") { request, context in try await Registry.handle(request, context: context, store: store, files: files) }
        read.head("**") { request, context in try await Registry.handle(request, context: context, store: store, files: files) }
        for method in [HTTPRequest.Method.post, .patch, .put, .delete] {
            write.on("**", method: method) { request, context in try await Registry.handle(request, context: context, store: store, files: files) }
        }
    }
}

enum Registry {
    enum Path: Equatable {
        case blob(name: String, digest: String)
        case uploads(name: String)
        case upload(name: String, id: String)
        case manifest(name: String, reference: String)
        case tags(name: String)
    }

    /// `/v2/<name>/blobs/<digest>`, `/v2/<name>/blobs/uploads/[<id>]`, `/v2/<name>/manifests/<ref>`,
    /// `/v2/<name>/tags/list`; the name may hold slashes.
    static func parse(_ path: String) throws(RegistryError) -> Path {
        guard path.hasPrefix("/v2/") else { throw .unsupported("not a registry path") }
        let rest = String(path.dropFirst(4))
        func name(_ text: Substring) throws(RegistryError) -> String {
            guard RegistryStore.isValidName(String(text)) else { throw .nameInvalid(String(text.prefix(255))) }
            return String(text)
        }
        if let r = rest.range(of: "/blobs/uploads", options: .backwards) {
            let after = rest[r.upperBound...].drop { $0 == "/" }
            return after.isEmpty ? .uploads(name: try name(rest[..<r.lowerBound])) : .upload(name: try name(rest[..<r.lowerBound]), id: String(after))
        }
        if let r = rest.range(of: "/blobs/", options: .backwards) {
            return .blob(name: try name(rest[..<r.lowerBound]), digest: String(rest[r.upperBound...]))
        }
        if let r = rest.range(of: "/manifests/", options: .backwards) {
            return .manifest(name: try name(rest[..<r.lowerBound]), reference: String(rest[r.upperBound...]))
        }
        if rest.hasSuffix("/tags/list") { return .tags(name: try name(rest.dropLast(10))) }
        throw .unsupported("no such registry endpoint")
    }

    static func handle(_ request: Request, context: BasicRequestContext, store: RegistryStore, files: FileIO) async throws -> Response {
        do {
            let path = try parse(request.uri.path)
            switch (request.method, path) {
            case (.head, .blob(_, let digest)), (.get, .blob(_, let digest)):
                return try await blob(digest, request: request, context: context, store: store, files: files)
            case (.post, .uploads(let name)):
                return try await startUpload(name, request: request, store: store)
            case (.patch, .upload(let name, let id)):
                let size = try await store.uploads.exclusive(id) { try await append(request, to: id, store: store) }
                return uploadAccepted(name, id: id, size: size)
            case (.put, .upload(let name, let id)):
                guard let digest = request.uri.queryParameters.get("digest"), let path = store.uploadPath(id) else { throw RegistryError.digestInvalid("PUT needs ?digest=") }
                try await store.uploads.exclusive(id) {
                    _ = try await append(request, to: id, store: store)
                    try await commit(path, as: String(digest), store: store)
                }
                return created("/v2/\(name)/blobs/\(digest)", digest: String(digest))
            case (.delete, .upload(_, let id)):
                guard let path = store.uploadPath(id), FileManager.default.fileExists(atPath: path) else { throw RegistryError.blobUploadUnknown }
                try? FileManager.default.removeItem(atPath: path)
                return Response(status: .noContent)
            case (.head, .manifest(let name, let reference)), (.get, .manifest(let name, let reference)):
                guard let m = store.manifest(name, reference: reference) else { throw RegistryError.manifestUnknown(reference) }
                var headers: HTTPFields = [.contentType: m.mediaType, .contentLength: "\(m.body.count)"]
                headers[dockerDigest] = m.digest
                return Response(status: .ok, headers: headers, body: request.method == .head ? ResponseBody() : ResponseBody(byteBuffer: ByteBuffer(bytes: m.body)))
            case (.put, .manifest(let name, let reference)):
                guard RegistryStore.hex(ofDigest: reference) != nil || RegistryStore.isValidTag(reference) else { throw RegistryError.manifestInvalid("'\(reference.prefix(128))' is neither a tag nor a digest") }
                let body = try await request.body.collect(upTo: RegistryStore.maxManifestBytes)
                let mediaType = request.headers[.contentType] ?? "application/vnd.oci.image.manifest.v1+json"
                let digest = try store.putManifest(name, reference: reference, body: Data(body.readableBytesView), mediaType: mediaType)
                return created("/v2/\(name)/manifests/\(digest)", digest: digest)
            case (.get, .tags(let name)):
                guard let tags = store.tags(name) else { throw RegistryError.nameUnknown(name) }
                struct TagList: Encodable { var name: String; var tags: [String] }
                return APIJSON.response(TagList(name: name, tags: tags))
            default:
                throw RegistryError.unsupported("\(request.method.rawValue) is not supported on \(request.uri.path.prefix(200))")
            }
        } catch let error as RegistryError {
            return response(error)
        }
    }

    static let dockerDigest = HTTPField.Name("Docker-Content-Digest")!  // a constant, valid header name
    static let uploadUUID = HTTPField.Name("Docker-Upload-UUID")!

    static func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    static func created(_ location: String, digest: String) -> Response {
        var headers: HTTPFields = [.location: location, .contentLength: "0"]
        headers[dockerDigest] = digest
        return Response(status: .created, headers: headers)
    }

    static func uploadAccepted(_ name: String, id: String, size: Int64) -> Response {
        var headers: HTTPFields = [.location: "/v2/\(name)/blobs/uploads/\(id)", .range: "0-\(max(size - 1, 0))", .contentLength: "0"]
        headers[uploadUUID] = id
        return Response(status: .accepted, headers: headers)
    }

    /// HEAD or GET of a blob, all of it or the `Range: bytes=a-b` asked for.
    static func blob(_ digest: String, request: Request, context: BasicRequestContext, store: RegistryStore, files: FileIO) async throws -> Response {
        guard let hex = RegistryStore.hex(ofDigest: digest) else { throw RegistryError.digestInvalid("'\(digest.prefix(80))' is not sha256:<64 hex digits>") }
        guard let size = store.blobSize(digest) else { throw RegistryError.blobUnknown(digest) }
        var headers: HTTPFields = [.contentType: "application/octet-stream", .acceptRanges: "bytes"]
        headers[dockerDigest] = digest
        if size == 0 {
            headers[.contentLength] = "0"
            return Response(status: .ok, headers: headers)
        }
        var range: ClosedRange<Int64> = 0...(size - 1)
        var status = HTTPResponse.Status.ok
        if let text = request.headers[.range] {
            guard let asked = parseRange(text, size: size) else {
                headers[.contentRange] = "bytes */\(size)"
                return Response(status: .rangeNotSatisfiable, headers: headers)
            }
            range = asked
            status = .partialContent
            headers[.contentRange] = "bytes \(asked.lowerBound)-\(asked.upperBound)/\(size)"
        }
        headers[.contentLength] = "\(range.count)"
        if request.method == .head { return Response(status: status, headers: headers) }
        let body = try await files.loadFile(path: store.blobPath(hex), range: Int(range.lowerBound)...Int(range.upperBound), context: context)
        return Response(status: status, headers: headers, body: body)
    }

    /// `bytes=a-b`, `bytes=a-` or `bytes=-n` (the last n); nil if it does not fit `size`.
    static func parseRange(_ text: String, size: Int64) -> ClosedRange<Int64>? {
        guard text.hasPrefix("bytes="), size > 0 else { return nil }
        let parts = text.dropFirst(6).split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        if parts[0].isEmpty {
            guard let n = Int64(parts[1]), n > 0 else { return nil }
            return max(0, size - n)...(size - 1)
        }
        guard let start = Int64(parts[0]), start >= 0, start < size else { return nil }
        let end = parts[1].isEmpty ? size - 1 : Int64(parts[1]).map { min($0, size - 1) }
        guard let end, end >= start else { return nil }
        return start...end
    }

    static func startUpload(_ name: String, request: Request, store: RegistryStore) async throws -> Response {
        // Blobs are shared by every repository: a mount of one that is here is already done.
        if let mounted = request.uri.queryParameters.get("mount"), store.blobSize(String(mounted)) != nil {
            return created("/v2/\(name)/blobs/\(mounted)", digest: String(mounted))
        }
        let id = try store.startUpload()
        if let digest = request.uri.queryParameters.get("digest"), let path = store.uploadPath(id) {
            // Monolithic: the whole blob in the POST.
            _ = try await append(request, to: id, store: store)
            try await commit(path, as: String(digest), store: store)
            return created("/v2/\(name)/blobs/\(digest)", digest: String(digest))
        }
        return uploadAccepted(name, id: id, size: 0)
    }

    /// Hashing a blob of gigabytes takes seconds: on NIO's blocking-I/O pool, not the
    /// cooperative one that serves every other request.
    static func commit(_ path: String, as digest: String, store: RegistryStore) async throws {
        try await NIOThreadPool.singleton.runIfActive { try store.commit(path, as: digest) }
    }

    /// Appends the request's body to upload `id`, as it arrives; returns the upload's size.
    static func append(_ request: Request, to id: String, store: RegistryStore) async throws -> Int64 {
        guard let path = store.uploadPath(id), let handle = FileHandle(forUpdatingAtPath: path) else { throw RegistryError.blobUploadUnknown }
        defer { try? handle.close() }
        var size = Int64(try handle.seekToEnd())
        for try await buffer in request.body {
            size += Int64(buffer.readableBytes)
            guard size <= RegistryStore.maxBlobBytes else {
                try? FileManager.default.removeItem(atPath: path)
                throw RegistryError.sizeInvalid("a blob may hold at most \(RegistryStore.maxBlobBytes) bytes")
            }
            try handle.write(contentsOf: buffer.readableBytesView)
        }
        return size
    }

    static func response(_ error: RegistryError) -> Response {
        let (status, code, message): (HTTPResponse.Status, String, String)
        switch error {
        case .nameInvalid(let n): (status, code, message) = (.badRequest, "NAME_INVALID", "invalid repository name '\(n)'")
        case .nameUnknown(let n): (status, code, message) = (.notFound, "NAME_UNKNOWN", "repository '\(n)' not known")
        case .blobUnknown(let d): (status, code, message) = (.notFound, "BLOB_UNKNOWN", "blob \(d) not known")
        case .blobUploadUnknown: (status, code, message) = (.notFound, "BLOB_UPLOAD_UNKNOWN", "upload not known")
        case .uploadBusy: (status, code, message) = (.conflict, "BLOB_UPLOAD_INVALID", "another request is writing this upload")
        case .digestInvalid(let m): (status, code, message) = (.badRequest, "DIGEST_INVALID", m)
        case .manifestUnknown(let r): (status, code, message) = (.notFound, "MANIFEST_UNKNOWN", "manifest '\(r.prefix(128))' not known")
        case .manifestInvalid(let m): (status, code, message) = (.badRequest, "MANIFEST_INVALID", m)
        case .manifestBlobUnknown(let d): (status, code, message) = (.badRequest, "MANIFEST_BLOB_UNKNOWN", "the manifest names blob \(d.prefix(80)), which is not here")
        case .sizeInvalid(let m): (status, code, message) = (.badRequest, "SIZE_INVALID", m)
        case .unsupported(let m): (status, code, message) = (.methodNotAllowed, "UNSUPPORTED", m)
        case .storage(let m): (status, code, message) = (.internalServerError, "UNKNOWN", m)
        }
        struct Body: Encodable {
            struct Entry: Encodable { var code: String; var message: String }
            var errors: [Entry]
        }
        return APIJSON.response(Body(errors: [.init(code: code, message: message)]), status: status)
    }
}
