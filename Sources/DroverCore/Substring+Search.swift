/// Substring search without `_StringProcessing`: its `contains(_:)`, `firstRange(of:)` and
/// `replacing(_:with:)` pull the regex engine into a static binary (0.8 MB of the agent's
/// code). Exact bytes, no Unicode equivalence: what searching log lines, file contents and
/// encoded JSON wants.
extension Collection where Element: Equatable {
    /// The first occurrence of `pattern`.
    public func firstOccurrence(of pattern: some Collection<Element>) -> Range<Index>? {
        guard let first = pattern.first else { return startIndex..<startIndex }
        var i = startIndex
        while let start = self[i...].firstIndex(of: first) {
            var h = start
            var p = pattern.startIndex
            while p < pattern.endIndex, h < endIndex, self[h] == pattern[p] {
                formIndex(after: &h)
                pattern.formIndex(after: &p)
            }
            if p == pattern.endIndex { return start..<h }
            i = index(after: start)
        }
        return nil
    }
}

extension StringProtocol {
    /// The first occurrence of `needle`'s bytes, as a range of this string's indices.
    public func range(ofBytes needle: some StringProtocol) -> Range<Index>? {
        utf8.firstOccurrence(of: needle.utf8)
    }

    public func containsBytes(_ needle: some StringProtocol) -> Bool { range(ofBytes: needle) != nil }

    /// Every occurrence of `needle` replaced, left to right.
    public func replacingBytes(_ needle: some StringProtocol, with replacement: some StringProtocol) -> String {
        var out = ""
        var rest = self[...]
        while !needle.isEmpty, let found = rest.range(ofBytes: needle) {
            out += rest[..<found.lowerBound]
            out += replacement
            rest = rest[found.upperBound...]
        }
        return out + rest
    }
}
