@testable import DroverAgent
import Foundation
import Testing

@Suite("Agent image store")
struct ImageStoreTests {
    /// A store with two images that share a layer: a (config ca, layers shared, la) and b
    /// (config cb, layers shared, lb), every blob 1,000 bytes but the manifests.
    static func store() throws -> (ImageStore, [String: String]) {
        let dir = try Fixtures.temporaryDirectory()
        let store = ImageStore(dataDir: dir, controller: nil, credentials: nil)
        var hexes: [String: String] = [:]
        for name in ["ca", "cb", "shared", "la", "lb"] {
            let hex = String(repeating: name.unicodeScalars.map { String($0.value % 10) }.joined(), count: 64).prefix(64)
            hexes[name] = String(hex)
            try Data(repeating: 1, count: 1000).write(to: URL(fileURLWithPath: store.blobPath(String(hex))))
        }
        func manifest(_ config: String, _ layers: [String]) -> String {
            let layerList = layers.map { #"{"digest":"sha256:\#(hexes[$0] ?? "")","size":1000}"# }.joined(separator: ",")
            return #"{"schemaVersion":2,"config":{"digest":"sha256:\#(hexes[config] ?? "")","size":1000},"layers":[\#(layerList)]}"#
        }
        for (name, body) in [("ma", manifest("ca", ["shared", "la"])), ("mb", manifest("cb", ["shared", "lb"]))] {
            let hex = ImageStore.sha256(Array(body.utf8))
            hexes[name] = hex
            try body.write(toFile: store.blobPath(hex), atomically: true, encoding: .utf8)
        }
        return (store, hexes)
    }

    @Test("past the budget, blobs no kept image uses go; what a kept image uses stays, shared layers too")
    func collect() throws {
        let (store, h) = try Self.store()
        let keepA: Set = ["sha256:" + (h["ma"] ?? "")]
        #expect(store.collect(keep: keepA, budget: 1 << 30).removed == 0, "within the budget nothing goes")
        let result = store.collect(keep: keepA, budget: 0)
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: store.root + "/blobs/sha256"))
        #expect(left == Set(["ma", "ca", "shared", "la"].compactMap { h[$0] }), "\(left)")
        #expect(result.removed == 3 && result.freed >= 2000)
    }

    @Test("a budget that fits part of the unused blobs frees only what it must")
    func partial() throws {
        let (store, h) = try Self.store()
        let sizes = try FileManager.default.contentsOfDirectory(atPath: store.root + "/blobs/sha256").reduce(Int64(0)) {
            $0 + ((try FileManager.default.attributesOfItem(atPath: store.blobPath($1))[.size] as? Int64) ?? 0)
        }
        let result = store.collect(keep: ["sha256:" + (h["ma"] ?? "")], budget: sizes - 500)
        #expect(result.removed == 1, "one blob of 1,000 bytes is enough")
    }
}
