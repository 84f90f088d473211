@testable import DroverController
import DroverCore
import DroverManifest
import Foundation
import Testing

@Suite("Registry paths, names and ranges")
struct RegistryUnitTests {
    @Test("repository names, tags and digests follow the distribution spec")
    func names() {
        for good in ["busybox", "demo/busybox", "a.b_c__d--e/f0", "x/y/z"] { #expect(RegistryStore.isValidName(good), "\(good)") }
        for bad in ["", "Busybox", "a//b", "/a", "a/", "a..b", "a___b", "-a", "a-", "a/../b", "ü", String(repeating: "a", count: 256)] {
            #expect(!RegistryStore.isValidName(bad), "\(bad)")
        }
        for good in ["v1", "_x", "1.2.3-rc_1", String(repeating: "a", count: 128)] { #expect(RegistryStore.isValidTag(good), "\(good)") }
        for bad in ["", ".v1", "-v1", "v/1", String(repeating: "a", count: 129)] { #expect(!RegistryStore.isValidTag(bad), "\(bad)") }
        #expect(RegistryStore.hex(ofDigest: "sha256:" + String(repeating: "a", count: 64)) != nil)
        for bad in ["sha256:" + String(repeating: "A", count: 64), "sha512:" + String(repeating: "a", count: 64), "sha256:../../etc", "sha256:"] {
            #expect(RegistryStore.hex(ofDigest: bad) == nil, "\(bad)")
        }
    }

    @Test("paths with slashes in names reach the right endpoint; anything else is refused")
    func paths() throws {
        #expect(try Registry.parse("/v2/a/b/blobs/uploads/") == .uploads(name: "a/b"))
        #expect(try Registry.parse("/v2/a/b/blobs/uploads/0123") == .upload(name: "a/b", id: "0123"))
        #expect(try Registry.parse("/v2/a/blobs/sha256:x") == .blob(name: "a", digest: "sha256:x"))
        #expect(try Registry.parse("/v2/a/manifests/v1") == .manifest(name: "a", reference: "v1"))
        #expect(try Registry.parse("/v2/a/b/tags/list") == .tags(name: "a/b"))
        for bad in ["/v2/A/tags/list", "/v2/a/nothing", "/v2/../x/manifests/v1", "/v1/a/tags/list"] {
            #expect(throws: RegistryError.self, "\(bad)") { try Registry.parse(bad) }
        }
    }

    @Test("ranges: a-b, a-, -n; out of the blob or backwards is unsatisfiable, and nothing overflows")
    func ranges() {
        #expect(Registry.parseRange("bytes=0-9", size: 100) == 0...9)
        #expect(Registry.parseRange("bytes=90-", size: 100) == 90...99)
        #expect(Registry.parseRange("bytes=-10", size: 100) == 90...99)
        #expect(Registry.parseRange("bytes=50-1000", size: 100) == 50...99)
        for bad in ["bytes=100-", "bytes=9-1", "bytes=-0", "items=0-1", "bytes=0-1,3-4", "bytes=9223372036854775807-", "bytes=-9223372036854775808", "bytes=x-y"] {
            #expect(Registry.parseRange(bad, size: 100) == nil, "\(bad)")
        }
        #expect(Registry.parseRange("bytes=0-0", size: 0) == nil)
    }
}

@Suite("Image references in manifests")
struct ImageReferenceTests {
    @Test("references parse into registry, name, tag and digest; a bare name means :latest")
    func parse() throws {
        let d = "sha256:" + String(repeating: "a", count: 64)
        let cases: [(String, String?, String, String?, String?)] = [
            ("busybox", nil, "busybox", "latest", nil), ("demo/busybox:v1", nil, "demo/busybox", "v1", nil),
            ("demo/busybox@\(d)", nil, "demo/busybox", nil, d), ("demo/busybox:v1@\(d)", nil, "demo/busybox", "v1", d),
            ("127.0.0.1:5000/x/y:z", "127.0.0.1:5000", "x/y", "z", nil), ("localhost/x", "localhost", "x", "latest", nil),
        ]
        for (text, registry, name, tag, digest) in cases {
            let ref = try #require(ImageReference(parsing: text), "\(text)")
            #expect(ref.registry == registry && ref.name == name && ref.tag == tag && ref.digest == digest, "\(text): \(ref)")
        }
        for bad in ["", "Busybox", "x:", "x@sha256:abc", "x y", "a//b", String(repeating: "a", count: 600)] {
            #expect(ImageReference(parsing: bad) == nil, "\(bad)")
        }
    }

    @Test("an image means runc; runc needs an image and exec refuses one, each named by its field")
    func manifests() throws {
        let base = "apiVersion: drover/v1\nkind: Workload\nmetadata: {name: web}\nspec:\n"
        let boxed = try Manifest.parseWorkload(base + "  image: demo/busybox:v1\n")
        #expect(boxed.runtime == .runc && boxed.command.isEmpty)
        for (body, path) in [("  runtime: runc\n  command: [\"/bin/true\"]\n", "spec.image"), ("  runtime: exec\n  image: x:v1\n  command: [\"/bin/true\"]\n", "spec.image"),
                             ("  image: \"Not An Image\"\n", "spec.image")] {
            do {
                _ = try Manifest.parseWorkload(base + body)
                Issue.record("accepted: \(body)")
            } catch {
                #expect("\(error)".contains(path), "\(body): \(error)")
            }
        }
    }
}
