@testable import DroverController
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
