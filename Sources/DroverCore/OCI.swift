/// Names in the OCI distribution spec: repository names, tags and sha256 digests.
public enum OCI {
    /// `sha256:<64 hex>`; the only algorithm stored.
    public static func hex(ofDigest digest: String) -> String? {
        guard digest.hasPrefix("sha256:") else { return nil }
        let hex = digest.dropFirst(7)
        guard hex.count == 64, hex.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else { return nil }
        return String(hex)
    }

    /// The OCI distribution spec's repository name: components joined by `/`, each
    /// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`; at most 255 characters.
    public static func isValidName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 255 else { return false }
        return name.split(separator: "/", omittingEmptySubsequences: false).allSatisfy(isValidComponent)
    }

    private static func isValidComponent(_ component: Substring) -> Bool {
        let b = Array(component.utf8)
        func alnum(_ i: Int) -> Bool { i < b.count && ((b[i] >= 0x61 && b[i] <= 0x7A) || (b[i] >= 0x30 && b[i] <= 0x39)) }
        guard alnum(0) else { return false }
        var i = 0
        while i < b.count {
            if alnum(i) { i += 1; continue }
            switch b[i] {
            case UInt8(ascii: "."): i += 1
            case UInt8(ascii: "_"): i += (i + 1 < b.count && b[i + 1] == UInt8(ascii: "_")) ? 2 : 1
            case UInt8(ascii: "-"): while i < b.count, b[i] == UInt8(ascii: "-") { i += 1 }
            default: return false
            }
            guard alnum(i) else { return false }
        }
        return true
    }

    /// `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
    public static func isValidTag(_ tag: String) -> Bool {
        guard let first = tag.first, tag.count <= 128, first.isASCII, first.isLetter || first.isNumber || first == "_" else { return false }
        return tag.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "." || $0 == "-") }
    }
}
