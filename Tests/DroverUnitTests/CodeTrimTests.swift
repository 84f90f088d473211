import DroverAgent
import Testing

/// The agent's working-set trim: its own code is unmapped, and runs on, mapped again as used.
@Suite("Code trim")
struct CodeTrimTests {
    /// KiB of this process's read-only mappings of its own executable, from /proc/self/smaps.
    static func ownCodeResidentKiB() -> Int {
        guard let smaps = POSIX.readFile("/proc/self/smaps", limit: 64 << 20),
            let exe = POSIX.readFile("/proc/self/maps", limit: 1 << 20)?.split(separator: "\n").first?.split(separator: " ", omittingEmptySubsequences: true).last
        else { return -1 }
        var total = 0
        var inOwnCode = false
        for line in smaps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if let range = fields.first, range.contains("-"), fields.count >= 2, !range.hasSuffix(":") {
                inOwnCode = fields.last == exe && !fields[1].contains("w")
            } else if inOwnCode, fields.first == "Rss:", fields.count >= 2 {
                total += Int(fields[1]) ?? 0
            }
        }
        return total
    }

    @Test("trimming unmaps the process's own code, which then runs on, mapping what it uses again")
    func trim() {
        let before = Self.ownCodeResidentKiB()
        #expect(before > 64, "the check must see the test binary's code: \(before) KiB")
        #expect(POSIX.trimOwnCode() == nil)
        let after = Self.ownCodeResidentKiB()
        #expect(after < before * 3 / 4, "\(before) KiB mapped before the trim, \(after) KiB after")
        // Still working: a sort, a string, a dictionary, all through code mapped again.
        let words = ["gw-3", "gw-1", "gw-2"].sorted()
        #expect(words.joined(separator: ",") == "gw-1,gw-2,gw-3")
        #expect(Dictionary(grouping: words, by: \.count).count == 1)
    }
}
