import Foundation
import Testing

/// The controller's OCI registry, driven by skopeo (an independent client) and curl.
@Suite("Controller registry", .serialized)
struct RegistryTests {
    @Test("skopeo pushes an image built offline and pulls it back byte for byte; ranges, bad digests and roles hold")
    func pushPull() async throws {
        try await FleetTestbed.run("registry", Self.body)
    }

    static func body(_ bed: FleetTestbed) async throws {
        let archive = bed.dir + "/busybox.tar"
        let built = try Harness.run(Harness.repoRoot + "/tools/build-image", [archive, "v1", "/bin/sh", "-c", "echo hi"])
        #expect(built.status == 0, "\(built.output)")
        let registry = "127.0.0.1:\(bed.apiPort)"
        let admin = bed.api.token ?? ""
        let push = try Harness.run("/usr/bin/skopeo", ["copy", "--dest-tls-verify=false", "--dest-registry-token", admin, "oci-archive:\(archive):v1", "docker://\(registry)/demo/busybox:v1"])
        #expect(push.status == 0, "\(push.output)")
        let pull = try Harness.run("/usr/bin/skopeo", ["copy", "--src-tls-verify=false", "--src-registry-token", admin, "docker://\(registry)/demo/busybox:v1", "oci:\(bed.dir)/back:v1"])
        #expect(pull.status == 0, "\(pull.output)")

        // Every blob of the original is back, under its digest, with the same bytes.
        let original = bed.dir + "/original"
        try FileManager.default.createDirectory(atPath: original, withIntermediateDirectories: true)
        _ = try Harness.run("/bin/tar", ["-C", original, "-xf", archive])
        let blobs = try FileManager.default.contentsOfDirectory(atPath: original + "/blobs/sha256")
        #expect(blobs.count == 3)
        for blob in blobs {
            let a = FileManager.default.contents(atPath: original + "/blobs/sha256/" + blob)
            let b = FileManager.default.contents(atPath: bed.dir + "/back/blobs/sha256/" + blob)
            #expect(a != nil && a == b, "blob \(blob) differs after the round trip")
        }

        let tags = try Harness.run("/usr/bin/skopeo", ["list-tags", "--tls-verify=false", "--registry-token", admin, "docker://\(registry)/demo/busybox"])
        #expect(tags.output.contains("\"v1\""), "\(tags.output)")

        // A range of a layer, as an interrupted download resumes.
        let layer = try #require(blobs.max { (Self.size(original + "/blobs/sha256/" + $0)) < (Self.size(original + "/blobs/sha256/" + $1)) })
        let part = bed.dir + "/part"
        let ranged = try Harness.run("/usr/bin/curl", ["-s", "-o", part, "-w", "%{http_code}", "-H", "Authorization: Bearer \(admin)", "-H", "Range: bytes=100-4195",
                                                       "http://\(registry)/v2/demo/busybox/blobs/sha256:\(layer)"])
        #expect(ranged.output == "206", "\(ranged.output)")
        let whole = try #require(FileManager.default.contents(atPath: original + "/blobs/sha256/" + layer))
        #expect(FileManager.default.contents(atPath: part) == whole.subdata(in: 100..<4196))

        // A blob whose bytes are not its digest is refused, and not stored.
        try "not what it says".write(toFile: bed.dir + "/liar", atomically: true, encoding: .utf8)
        let lie = "sha256:" + String(repeating: "0", count: 64)
        let refused = try Harness.run("/usr/bin/curl", ["-s", "-w", "\n%{http_code}", "-X", "POST", "-H", "Authorization: Bearer \(admin)", "--data-binary", "@\(bed.dir)/liar",
                                                        "http://\(registry)/v2/demo/busybox/blobs/uploads/?digest=\(lie)"])
        #expect(refused.output.hasSuffix("400") && refused.output.contains("DIGEST_INVALID"), "\(refused.output)")
        let head = try Harness.run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-I", "-H", "Authorization: Bearer \(admin)", "http://\(registry)/v2/demo/busybox/blobs/\(lie)"])
        #expect(head.output == "404")

        // An empty blob is a blob too (and once crashed the controller on HEAD).
        let empty = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        let pushedEmpty = try Harness.run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H", "Authorization: Bearer \(admin)", "--data-binary", "",
                                                            "http://\(registry)/v2/demo/busybox/blobs/uploads/?digest=\(empty)"])
        #expect(pushedEmpty.output == "201")
        for method in ["-I", "-G"] {
            let got = try Harness.run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", method, "-H", "Authorization: Bearer \(admin)", "http://\(registry)/v2/demo/busybox/blobs/\(empty)"])
            #expect(got.output == "200", "\(method) \(got.output)")
        }
        #expect(bed.controller?.isRunning == true)
        // A layer is not a manifest: asking for one by a layer's digest is a 404, never the layer read into memory.
        let notManifest = try Harness.run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer \(admin)", "http://\(registry)/v2/demo/busybox/manifests/sha256:\(layer)"])
        #expect(notManifest.output == "404")

        // Without a token nothing; a viewer pulls but cannot push.
        let anonymous = try Harness.run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://\(registry)/v2/demo/busybox/tags/list"])
        #expect(anonymous.output == "401")
        let made = try bed.drover(["tokens", "create", "puller", "--role", "viewer"])
        let viewer = made.output.split(separator: "\n").first { $0.hasPrefix("drv_") }.map(String.init) ?? ""
        let viewerPull = try Harness.run("/usr/bin/skopeo", ["inspect", "--tls-verify=false", "--registry-token", viewer, "docker://\(registry)/demo/busybox:v1"])
        #expect(viewerPull.status == 0, "\(viewerPull.output)")
        let viewerPush = try Harness.run("/usr/bin/skopeo", ["copy", "--dest-tls-verify=false", "--dest-registry-token", viewer, "oci-archive:\(archive):v1", "docker://\(registry)/demo/other:v1"])
        #expect(viewerPush.status != 0)

        // An enrolled device pulls with its own MQTT credentials; a wrong or revoked one cannot.
        try bed.startAgent("gw-1", labels: "role=gateway", capacity: "cpu=1,memory=256Mi")
        try await bed.waitForDevices(online: 1)
        let password = try bed.mqttLogin("gw-1")[3]
        func asDevice(_ login: String) throws -> String {
            try Harness.run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-u", login, "http://\(registry)/v2/demo/busybox/manifests/v1"]).output
        }
        #expect(try asDevice("gw-1:\(password)") == "200")
        #expect(try asDevice("gw-1:\(String(repeating: "0", count: 64))") == "401")
        #expect(try asDevice("gw-2:\(password)") == "401")
        let devicePush = try Harness.run("/usr/bin/skopeo", ["copy", "--dest-tls-verify=false", "--dest-creds", "gw-1:\(password)", "oci-archive:\(archive):v1", "docker://\(registry)/demo/mine:v1"])
        #expect(devicePush.status != 0, "a device must not push")
        _ = try bed.drover(["devices", "revoke", "gw-1"])
        #expect(try asDevice("gw-1:\(password)") == "401")
    }

    static func size(_ path: String) -> Int { ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0 }
}

