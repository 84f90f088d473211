/// A named volume a container mounts: `DATA_DIR/volumes/<workload>/<name>` on the device,
/// kept across restarts, replacements and upgrades of the workload (and after it is deleted,
/// until removed by hand), shared by the workload's replicas on one device.
public struct VolumeMount: Hashable, Codable, Sendable {
    /// 1-63 lowercase letters, digits or '-' (as a workload name).
    public var name: String
    /// Absolute path in the container; not `/`, nor under /proc, /sys or /dev; no ':' or ','
    /// (they separate fields of a mount option).
    public var path: String
    public var readOnly: Bool

    public init(name: String, path: String, readOnly: Bool = false) {
        self.name = name
        self.path = path
        self.readOnly = readOnly
    }

    public static let maxCount = 16

    /// Where a volume may be mounted: an absolute, normalised path of at most 255 bytes, without
    /// ':' or ','.
    public static func isValidPath(_ path: String) -> Bool {
        guard path.hasPrefix("/"), path.utf8.count <= 255, path != "/" else { return false }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        guard parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." && !$0.contains(where: { $0 == "\0" || $0 == ":" || $0 == "," }) }) else { return false }
        return !["proc", "sys", "dev"].contains(parts.first.map(String.init) ?? "")
    }

    /// Problems with a list of volumes, by field (`volumes[1].path`); empty when fine.
    public static func problems(_ volumes: [VolumeMount]) -> [(field: String, reason: String)] {
        var out: [(String, String)] = []
        if volumes.count > maxCount { out.append(("volumes", "at most \(maxCount) volumes")) }
        var names = Set<String>()
        var paths = Set<String>()
        for (i, v) in volumes.prefix(maxCount).enumerated() {
            if !Names.isValidWorkloadName(v.name) { out.append(("volumes[\(i)].name", "must be 1-63 lowercase letters, digits or '-', found '\(v.name.prefix(70))'")) }
            if !isValidPath(v.path) {
                out.append(("volumes[\(i)].path", "must be an absolute path (not /, nor under /proc, /sys or /dev, no '.' or '..'), found '\(v.path.prefix(70))'"))
            }
            if !names.insert(v.name).inserted { out.append(("volumes[\(i)].name", "'\(v.name.prefix(70))' is named twice")) }
            if !paths.insert(v.path).inserted { out.append(("volumes[\(i)].path", "'\(v.path.prefix(70))' is mounted twice")) }
            // One volume inside another would be mounted through a directory the container writes.
            if let outer = volumes.prefix(maxCount).first(where: { v.path.hasPrefix($0.path + "/") }) {
                out.append(("volumes[\(i)].path", "'\(v.path.prefix(70))' lies inside volume \(outer.name); volumes may not nest"))
            }
        }
        return out
    }
}
