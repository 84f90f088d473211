import Foundation
import Testing

/// The managed broker as an attacker on the network, or a device gone bad, meets it: checked
/// with mosquitto_pub/mosquitto_sub as an independent client.
@Suite("Broker identity and ACL", .serialized)
struct SecurityTests {
    static func pub(_ bed: FleetTestbed, _ login: [String], topic: String, message: String, retain: Bool = false) throws -> String {
        let port = String(bed.brokerURL.split(separator: ":").last ?? "")
        return try Harness.run(
            "/usr/bin/mosquitto_pub", ["-V", "mqttv5", "-d", "-h", "127.0.0.1", "-p", port, "-q", "1", "-t", topic, "-m", message] + (retain ? ["-r"] : []) + login
        ).output
    }

    /// Everything `login` receives on `filter` within `seconds`, as "topic payload" lines.
    static func sub(_ bed: FleetTestbed, _ login: [String], filter: String, seconds: Int = 2) throws -> (status: Int32, output: String) {
        let port = String(bed.brokerURL.split(separator: ":").last ?? "")
        return try Harness.run("/usr/bin/mosquitto_sub", ["-V", "mqttv5", "-h", "127.0.0.1", "-p", port, "-t", filter, "-v", "-W", "\(seconds)"] + login)
    }

    @Test("anonymous clients are refused; a device can neither read nor write another's topics, nor desired, cmd or ctl; a forged envelope is ignored")
    func acl() async throws {
        try await FleetTestbed.run("acl", Self.aclBody)
    }

