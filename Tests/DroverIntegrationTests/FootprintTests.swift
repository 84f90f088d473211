import Foundation
import Testing

/// The agent runs on small devices: it links FoundationEssentials only, never full
/// Foundation, and neither GRDB nor Yams (DESIGN.md, "The agent stays small").
@Suite("Agent footprint")
struct FootprintTests {
    static func output(_ executable: String, _ arguments: [String]) throws -> String {
        try Harness.run(executable, arguments).output
    }

    @Test("drover-agent loads no full Foundation library")
    func noFoundation() throws {
        let needed = try Self.output("/usr/bin/readelf", ["-d", Harness.binary("drover-agent")])
        #expect(needed.contains("libFoundationEssentials.so"), "the check must see the agent's libraries:\n\(needed)")
        for library in ["libFoundation.so", "libFoundationNetworking.so", "libFoundationXML.so", "libFoundationInternationalization.so"] {
            #expect(!needed.contains(library), "drover-agent links \(library)")
        }
    }

    @Test("drover-agent contains neither GRDB nor Yams")
    func noHeavyDependencies() throws {
        let symbols = try Self.output("/usr/bin/nm", ["--defined-only", Harness.binary("drover-agent")])
        #expect(symbols.contains("DroverAgent"), "the check must see the agent's own symbols")
        #expect(!symbols.contains("4GRDB"))
        #expect(!symbols.contains("4Yams"))
        // TLS comes from the system's OpenSSL, which libmosquitto loads anyway: no BoringSSL copy.
        #expect(!symbols.contains("CCryptoBoringSSL") && !symbols.contains("CNIOBoringSSL"))
        // The controller does link GRDB: the same check finds it there.
        let controller = try Self.output("/usr/bin/nm", ["--defined-only", Harness.binary("drover-controller")])
        #expect(controller.contains("4GRDB"))
    }
}
