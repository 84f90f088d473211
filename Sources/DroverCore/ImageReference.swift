/// An OCI image reference: `[REGISTRY/]NAME[:TAG][@sha256:DIGEST]`. Without a registry host
/// (a first component with a `.` or `:`, or `localhost`), the controller's registry is meant.
public struct ImageReference: Sendable, Equatable, CustomStringConvertible {
    /// `host[:port]`; nil: the controller's registry.
    public var registry: String?
    public var name: String
    public var tag: String?
    public var digest: String?

    public init?(parsing text: String) {
        guard !text.isEmpty, text.utf8.count <= 512, !text.contains(where: { $0.isWhitespace }) else { return nil }
        var rest = Substring(text)
        if let at = rest.firstIndex(of: "@") {
            let digest = String(rest[rest.index(after: at)...])
            guard OCI.hex(ofDigest: digest) != nil else { return nil }
            self.digest = digest
            rest = rest[..<at]
        }
        let components = rest.split(separator: "/", omittingEmptySubsequences: false)
        if components.count > 1, let first = components.first, first.contains(".") || first.contains(":") || first == "localhost" {
            registry = String(first)
            rest = rest.dropFirst(first.count + 1)
        }
        // A tag follows the last ':' after the last '/'.
        if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("/") {
            let tag = String(rest[rest.index(after: colon)...])
            guard OCI.isValidTag(tag) else { return nil }
            self.tag = tag
            rest = rest[..<colon]
        }
        guard OCI.isValidName(String(rest)) else { return nil }
        name = String(rest)
        if tag == nil, digest == nil { tag = "latest" }
    }

    public init(registry: String?, name: String, tag: String?, digest: String?) {
        self.registry = registry
        self.name = name
        self.tag = tag
        self.digest = digest
    }

    /// What to ask the registry's manifests endpoint for: the digest when there is one.
    public var reference: String { digest ?? tag ?? "latest" }

    public var description: String {
        (registry.map { $0 + "/" } ?? "") + name + (tag.map { ":" + $0 } ?? "") + (digest.map { "@" + $0 } ?? "")
    }
}
