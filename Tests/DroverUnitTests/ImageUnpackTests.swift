@testable import DroverAgent
import Foundation
import Testing

/// Layers as OCI images have them, written entry by entry (ustar), hostile ones included,
/// unpacked with the system's tar as the agent does.
@Suite("Image unpacking")
struct ImageUnpackTests {
    enum Entry {
        case directory(String)
        case file(String, String)
        case symlink(String, to: String)
    }

    /// A tar archive of `entries`, in order (a link may come before a path through it).
    static func tar(_ entries: [Entry]) -> [UInt8] {
        var out: [UInt8] = []
        for entry in entries {
            var header = [UInt8](repeating: 0, count: 512)
            func put(_ text: String, at offset: Int) { for (i, b) in text.utf8.enumerated() { header[offset + i] = b } }
            let (name, mode, type, body, link): (String, String, String, [UInt8], String) = switch entry {
            case .directory(let n): (n, "0000755", "5", [], "")
            case .file(let n, let text): (n, "0000644", "0", Array(text.utf8), "")
            case .symlink(let n, let target): (n, "0000777", "2", [], target)
            }
            put(name, at: 0)
            put(mode, at: 100)
            put("0000000", at: 108)
            put("0000000", at: 116)
            put(octal(body.count, width: 11), at: 124)
            put("00000000000", at: 136)
            put(type, at: 156)
            put(link, at: 157)
            put("ustar", at: 257)
            put("00", at: 263)
            for i in 148..<156 { header[i] = 0x20 }
            let sum = header.reduce(0) { $0 + Int($1) }
            put(octal(sum, width: 6), at: 148)
            header[154] = 0
            out += header + body + [UInt8](repeating: 0, count: (512 - body.count % 512) % 512)
        }
        return out + [UInt8](repeating: 0, count: 1024)
    }

    static func octal(_ value: Int, width: Int) -> String {
        let digits = String(value, radix: 8)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    /// Stores `layers` as blobs and unpacks them as one image; returns the rootfs.
    static func unpack(_ layers: [[Entry]], in dir: String) throws -> String {
        let store = ImageStore(dataDir: dir, controller: nil, credentials: nil)
        var digests: [String] = []
        for layer in layers {
            let bytes = tar(layer)
            let hex = ImageStore.sha256(bytes)
            try Data(bytes).write(to: URL(fileURLWithPath: store.blobPath(hex)))
            digests.append("sha256:" + hex)
        }
        let config = Array(#"{"config":{"Cmd":["/bin/sh"]}}"#.utf8)
        let configHex = ImageStore.sha256(config)
        try Data(config).write(to: URL(fileURLWithPath: store.blobPath(configHex)))
        let pulled = ImageStore.Pulled(manifest: "sha256:" + configHex, config: "sha256:" + configHex, layers: digests, fetched: 0, reused: 0)
        let path = try store.unpack(pulled, as: "sha256:" + String(repeating: "a", count: 64), commands: HostCommand(reaper: ChildReaper(reapsOrphans: false)))
        return path + "/rootfs"
    }

    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    @Test("layers apply in order: a whiteout removes a lower entry, an opaque directory hides all below it, and no whiteout is left")
    func whiteouts() throws {
        let dir = try Fixtures.temporaryDirectory()
        let rootfs = try Self.unpack([
            [.directory("a/"), .file("a/keep", "1"), .file("a/gone", "2"), .directory("b/"), .file("b/old", "3"), .file("c", "lower")],
            [.directory("a/"), .file("a/.wh.gone", ""), .directory("b/"), .file("b/.wh..wh..opq", ""), .file("b/new", "4"), .file("c", "upper")],
        ], in: dir)
        #expect(Self.exists(rootfs + "/a/keep"))
        #expect(!Self.exists(rootfs + "/a/gone"))
        #expect(!Self.exists(rootfs + "/b/old") && Self.exists(rootfs + "/b/new"))
        #expect(try String(contentsOfFile: rootfs + "/c", encoding: .utf8) == "upper")
        let all = FileManager.default.enumerator(atPath: rootfs)?.allObjects as? [String] ?? []
        #expect(!all.contains { $0.contains(".wh.") }, "\(all)")
        #expect(Self.exists(dir + "/images/unpacked/" + String(repeating: "a", count: 64) + "/config.json"))
    }

    @Test("no layer writes outside the rootfs: not through a link a lower layer left, nor through one in its own archive")
    func linksAreNotFollowed() throws {
        let dir = try Fixtures.temporaryDirectory()
        let outside = dir + "/outside"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        let rootfs = try Self.unpack([
            [.symlink("etc", to: outside), .symlink("up", to: "../../../../outside")],
            // Through the lower layer's links.
            [.directory("etc/"), .file("etc/evil", "x"), .file("up/evil2", "x")],
        ], in: dir)
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty)
        var st = stat()
        #expect(lstat(rootfs + "/etc", &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR, "the link was replaced by a real directory")
        #expect(Self.exists(rootfs + "/etc/evil"))

        // A link and a path through it in the same archive: tar refuses the path.
        let other = try Fixtures.temporaryDirectory()
        let escaped = (try? Self.unpack([[.symlink("x", to: outside), .file("x/evil3", "x")]], in: other)) != nil
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty, "unpacked: \(escaped)")
    }

    @Test("a container's log in conmon's k8s-file format reads as its text, parts of a long line joined")
    func k8sLog() {
        let lines: [Substring] = [
            "2026-11-26T02:40:35.870077375+00:00 stdout F start", "2026-11-26T02:40:36.0+00:00 stderr P half ",
            "2026-11-26T02:40:36.1+00:00 stderr F and half", "2026-11-26T02:40:36.2+00:00 stdout F ", "not conmon's",
        ]
        #expect(ReplicaSupervisor.k8sLogText(lines) == ["start", "half and half", "", "not conmon's"])
    }
}
