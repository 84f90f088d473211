import Crypto
import DroverCore
import Foundation
import Synchronization

/// The controller's OCI registry on disk, under `<data dir>/registry/`: blobs content-addressed
/// (`blobs/sha256/<hex>`, manifests too, with their media type beside them), tags as files
/// naming a digest (`repositories/<name>/tags/<tag>`), uploads in progress under `uploads/`.
/// A blob enters only under the digest of its bytes, checked while it is moved in.
struct RegistryStore: Sendable {
    let root: String
    /// One request at a time per upload: a PATCH still writing while a PUT hashes and moves
    /// the file in would put other bytes under the digest.
    let uploads = UploadLocks()

    init(dataDir: String) throws {
        root = dataDir + "/registry"
        for dir in ["blobs/sha256", "uploads", "repositories"] {
            try FileManager.default.createDirectory(atPath: root + "/" + dir, withIntermediateDirectories: true)
        }
    }

    static let maxManifestBytes = 4 << 20
    static let maxBlobBytes: Int64 = 8 << 30

    // MARK: Names

    static func hex(ofDigest digest: String) -> String? { OCI.hex(ofDigest: digest) }
    static func isValidName(_ name: String) -> Bool { OCI.isValidName(name) }
    static func isValidTag(_ tag: String) -> Bool { OCI.isValidTag(tag) }

    // MARK: Blobs

    func blobPath(_ hex: String) -> String { root + "/blobs/sha256/" + hex }

    func blobSize(_ digest: String) -> Int64? {
        guard let hex = Self.hex(ofDigest: digest) else { return nil }
        return (try? FileManager.default.attributesOfItem(atPath: blobPath(hex)))?[.size] as? Int64
    }

    /// Moves `file` in as the blob `digest`, if its bytes hash to it; removes `file` either way.
    func commit(_ file: String, as digest: String) throws(RegistryError) {
        defer { try? FileManager.default.removeItem(atPath: file) }
        guard let hex = Self.hex(ofDigest: digest) else { throw .digestInvalid("'\(digest.prefix(80))' is not sha256:<64 hex digits>") }
        let actual = try Self.sha256(ofFile: file)
        guard actual == hex else { throw .digestInvalid("the bytes hash to sha256:\(actual), not \(digest)") }
        guard rename(file, blobPath(hex)) == 0 else { throw .storage("cannot store blob \(digest): \(String(cString: strerror(errno)))") }
    }

