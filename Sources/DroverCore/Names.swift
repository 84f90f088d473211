/// Rules for the names that appear in MQTT topics, file names and URLs.
public enum Names {
    /// Device ids double as MQTT usernames and topic levels, so they must not contain
    /// `/`, `+` or `#` and must stay short.
    /// `.` and `..` are refused: ids also name directories.
    public static func isValidDeviceID(_ id: String) -> Bool {
        isValid(id, maxLength: 64, extra: "._-") && id != "." && id != ".."
    }

    /// `<workload>-<ordinal>` or `<workload>-<device>`: at most 128 characters, never `.` or `..`.
    public static func isValidReplicaID(_ id: String) -> Bool {
        isValid(id, maxLength: 128, extra: "._-") && id != "." && id != ".."
    }

    /// Workload names appear in replica ids, file names and URL paths: lowercase DNS labels.
    public static func isValidWorkloadName(_ name: String) -> Bool {
        guard isValid(name, maxLength: 63, extra: "-"), let first = name.first, let last = name.last else { return false }
        return name.allSatisfy { !$0.isUppercase } && first != "-" && last != "-"
    }

    public static func isValidLabelKey(_ key: String) -> Bool {
        isValid(key, maxLength: 63, extra: "._-/")
    }

    public static func isValidLabelValue(_ value: String) -> Bool {
        value.isEmpty || isValid(value, maxLength: 63, extra: "._-")
    }

    private static func isValid(_ s: String, maxLength: Int, extra: String) -> Bool {
        guard !s.isEmpty, s.utf8.count <= maxLength else { return false }
        return s.unicodeScalars.allSatisfy { c in
            (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || extra.unicodeScalars.contains(c)
        }
    }

    /// `root`, a POSIX-portable user name (`[a-z_][a-z0-9_-]*`, at most 32, as useradd takes),
    /// or `UID[:GID]` with ids below 2^31 - 1.
    public static func isValidRunAs(_ text: String) -> Bool {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        if parts.allSatisfy({ !$0.isEmpty && $0.count <= 10 && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }), parts.count <= 2 {
            return parts.allSatisfy { (Int($0) ?? Int.max) < Int(Int32.max) }
        }
        guard let first = text.unicodeScalars.first, text.count <= 32 else { return false }
        let lower = { (c: Unicode.Scalar) in c >= "a" && c <= "z" }
        let digit = { (c: Unicode.Scalar) in c >= "0" && c <= "9" }
        return (lower(first) || first == "_") && text.unicodeScalars.allSatisfy { lower($0) || digit($0) || $0 == "_" || $0 == "-" }
    }

    /// `key=value,key=value` as command lines take labels; `bad` is the first pair that is
    /// not a valid key and value.
    public static func parseLabels(_ text: String) -> (labels: [String: String], bad: String?) {
        var labels: [String: String] = [:]
        for pair in text.split(separator: ",") {
            let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2, isValidLabelKey(kv[0]), isValidLabelValue(kv[1]) else { return (labels, String(pair)) }
            labels[kv[0]] = kv[1]
        }
        return (labels, nil)
    }
}