@Suite("Images in workloads", .serialized)
struct ImageWorkloadTests {
    @Test("apply pins a tag to its digest; drover image ls shows who uses it and rm refuses while they do; an unknown or unpinned image is refused")
    func pinned() async throws {
        try await FleetTestbed.run("images", Self.body)
    }

    static func manifest(_ image: String) -> String {
        """
        apiVersion: drover/v1
        kind: Workload
        metadata: {name: boxed}
        spec:
          replicas: 1
          image: \(image)
          resources: {cpu: 10m, memory: 8Mi}
        """
    }

    static func body(_ bed: FleetTestbed) async throws {
        let archive = bed.dir + "/busybox.tar"
        #expect(try Harness.run(Harness.repoRoot + "/tools/build-image", [archive, "v1", "/bin/sleep", "1000"]).status == 0)
        let push = try Harness.run("/usr/bin/skopeo", ["copy", "--dest-tls-verify=false", "--dest-registry-token", bed.api.token ?? "",
                                                       "oci-archive:\(archive):v1", "docker://127.0.0.1:\(bed.apiPort)/demo/busybox:v1"])
        #expect(push.status == 0, "\(push.output)")
        let digest = try #require(try bed.drover(["image", "ls", "-o", "json"]).output
            .split(separator: "\"").first { $0.hasPrefix("sha256:") }.map(String.init))

        try await bed.apply(Self.manifest("demo/busybox:v1"))
        let spec = try await bed.api.get("/v1/workloads/boxed")["spec"] as? [String: Any]
        #expect(spec?["image"] as? String == "demo/busybox:v1@\(digest)")
        #expect(spec?["runtime"] as? String == "runc")
        let listed = try bed.drover(["image", "ls"]).output
        #expect(listed.contains("demo/busybox:v1") && listed.contains("boxed"), "\(listed)")
        let refused = try bed.drover(["image", "rm", "demo/busybox:v1"])
        #expect(refused.status != 0 && refused.output.contains("used by workload boxed"), "\(refused.output)")

        for (image, reason) in [("demo/missing:v1", "is not in the controller"), ("registry.example:5000/x:v1", "name a digest")] {
            let (code, body, _) = try await bed.api.request("POST", "/v1/workloads", body: Self.manifest(image))
            #expect(code == 422 && "\(body)".contains(reason), "\(image): \(code) \(body)")
        }
        // drover image push: the same image under another name, from the archive; a second
        // push uploads nothing.
        let pushed = try bed.drover(["image", "push", archive, "demo/pushed:v2"])
        #expect(pushed.status == 0 && pushed.output.contains("0 blobs uploaded, 2 already there"), "\(pushed.output)")
        let fresh = bed.dir + "/fresh.tar"
        #expect(try Harness.run(Harness.repoRoot + "/tools/build-image", [fresh, "v3", "/bin/true"]).status == 0)
        let uploaded = try bed.drover(["image", "push", fresh, "demo/fresh:v3"])
        #expect(uploaded.status == 0 && uploaded.output.contains("2 blobs uploaded"), "\(uploaded.output)")
        let inspect = try Harness.run("/usr/bin/skopeo", ["inspect", "--tls-verify=false", "--registry-token", bed.api.token ?? "", "docker://127.0.0.1:\(bed.apiPort)/demo/fresh:v3"])
        #expect(inspect.status == 0, "\(inspect.output)")
        let notAnImage = try bed.drover(["image", "push", bed.dir + "/controller.log", "demo/x:v1"])
        #expect(notAnImage.status != 0 && notAnImage.output.split(separator: "\n").count == 1, "\(notAnImage.output)")

        _ = try bed.drover(["delete", "workload", "boxed"])
        #expect(try bed.drover(["image", "rm", "demo/busybox:v1"]).status == 0)
        #expect(!(try bed.drover(["image", "ls"]).output.contains("demo/busybox")))
    }
}
