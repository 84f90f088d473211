import CDroverTLS
import DroverAPI
import DroverCore
import DroverJSON
import Glibc

/// The agent's image store, under `<data dir>/images/`: blobs by digest (`blobs/sha256/<hex>`),
/// shared by every image; downloads in progress under `partial/`, resumed with HTTP `Range`
/// where they stopped; every manifest, config and layer checked against its digest (and size)
/// before it counts. A blob that does not match is fetched once more, then refused.
public struct ImageStore: Sendable {
    public let root: String
    /// The controller's registry (its API URL) and this device's credentials for it.
    public let controller: String?
    let credentials: DeviceCredentials?
    let caPEM: String?

    public init(dataDir: String, controller: String?, credentials: DeviceCredentials?) {
        root = dataDir + "/images"
        self.controller = controller
        self.credentials = credentials
        caPEM = credentials?.ca
        for dir in ["", "/blobs", "/blobs/sha256", "/partial"] { mkdir(root + dir, 0o700) }
    }

    public struct Pulled: Sendable, Equatable {
        public var manifest: String
        public var config: String
        public var layers: [String]
        /// Bytes that came over the network, and bytes found in the store or in a partial download.
        public var fetched: Int64
        public var reused: Int64
    }

    public enum PullError: Error, CustomStringConvertible {
        case reference(String)
        case registry(String)
        case digestMismatch(String)
        case storage(String)

        public var description: String {
            switch self {
            case .reference(let m), .registry(let m), .digestMismatch(let m), .storage(let m): m
            }
        }
    }

    static let maxBlobBytes: Int64 = 8 << 30

    static let manifestTypes = [
        "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.distribution.manifest.list.v2+json",
    ]

    // MARK: Pull

    public func pull(_ text: String, log: (String) -> Void = { _ in }) throws(PullError) -> Pulled {
        guard let ref = ImageReference(parsing: text) else { throw .reference("'\(text.prefix(200))' is not an image reference (NAME[:TAG][@sha256:DIGEST])") }
        let source = try registry(for: ref)
        var pulled = Pulled(manifest: "", config: "", layers: [], fetched: 0, reused: 0)
        var (digest, manifest) = try fetchManifest(source, ref.name, ref.reference, expected: ref.digest)
        if manifest.manifests != nil {
            // An index: the entry for this machine's platform.
            let arch = MachineInfo.arch()
            guard let entry = manifest.manifests?.first(where: { $0.platform?.os == "linux" && $0.platform?.architecture == arch }) else {
                throw .registry("\(ref) has no image for linux/\(arch)")
            }
            (digest, manifest) = try fetchManifest(source, ref.name, entry.digest, expected: entry.digest)
        }
        guard let config = manifest.config, let layers = manifest.layers else { throw .registry("\(ref): the manifest names no config or layers") }
        pulled.manifest = digest
        pulled.config = config.digest
        for blob in [config] + layers {
            let (fetched, reused) = try ensureBlob(source, ref.name, blob, log: log)
            pulled.fetched += fetched
            pulled.reused += reused
        }
        pulled.layers = layers.map(\.digest)
        return pulled
    }

    struct Descriptor: Codable { var digest: String; var size: Int64?; var mediaType: String?; var platform: Platform? }
    struct Platform: Codable { var os: String?; var architecture: String? }
    struct Manifest: Codable { var config: Descriptor?; var layers: [Descriptor]?; var manifests: [Descriptor]? }

    struct Source {
        var exchange: HTTPExchange
        var authorization: [(String, String)]
        var label: String
    }

    /// The controller's registry (HTTPS or loopback HTTP, the pinned CA, the device's own
    /// credentials) or the one the reference names (HTTPS with the system's roots; plain HTTP
    /// only on loopback).
    func registry(for ref: ImageReference) throws(PullError) -> Source {
        if let host = ref.registry {
            guard let parsed = try? HTTPExchange.Endpoint(url: "https://" + host) else { throw .reference("bad registry host '\(host)'") }
            // Plain HTTP only to this machine.
            let loopback = parsed.isLoopback
            guard let endpoint = try? HTTPExchange.Endpoint(url: (loopback ? "http://" : "https://") + host) else { throw .reference("bad registry host '\(host)'") }
            return Source(exchange: HTTPExchange(endpoint: endpoint, caPEM: nil, verify: true), authorization: [], label: host)
        }
        guard let controller, let endpoint = try? HTTPExchange.Endpoint(url: controller) else {
            throw .reference("\(ref) names no registry, and this agent knows no controller (enroll it, or name a registry)")
        }
        var authorization: [(String, String)] = []
        if let credentials {
            authorization = [("Authorization", "Basic " + Base64.encode(Array("\(credentials.username):\(credentials.password)".utf8)))]
        }
        return Source(exchange: HTTPExchange(endpoint: endpoint, caPEM: endpoint.tls ? caPEM : nil, verify: true), authorization: authorization, label: controller)
    }

    func fetchManifest(_ source: Source, _ name: String, _ reference: String, expected: String?) throws(PullError) -> (String, Manifest) {
        let response: HTTPExchange.Response
        do {
            response = try source.exchange.send("GET", "/v2/\(name)/manifests/\(reference)", headers: source.authorization + [("Accept", Self.manifestTypes.joined(separator: ", "))])
        } catch {
            throw .registry("\(source.label): \(error)")
        }
        guard response.status == 200 else { throw .registry("\(source.label) answered \(response.status) for \(name):\(reference)") }
        let digest = "sha256:" + Self.sha256(response.body)
        if let expected, expected != digest { throw .digestMismatch("the manifest \(name)@\(expected) from \(source.label) hashes to \(digest)") }
        guard let manifest = try? JSON.decode(Manifest.self, from: Array(response.body)) else { throw .registry("\(name):\(reference) is not an image manifest") }
        try write(response.body, toBlob: digest)
        return (digest, manifest)
    }
}
