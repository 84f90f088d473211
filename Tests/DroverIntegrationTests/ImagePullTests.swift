import Foundation
import Testing

/// The agent's image store, through `drover-agent pull`, against the controller's registry and
/// Debian's docker-registry (the reference implementation).
@Suite("Agent image pulls", .serialized)
struct ImagePullTests {
    @Test("verified pulls: cached blobs reused, a partial download resumed, a corrupt one fetched again, a lying registry refused; docker-registry too")
    func pulls() async throws {
        try await FleetTestbed.run("pull", Self.body)
    }

    static func pull(_ bed: FleetTestbed, _ image: String) throws -> (status: Int32, output: String) {
        try Harness.run(Harness.binary("drover-agent"), ["pull", image, "--data-dir", bed.agentDir("gw-1")])
    }

    /// "fetched N bytes, M already here" from the last line.
    static func counts(_ output: String) -> (fetched: Int, reused: Int)? {
        guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("pulled ") }) else { return nil }
        let words = line.split(separator: " ")
        guard let f = words.firstIndex(of: "fetched"), f + 3 < words.count, let fetched = Int(words[f + 1]), let reused = Int(words[f + 3]) else { return nil }
        return (fetched, reused)
    }

    static func body(_ bed: FleetTestbed) async throws {
        let archive = bed.dir + "/busybox.tar"
        #expect(try Harness.run(Harness.repoRoot + "/tools/build-image", [archive, "v1", "/bin/true"]).status == 0)
        let registry = "127.0.0.1:\(bed.apiPort)"
        let push = try Harness.run("/usr/bin/skopeo", ["copy", "--dest-tls-verify=false", "--dest-registry-token", bed.api.token ?? "", "oci-archive:\(archive):v1", "docker://\(registry)/demo/busybox:v1"])
        #expect(push.status == 0, "\(push.output)")
        try bed.startAgent("gw-1", labels: "role=gateway", capacity: "cpu=1,memory=256Mi")
        try await bed.waitForDevices(online: 1)

        let first = try pull(bed, "demo/busybox:v1")
        #expect(first.status == 0, "\(first.output)")
        let total = try #require(counts(first.output)).fetched
        #expect(counts(try pull(bed, "demo/busybox:v1").output)?.fetched == 0, "a second pull fetches nothing")

        // The layer: the largest blob.
        let store = bed.agentDir("gw-1") + "/images"
        let blobs = try FileManager.default.contentsOfDirectory(atPath: store + "/blobs/sha256")
        let layer = try #require(blobs.max { RegistryTests.size(store + "/blobs/sha256/" + $0) < RegistryTests.size(store + "/blobs/sha256/" + $1) })
        let bytes = try #require(FileManager.default.contents(atPath: store + "/blobs/sha256/" + layer))

        // Cut in the middle: half of it is on disk, only the rest comes over the network.
        try FileManager.default.removeItem(atPath: store + "/blobs/sha256/" + layer)
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: store + "/partial/" + layer))
        let resumed = try pull(bed, "demo/busybox:v1")
        #expect(resumed.output.contains("resumed at \(bytes.count / 2)"), "\(resumed.output)")
        #expect(counts(resumed.output)?.fetched == bytes.count - bytes.count / 2, "\(resumed.output)")

        // A partial download gone bad: detected by its digest, fetched whole again.
        try FileManager.default.removeItem(atPath: store + "/blobs/sha256/" + layer)
        try Data(repeating: 0x42, count: bytes.count / 2).write(to: URL(fileURLWithPath: store + "/partial/" + layer))
        let repaired = try pull(bed, "demo/busybox:v1")
        #expect(repaired.status == 0 && repaired.output.contains("did not match its digest"), "\(repaired.output)")
        #expect(FileManager.default.contents(atPath: store + "/blobs/sha256/" + layer) == bytes)

        // A registry that serves other bytes under the digest: refused, nothing stored.
        let served = bed.dir + "/controller/registry/blobs/sha256/" + layer
        var tampered = bytes
        tampered[1000] ^= 0xFF
        try tampered.write(to: URL(fileURLWithPath: served))
        try FileManager.default.removeItem(atPath: store + "/blobs/sha256/" + layer)
        let lied = try pull(bed, "demo/busybox:v1")
        #expect(lied.status != 0 && lied.output.contains("do not match it: refused"), "\(lied.output)")
        #expect(!FileManager.default.fileExists(atPath: store + "/blobs/sha256/" + layer))
        try bytes.write(to: URL(fileURLWithPath: served))
        #expect(try pull(bed, "demo/busybox:v1").status == 0)
        #expect(total >= bytes.count)

        // Debian's docker-registry, named in the reference.
        let port = try Harness.freePort()
        let config = bed.dir + "/docker-registry.yml"
        try """
            version: 0.1
            storage: {filesystem: {rootdirectory: \(bed.dir)/docker-registry}}
            http: {addr: 127.0.0.1:\(port)}
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let reference = try TestProcess("/usr/bin/docker-registry", ["serve", config], log: bed.dir + "/docker-registry.log")
        defer { Task { await reference.stop() } }
        try TestBroker.waitForListener(port: port)
        let copied = try Harness.run("/usr/bin/skopeo", ["copy", "--dest-tls-verify=false", "oci-archive:\(archive):v1", "docker://127.0.0.1:\(port)/demo/busybox:v1"])
        #expect(copied.status == 0, "\(copied.output)")
        try FileManager.default.removeItem(atPath: store)
        let elsewhere = try pull(bed, "127.0.0.1:\(port)/demo/busybox:v1")
        #expect(elsewhere.status == 0 && counts(elsewhere.output)?.fetched ?? 0 >= bytes.count, "\(elsewhere.output)")
        #expect(FileManager.default.contents(atPath: store + "/blobs/sha256/" + layer) == bytes)
        await reference.stop()
    }
}