    static func aclBody(_ bed: FleetTestbed) async throws {
        let before = try await bed.steadyOnGW1()
        try bed.startAgent("gw-2", labels: "role=spare", capacity: "cpu=1,memory=256Mi")
        try await bed.waitForDevices(online: 2)
        let gw2 = try bed.mqttLogin("gw-2")

        let anonymous = try sub(bed, [], filter: "#", seconds: 1)
        #expect(anonymous.status != 0 && anonymous.output.lowercased().contains("not authori"), "\(anonymous.output)")
        let wrong = try sub(bed, ["-u", "gw-1", "-P", String(repeating: "0", count: 64)], filter: "#", seconds: 1)
        #expect(wrong.status != 0, "a wrong password must be refused: \(wrong.output)")

        // gw-2 reads everything it may for 2 s: its own topics and ctl/state, never gw-1's
        // retained desired state (which holds gw-1's commands and environment).
        let seen = try sub(bed, gw2, filter: "drover/v1/#").output
        #expect(seen.contains("drover/v1/ctl/state online"), "\(seen)")
        #expect(!seen.contains("dev/gw-1"), "gw-2 read gw-1's topics: \(seen)")

        let desired = #"{"v":1,"device":"gw-1","generation":999999,"replicas":[{"id":"evil-0","workload":"evil","command":["/bin/sh","-c","touch /tmp/pwned"],"env":{},"restartPolicy":"always","revision":1}]}"#
        let attempts: [(String, String, Bool)] = [
            ("drover/v1/dev/gw-1/desired", desired, true),
            ("drover/v1/dev/gw-2/desired", desired.replacingOccurrences(of: "gw-1", with: "gw-2"), true),
            ("drover/v1/dev/gw-1/cmd", #"{"v":1,"command":"snapshot"}"#, false),
            ("drover/v1/dev/gw-1/state", #"{"v":1,"device":"gw-1","state":"offline"}"#, true),
            ("drover/v1/dev/gw-1/report", HostileMQTTTests.report("gw-1", seq: "9007199254740991", id: before.first?.id ?? "steady-0", workload: "steady"), false),
            ("drover/v1/dev/gw-1/hello", HostileMQTTTests.hello("gw-1", labels: #"{"role":"evil"}"#), false),
            ("drover/v1/ctl/state", "offline", true),
        ]
        for (topic, message, retain) in attempts {
            let output = try pub(bed, gw2, topic: topic, message: message, retain: retain)
            #expect(output.contains("RC:135"), "\(topic) must be refused as not authorised: \(output)")
        }
        // A forged envelope on gw-2's own topic: the id inside is not the topic owner's.
        _ = try pub(bed, gw2, topic: "drover/v1/dev/gw-2/hello", message: HostileMQTTTests.hello("gw-1", labels: #"{"role":"evil"}"#))
        #expect(await Harness.eventually(.seconds(5)) {
            let drops = ((try? await bed.api.get("/v1/status"))?["fleet"] as? [String: Any])?["droppedMessages"] as? [String: Int] ?? [:]
            return drops.values.reduce(0, +) >= 1
        })

        try await Task.sleep(for: .seconds(1))
        let gw1 = try await bed.api.get("/v1/devices/gw-1")["record"] as? [String: Any]
        #expect(gw1?["presence"] as? String == "online")
        #expect(((gw1?["facts"] as? [String: Any])?["labels"] as? [String: String])?["role"] == "gateway")
        #expect(try await bed.running("steady").map(\.pid) == before.map(\.pid))
        #expect(try await bed.replicas("evil").isEmpty)
        #expect(!FileManager.default.fileExists(atPath: "/tmp/pwned"))
        let status = try await bed.api.get("/v1/status")
        let security = (status["controller"] as? [String: Any])?["brokerSecurity"] as? String
        #expect(security?.hasPrefix("secured") == true, "\(String(describing: security))")
    }

    @Test("an enrollment token works once; a used, unknown or other controller's token is refused; a revoked device cannot reconnect")
    func enrollment() async throws {
        try await FleetTestbed.run("enroll", Self.enrollmentBody)
    }

    static func enrollmentBody(_ bed: FleetTestbed) async throws {
        let tokenFile = try bed.enrollmentTokenFile("gw-1", arguments: ["--labels", "site=plant-a"])
        let controller = "http://127.0.0.1:\(bed.apiPort)"
        let agent = Harness.binary("drover-agent")
        let first = try TestProcess(agent, ["--controller", controller, "--token-file", tokenFile, "--data-dir", bed.agentDir("gw-1"), "--beat-interval", "0.5"], log: bed.dir + "/gw-1.log")
        bed.agents["gw-1"] = first
        try await bed.waitForDevices(online: 1)
        let labels = (try await bed.api.get("/v1/devices/gw-1")["record"] as? [String: Any]).flatMap { ($0["facts"] as? [String: Any])?["labels"] as? [String: String] }
        #expect(labels?["site"] == "plant-a", "labels given at enrollment reach the device: \(String(describing: labels))")
        // Files holding secrets are the owner's only, and so are the directories they are in.
        let secrets = ["credentials.json", "ca.pem", "agent.db", "agent.db-wal"].map { bed.agentDir("gw-1") + "/" + $0 }
            + ["admin.token", "controller.db", "controller.db-wal", "mosquitto.passwd", "mosquitto.acl", "mqtt-controller.secret", "tls/ca.key", "mosquitto.conf"].map { bed.dir + "/controller/" + $0 }
        for path in secrets { #expect(Self.mode(path) == 0o600, "\(path): \(String(Self.mode(path), radix: 8))") }
        for path in [bed.dir + "/controller", bed.dir + "/controller/tls"] {
            #expect(Self.mode(path) == 0o700, "\(path): \(String(Self.mode(path), radix: 8))")
        }
        // Replicas of another user pass through the agent's dir to their own, never list it.
        #expect(Self.mode(bed.agentDir("gw-1")) == 0o711)
        let password = try bed.mqttLogin("gw-1")[3]
        #expect(!first.log.contains(password), "the password must never be logged")

        // Used: a second device with the same token.
        let again = try Harness.run(agent, ["--controller", controller, "--token-file", tokenFile, "--data-dir", bed.dir + "/agents/copy"])
        #expect(again.status != 0 && again.output.contains("already used"), "\(again.output)")
        // Unknown: the right shape and CA, a made-up secret.
        let real = try String(contentsOfFile: tokenFile, encoding: .utf8).split(separator: "_").map(String.init)
        let made = "dre_\(String(repeating: "a", count: 12))_\(String(repeating: "b", count: 64))_\(real[3])"
        let unknown = try Harness.run(agent, ["--controller", controller, "--token", made, "--data-dir", bed.dir + "/agents/made"])
        #expect(unknown.status != 0 && unknown.output.contains("unknown"), "\(unknown.output)")
        // Another controller's: the CA fingerprint differs, so the agent does not even send it.
        let otherFile = try bed.enrollmentTokenFile("gw-2")
        let other = try String(contentsOfFile: otherFile, encoding: .utf8).split(separator: "_").map(String.init)
        let foreign = "dre_\(other[1])_\(other[2])_\(String(repeating: "c", count: 64))"
        let refused = try Harness.run(agent, ["--controller", controller, "--token", foreign, "--data-dir", bed.dir + "/agents/foreign"])
        #expect(refused.status != 0 && refused.output.contains("not enrolling"), "\(refused.output)")
        #expect(!FileManager.default.fileExists(atPath: bed.dir + "/agents/foreign/credentials.json"))

        // Revoked: the broker drops it at once and refuses it from then on.
        let login = try bed.mqttLogin("gw-1")
        #expect(try SecurityTests.sub(bed, login, filter: "drover/v1/ctl/state", seconds: 1).output.contains("online"))
        let (status, output) = try bed.drover(["devices", "revoke", "gw-1"])
        #expect(status == 0, "\(output)")
        let back = try SecurityTests.sub(bed, login, filter: "drover/v1/ctl/state", seconds: 1)
        #expect(back.status != 0 && back.output.lowercased().contains("not authori"), "\(back.output)")
        #expect(await Harness.eventually(.seconds(15)) {
            ((try? await bed.api.get("/v1/devices/gw-1"))?["record"] as? [String: Any])?["presence"] as? String == "unreachable"
        }, "a revoked device must go unreachable")
        #expect(first.isRunning, "the agent keeps running (and retrying) with its revoked credentials")
    }

    static func mode(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? Int) ?? -1
    }
}

@Suite("Least privilege on the device", .serialized)
struct LeastPrivilegeTests {
    static func manifest(_ name: String, user: String?) -> String {
        """
        apiVersion: drover/v1
        kind: Workload
        metadata: {name: \(name)}
        spec:
          replicas: 1
          resources: {cpu: 10m, memory: 1Mi}
        \(user.map { "  user: \"\($0)\"" } ?? "")
          command: ["/bin/sh", "-c", "touch $HOME/owned-by-me; ln -s /etc/passwd ../output.log.1; exec sleep 1000"]
        """
    }

    /// The real uid of a live process, from /proc.
    static func uid(_ pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") })
        else { return nil }
        return line.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first.flatMap { Int($0) }
    }

    static func passwdUID(_ name: String) throws -> Int {
        let (_, output) = try Harness.run("/usr/bin/id", ["-u", name])
        return Int(output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    @Test("a replica runs as the unprivileged workload user unless its manifest names another user, or root")
    func runsUnprivileged() async throws {
        try await FleetTestbed.run("least-privilege", Self.body)
    }

    static func body(_ bed: FleetTestbed) async throws {
        try bed.startAgent("gw-1", labels: "role=gateway", capacity: "cpu=4,memory=1Gi", extra: ["--stop-grace", "0.5"])
        try await bed.waitForDevices(online: 1)
        let expected: [(String, String?, Int)] = [
            ("plain", nil, try passwdUID("drover")), ("asroot", "root", 0), ("asnobody", "nobody", try passwdUID("nobody")), ("numeric", "4242:4242", 4242),
        ]
        for (name, user, _) in expected { try await bed.apply(Self.manifest(name, user: user)) }
        for (name, user, uid) in expected {
            let started = await Harness.eventually { (try? await bed.running(name).count) == 1 }
            let seen = (try? await bed.replicas(name)) ?? []
            #expect(started, "\(name): \(seen)")
            guard let pid = try await bed.running(name).first?.pid else { continue }
            #expect(Self.uid(pid) == uid, "\(name) (user \(user ?? "default")) runs as uid \(String(describing: Self.uid(pid)))")
            // Its working directory is its own: the file it made there is owned by it.
            let made = bed.agentDir("gw-1") + "/replicas/\(name)-0/work/owned-by-me"
            #expect(await Harness.eventually(.seconds(5)) { FileManager.default.fileExists(atPath: made) })
            let owner = (try? FileManager.default.attributesOfItem(atPath: made))?[.ownerAccountID] as? Int
            #expect(owner == uid, "\(made) is owned by \(String(describing: owner))")
            // Its log is beside its working directory, in the agent's: no link of its can be
            // there for the agent (root) to write through when it rotates the log.
            if uid != 0 {
                let link = bed.agentDir("gw-1") + "/replicas/\(name)-0/output.log.1"
                #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: link)) == nil, "\(name) put a link where its log rotates")
            }
        }

        try await bed.apply(Self.manifest("ghost", user: "no-such-user"))
        let refused = await Harness.eventually {
            let replica = try? await bed.replicas("ghost").first
            return replica?["phase"] as? String == "failed" && (replica?["message"] as? String ?? "").contains("does not exist")
        }
        let ghost = (try? await bed.replicas("ghost")) ?? []
        #expect(refused, "\(ghost)")

        let (code, body, _) = try await bed.api.request("POST", "/v1/workloads", body: Self.manifest("bad", user: "Root!"))
        #expect(code == 422 && "\(body)".contains("spec.user"), "\(code) \(body)")
    }
}

@Suite("Revocation on a broker of the operator's", .serialized)
struct ExternalRevocationTests {
    @Test("on an external broker that still lets a revoked device in, the controller drops what it says and judges it unreachable")
    func revokedIsNotHeard() async throws {
        try await FleetTestbed.run("revoke-external", externalBroker: true, Self.body)
    }

    static func body(_ bed: FleetTestbed) async throws {
        // Enrolled through the API; the broker (anonymous, no password file) lets anyone in.
        let token = try bed.enrollmentTokenFile("gw-1")
        bed.agents["gw-1"] = try TestProcess(
            Harness.binary("drover-agent"), ["--controller", bed.controllerURL, "--token-file", token, "--data-dir", bed.agentDir("gw-1"), "--beat-interval", "0.5", "--idle-beat-interval", "1"],
            log: bed.dir + "/gw-1.log")
        try await bed.waitForDevices(online: 1)
        let (status, output) = try bed.drover(["devices", "revoke", "gw-1"])
        #expect(status == 0, "\(output)")
        try await bed.waitPastGrace()
        let unheard = await Harness.eventually(.seconds(15)) {
            let fleet = (try? await bed.api.get("/v1/status"))?["fleet"] as? [String: Any]
            let device = (try? await bed.api.get("/v1/devices/gw-1"))?["record"] as? [String: Any]
            return ((fleet?["droppedMessages"] as? [String: Int])?["revoked"] ?? 0) > 0 && device?["presence"] as? String == "unreachable"
        }
        let device = (try? await bed.api.get("/v1/devices/gw-1")) ?? [:]
        #expect(unheard, "\(device)")
        #expect(bed.agents["gw-1"]?.isRunning == true, "the agent itself still runs and beats")
    }
}

@Suite("Enrollment bursts", .serialized)
struct EnrollmentBurstTests {
    @Test("100 devices enrolled in a burst can all log in to the managed broker (a reload lost in the burst is made up)")
    func burst() async throws {
        try await FleetTestbed.run("enroll-burst", Self.body)
    }

    static func body(_ bed: FleetTestbed) async throws {
        let ids = (0..<100).map { "burst-\($0)" }
        var tokens: [String: String] = [:]
        for id in ids {
            let (code, issued, _) = try await bed.api.request("POST", "/v1/devices/\(id)/enroll", body: "{}")
            tokens[id] = try #require(issued["token"] as? String, "\(code) \(issued)")
        }
        // All at once, as agents started together enroll: each exchange rewrites the broker's
        // password file and reloads it.
        let api = bed.api
        let passwords = try await withThrowingTaskGroup(of: (String, String?).self) { group in
            for (id, token) in tokens {
                group.addTask { (id, try await api.request("POST", "/v1/enroll", body: "{\"token\": \"\(token)\"}").1["password"] as? String) }
            }
            return try await group.reduce(into: [String: String]()) { $0[$1.0] = $1.1 }
        }
        #expect(passwords.count == ids.count)
        // Each logs in and reads the controller's retained state: refused ones are retried for a while.
        for id in ids {
            let login = ["-u", id, "-P", passwords[id] ?? "", "-C", "1"]
            let joined = await Harness.eventually(.seconds(10)) { (try? SecurityTests.sub(bed, login, filter: "drover/v1/ctl/state", seconds: 2))?.output.contains("online") == true }
            #expect(joined, "\(id) cannot log in")
        }
    }
}
