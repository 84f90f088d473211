import DroverCore
import DroverManifest
import Testing

@Suite("spec.user")
struct RunAsTests {
    @Test("root, user names and UID[:GID] are accepted; anything else is refused")
    func names() {
        for good in ["root", "drover", "_svc", "app-1", "a", "1000", "1000:1000", "0", String(repeating: "a", count: 32)] {
            #expect(Names.isValidRunAs(good), "\(good)")
        }
        for bad in ["", "Root", "1user", "a b", "a:b", "1000:", ":1000", "1:2:3", "99999999999", "2147483647", "-1", "../etc", "user\u{0}", "ü",
                    String(repeating: "a", count: 33)] {
            #expect(!Names.isValidRunAs(bad), "\(bad)")
        }
    }

    @Test("a manifest's user reaches its replicas, is validated with its path, and an absent one keeps old revision keys")
    func manifest() throws {
        let base = """
            apiVersion: drover/v1
            kind: Workload
            metadata: {name: web}
            spec:
              command: ["/bin/true"]
            """
        let plain = try Manifest.parseWorkload(base)
        #expect(plain.user == nil)
        let root = try Manifest.parseWorkload(base + "\n  user: root")
        #expect(root.replica(ordinal: 0).user == "root")
        #expect(root.replica(ordinal: 0).revisionKey != plain.replica(ordinal: 0).revisionKey)
        #expect(plain.replica(ordinal: 0).revisionKey == ReplicaSpec(
            id: "web-0", workload: "web", runtime: .exec, command: ["/bin/true"], env: [:], restartPolicy: .always, resources: .zero).revisionKey)
        #expect(throws: (any Error).self) { try Manifest.parseWorkload(base + "\n  user: \"x y\"") }
        do {
            _ = try Manifest.parseWorkload(base + "\n  user: 12")
        } catch {
            #expect("\(error)".contains("spec.user"))
        }
    }
}
