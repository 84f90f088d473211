import Foundation
import Testing

/// The agent runs on small devices: it links no Foundation at all (not even
/// FoundationEssentials: its JSON is `DroverJSON`), no ArgumentParser, and neither GRDB nor
/// Yams (DESIGN.md, "The agent stays small"); and the device build (`tools/build-agent`)
/// stays within its size and memory budgets.
@Suite("Agent footprint")
struct FootprintTests {
    /// Ceilings the device build must stay under: what it measures today plus a few percent,
    /// lowered as the agent shrinks. Issue 12's targets are 15 MB and 10 MiB; today the
    /// agent is at about 10.5 MB and 4.8–5.2 MiB (README, "Footprint"). A change that brings
    /// Foundation or the regex engine back (`contains` on strings: see `Substring+Search`)
    /// costs 0.8 MB or more and fails the size check.
    static let sizeBudget = 11_200_000
    static let idlePSSBudgetKiB = 6144

    /// The agent as it goes to a device, built by `tools/build-agent` (which `tools/test` runs).
    static func deviceBuild() throws -> String {
        let path = Harness.repoRoot + "/.build-static/drover-agent"
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw HarnessError("\(path) is missing: tools/test builds it (tools/build-agent)")
        }
        return path
    }

    @Test("the device build of drover-agent (static, stripped) stays within its size budget")
    func sizeBudget() throws {
        let size = try #require(try FileManager.default.attributesOfItem(atPath: Self.deviceBuild())[.size] as? Int)
        #expect(size > 1_000_000, "the check must see the real binary")
        #expect(size <= Self.sizeBudget, "drover-agent is \(size) bytes, over its budget of \(Self.sizeBudget)")
        // The agent unmaps its own code (CodeTrimService): code the loader patched would be lost.
        let dynamic = try Self.output("/usr/bin/readelf", ["-d", Self.deviceBuild()])
        #expect(dynamic.contains("NEEDED") && !dynamic.contains("TEXTREL"), "\(dynamic)")
    }

    @Test("an idle agent of the device build, enrolled and online with the default beats, stays within its memory budget (PSS)")
    func idleMemoryBudget() async throws {
        let agent = try Self.deviceBuild()
        // The binary's pages start out of the page cache, as after a device boots: what the
        // agent maps then is what it reads, not what a build or an earlier run left cached.
        let fd = open(agent, O_RDONLY)
        #expect(fd >= 0)
        fsync(fd)
        posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_DONTNEED))
        close(fd)
        try await FleetTestbed.run("footprint") { bed in
            try bed.startAgent("gw-idle", labels: "site=a", capacity: "cpu=1,memory=256Mi", extra: ["--beat-interval", "5", "--idle-beat-interval", "300"], executable: agent)
            try await bed.waitForDevices(online: 1)
            // The agent trims its mapped code 10 s after its start (CodeTrimService); what is
            // measured is what it maps again while idle after that.
            try await Task.sleep(for: .seconds(20))
            let pid = try #require(bed.agents["gw-idle"]?.pid)
            let rollup = try String(contentsOfFile: "/proc/\(pid)/smaps_rollup", encoding: .utf8)
            let pss = try #require(rollup.split(separator: "\n").first { $0.hasPrefix("Pss:") }.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") })
            #expect(pss > 1024, "the check must see the agent's memory: \(rollup)")
            #expect(pss <= Self.idlePSSBudgetKiB, "an idle drover-agent takes \(pss) KiB of PSS, over its budget of \(Self.idlePSSBudgetKiB) KiB:\n\(rollup)")
        }
    }

    static func output(_ executable: String, _ arguments: [String]) throws -> String {
        try Harness.run(executable, arguments).output
    }

    @Test("drover-agent loads no Foundation library, not even FoundationEssentials")
    func noFoundation() throws {
        let needed = try Self.output("/usr/bin/readelf", ["-d", Harness.binary("drover-agent")])
        #expect(needed.contains("libswiftCore.so"), "the check must see the agent's libraries:\n\(needed)")
        for library in ["libFoundation.so", "libFoundationEssentials.so", "libFoundationNetworking.so", "libFoundationXML.so", "libFoundationInternationalization.so", "lib_FoundationICU.so"] {
            #expect(!needed.contains(library), "drover-agent links \(library)")
        }
    }

    @Test("drover-agent contains neither GRDB, Yams nor ArgumentParser")
    func noHeavyDependencies() throws {
        let symbols = try Self.output("/usr/bin/nm", ["--defined-only", Harness.binary("drover-agent")])
        #expect(symbols.contains("DroverAgent"), "the check must see the agent's own symbols")
        #expect(!symbols.contains("4GRDB"))
        #expect(!symbols.contains("4Yams"))
        #expect(!symbols.contains("14ArgumentParser"))
        // TLS comes from the system's OpenSSL, which libmosquitto loads anyway: no BoringSSL copy.
        #expect(!symbols.contains("CCryptoBoringSSL") && !symbols.contains("CNIOBoringSSL"))
        // The controller does link GRDB: the same check finds it there.
        let controller = try Self.output("/usr/bin/nm", ["--defined-only", Harness.binary("drover-controller")])
        #expect(controller.contains("4GRDB") && controller.contains("14ArgumentParser"))
    }
}