    static func sha256(ofFile path: String) throws(RegistryError) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw .storage("cannot read \(path)") }
        defer { try? handle.close() }
        var hasher = SHA256()
        while true {
            let chunk: Data
            do { chunk = try handle.read(upToCount: 1 << 20) ?? Data() } catch { throw .storage("cannot read \(path): \(error)") }
            if chunk.isEmpty { break }
            hasher.update(data: chunk)
        }
        return Secrets.hex(hasher.finalize())
    }

    // MARK: Uploads

    func uploadPath(_ id: String) -> String? {
        guard id.count == 32, id.allSatisfy(\.isHexDigit) else { return nil }
        return root + "/uploads/" + id
    }

    func startUpload() throws(RegistryError) -> String {
        let id = Secrets.randomHex(bytes: 16)
        guard let path = uploadPath(id), FileManager.default.createFile(atPath: path, contents: nil) else { throw .storage("cannot start an upload") }
        return id
    }

    // MARK: Manifests and tags

    func manifest(_ name: String, reference: String) -> (digest: String, body: Data, mediaType: String)? {
        let digest: String
        if Self.hex(ofDigest: reference) != nil {
            digest = reference
        } else {
            guard Self.isValidTag(reference), let text = try? String(contentsOfFile: tagPath(name, reference), encoding: .utf8) else { return nil }
            digest = text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        // Only what was stored as a manifest (it has a media type), and never a whole layer
        // into memory.
        guard let hex = Self.hex(ofDigest: digest), let mediaType = try? String(contentsOfFile: blobPath(hex) + ".type", encoding: .utf8),
            let size = blobSize(digest), size <= Int64(Self.maxManifestBytes), let body = FileManager.default.contents(atPath: blobPath(hex))
        else { return nil }
        return (digest, body, mediaType)
    }

    func tagPath(_ name: String, _ tag: String) -> String { root + "/repositories/" + name + "/tags/" + tag }

    /// Stores a manifest under its digest and, when `reference` is a tag, points the tag at it.
    /// Every blob it names must be here already.
    func putManifest(_ name: String, reference: String, body: Data, mediaType: String) throws(RegistryError) -> String {
        let hex = Secrets.hex(SHA256.hash(data: body))
        let digest = "sha256:" + hex
        if Self.hex(ofDigest: reference) != nil, reference != digest {
            throw .digestInvalid("the manifest hashes to \(digest), not \(reference)")
        }
        for referenced in try Self.referencedDigests(body) where blobSize(referenced) == nil && manifestType(referenced) == nil {
            throw .manifestBlobUnknown(referenced)
        }
        do {
            try body.write(to: URL(fileURLWithPath: blobPath(hex)), options: .atomic)
            try mediaType.write(toFile: blobPath(hex) + ".type", atomically: true, encoding: .utf8)
            if Self.hex(ofDigest: reference) == nil {
                try FileManager.default.createDirectory(atPath: root + "/repositories/" + name + "/tags", withIntermediateDirectories: true)
                try (digest + "\n").write(toFile: tagPath(name, reference), atomically: true, encoding: .utf8)
            }
        } catch {
            throw .storage("cannot store the manifest: \(error)")
        }
        return digest
    }

    func manifestType(_ digest: String) -> String? {
        Self.hex(ofDigest: digest).flatMap { try? String(contentsOfFile: blobPath($0) + ".type", encoding: .utf8) }
    }

    /// The digests an image manifest (config, layers) or an index (manifests) names.
    static func referencedDigests(_ body: Data) throws(RegistryError) -> [String] {
        struct Descriptor: Decodable { var digest: String }
        struct Manifest: Decodable {
            var config: Descriptor?
            var layers: [Descriptor]?
            var manifests: [Descriptor]?
        }
        guard let m = try? JSONDecoder().decode(Manifest.self, from: body) else { throw .manifestInvalid("not a JSON image manifest or index") }
        return (m.config.map { [$0] } ?? []).map(\.digest) + (m.layers ?? []).map(\.digest) + (m.manifests ?? []).map(\.digest)
    }

    /// Every tag of every repository, with the digest it names and the size of its blobs.
    func images() -> [(name: String, tag: String, digest: String, size: Int64)] {
        let base = root + "/repositories/"
        guard let walker = FileManager.default.enumerator(atPath: base) else { return [] }
        var found: [(String, String, String, Int64)] = []
        while let relative = walker.nextObject() as? String {
            let parts = relative.split(separator: "/").map(String.init)
            guard parts.count >= 3, parts[parts.count - 2] == "tags" else { continue }
            let name = parts.dropLast(2).joined(separator: "/"), tag = parts[parts.count - 1]
            guard let m = manifest(name, reference: tag) else { continue }
            let size = ((try? Self.referencedDigests(m.body)) ?? []).compactMap(blobSize).reduce(0, +)
            found.append((name, tag, m.digest, size))
        }
        return found.sorted { ($0.0, $0.1) < ($1.0, $1.1) }
    }

    func removeTag(_ name: String, _ tag: String) -> Bool {
        guard Self.isValidName(name), Self.isValidTag(tag) else { return false }
        return (try? FileManager.default.removeItem(atPath: tagPath(name, tag))) != nil
    }

    func tags(_ name: String) -> [String]? {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: root + "/repositories/" + name + "/tags") else { return nil }
        return entries.filter(Self.isValidTag).sorted()
    }
}

/// Upload ids with a request in progress.
final class UploadLocks: Sendable {
    private let busy = Mutex<Set<String>>([])

    func exclusive<T>(_ id: String, _ body: () async throws -> T) async throws -> T {
        guard busy.withLock({ $0.insert(id).inserted }) else { throw RegistryError.uploadBusy }
        defer { busy.withLock { _ = $0.remove(id) } }
        return try await body()
    }
}

/// Errors in the OCI distribution spec's terms: `{"errors": [{"code": ..., "message": ...}]}`.
enum RegistryError: Error {
    case nameInvalid(String)
    case nameUnknown(String)
    case blobUnknown(String)
    case blobUploadUnknown
    case uploadBusy
    case digestInvalid(String)
    case manifestUnknown(String)
    case manifestInvalid(String)
    case manifestBlobUnknown(String)
    case sizeInvalid(String)
    case unsupported(String)
    case storage(String)
}
