import Foundation
import Testing

/// Devices on other machines: the API and the managed broker beyond loopback, over TLS with
/// the controller's own CA, and agents that trust nothing else.
@Suite("TLS", .serialized)
struct TLSTests {
    @Test("two machines' worth: an agent in a network namespace enrolls over HTTPS and joins the managed broker on the veth address over TLS")
    func remoteDevice() async throws {
        let net = try Partition()
        defer { net.remove() }
        try await FleetTestbed.run("tls-remote", exposedOn: net.hostAddress) { bed in
            try await Self.remoteDeviceBody(bed, net)
        }
    }

    static func remoteDeviceBody(_ bed: FleetTestbed, _ net: Partition) async throws {
        let status = try await bed.api.get("/v1/status")
        let brokerURL = (status["controller"] as? [String: Any])?["brokerURL"] as? String
        #expect(brokerURL == "mqtts://\(net.hostAddress):\(bed.exposed?.mqttPort ?? 0)")
        try bed.startAgent("gw-far", labels: "role=gateway", capacity: "cpu=2,memory=1Gi", netns: net.namespace)
        try await bed.waitForDevices(online: 1)
        try await bed.apply(FaultTests.manifest("steady"))
        #expect(await Harness.eventually { (try? await bed.running("steady").first?.device) == "gw-far" })

        // The CLI over HTTPS: with the controller's CA it works, without it it says why.
        let (ok, okOutput) = try bed.drover(["devices"])
        #expect(ok == 0 && okOutput.contains("gw-far"), "\(okOutput)")
        var environment = bed.droverEnvironment
        environment["DROVER_CA"] = nil
        let untrusted = try Harness.run(Harness.binary("drover"), ["status"], environment: environment)
        #expect(untrusted.status != 0 && untrusted.output.contains("TLS"), "\(untrusted.output)")
        // Nothing but TLS on the broker's outside listener.
        let plain = try Harness.run("/usr/bin/mosquitto_sub", ["-h", net.hostAddress, "-p", "\(bed.exposed?.mqttPort ?? 0)", "-t", "#", "-W", "2", "-u", "x", "-P", "y"])
        #expect(plain.status != 0)
    }

    @Test("an agent facing a broker certificate from another CA, or one that does not name the host, refuses and says why")
    func untrustedBroker() async throws {
        try await FleetTestbed.run("tls-refuse", Self.untrustedBody)
    }

    static func untrustedBody(_ bed: FleetTestbed) async throws {
        // gw-1 enrolls normally: it then trusts the controller's CA and nothing else.
        try bed.startAgent("gw-1", labels: "role=gateway", capacity: "cpu=1,memory=256Mi")
        try await bed.waitForDevices(online: 1)
        await bed.agents["gw-1"]?.stop()

        let pki = bed.dir + "/pki"
        try FileManager.default.createDirectory(atPath: pki, withIntermediateDirectories: true)
        let controllerCA = (bed.dir + "/controller/tls/ca.pem", bed.dir + "/controller/tls/ca.key")
        try Self.openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", pki + "/other-ca.key",
                          "-out", pki + "/other-ca.pem", "-days", "1", "-subj", "/CN=someone else"])
        let cases: [(name: String, ca: (String, String), san: String, expected: String?)] = [
            ("foreign", (pki + "/other-ca.pem", pki + "/other-ca.key"), "IP:127.0.0.1", "unable to get local issuer certificate"),
            ("wrong-name", controllerCA, "DNS:elsewhere.example", "IP address mismatch"),
            ("right", controllerCA, "IP:127.0.0.1", nil),
        ]
        for (name, ca, san, expected) in cases {
            let cert = try Self.serverCertificate(name, ca: ca, san: san, in: pki)
            try FileManager.default.createDirectory(atPath: bed.dir + "/broker-\(name)", withIntermediateDirectories: true)
            let broker = try TestBroker(dir: bed.dir + "/broker-\(name)", tls: cert)
            defer { Task { await broker.kill() } }
            let log = bed.dir + "/gw-1-\(name).log"
            let agent = try TestProcess(
                Harness.binary("drover-agent"), ["--data-dir", bed.agentDir("gw-1"), "--broker", "mqtts://127.0.0.1:\(broker.port)", "--beat-interval", "0.5"], log: log)
            let said = await Harness.eventually(.seconds(10)) {
                let text = agent.log
                return expected.map { text.contains($0) } ?? text.contains("connected to broker")
            }
            #expect(said, "\(name): \(agent.log)")
            if expected != nil {
                #expect(agent.log.contains("not connecting") && !agent.log.contains("connected to broker"), "\(name): \(agent.log)")
                #expect(!broker.process.log.contains("u'gw-1'"), "\(name): the broker must never see gw-1's credentials")
            }
            await agent.stop()
            await broker.kill()
        }
    }

    static func openssl(_ arguments: [String]) throws {
        let (status, output) = try Harness.run("/usr/bin/openssl", arguments)
        guard status == 0 else { throw HarnessError("openssl \(arguments.joined(separator: " ")) exited \(status): \(output)") }
    }

    /// A server key and certificate for `san`, signed by `ca`.
    static func serverCertificate(_ name: String, ca: (certificate: String, key: String), san: String, in dir: String) throws -> (certificate: String, key: String) {
        let key = dir + "/\(name).key", csr = dir + "/\(name).csr", cert = dir + "/\(name).pem", ext = dir + "/\(name).ext"
        try "subjectAltName=\(san)\nextendedKeyUsage=serverAuth\n".write(toFile: ext, atomically: true, encoding: .utf8)
        try openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=\(name)"])
        try openssl(["x509", "-req", "-in", csr, "-CA", ca.certificate, "-CAkey", ca.key, "-CAcreateserial", "-out", cert, "-days", "1", "-extfile", ext])
        return (cert, key)
    }
}

@Suite("Controller flags for TLS")
struct TLSFlagTests {
    @Test("an API beyond loopback without TLS, or a broker on every address without a name, is refused before anything starts")
    func refusedFlags() throws {
        let dir = try Harness.temporaryDirectory("tls-flags")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cases: [([String], String)] = [
            (["--listen", "0.0.0.0:7070"], "not a loopback address"),
            (["--listen", "169.254.1.1:7070"], "--tls"),
            (["--listen", "0.0.0.0:7070", "--tls"], "--advertise"),
            (["--mqtt-listen", "0.0.0.0:8883"], "--advertise"),
            (["--mqtt-listen", "nonsense"], "HOST:PORT"),
            (["--tls", "--tls-cert", "a.pem", "--tls-key", "a.key"], "not both"),
            (["--tls-cert", "a.pem"], "go together"),
            (["--broker", "mqtt://127.0.0.1:1", "--mqtt-listen", "127.0.0.1:8883"], "managed broker"),
        ]
        for (flags, message) in cases {
            let (status, output) = try Harness.run(Harness.binary("drover-controller"), ["--data-dir", dir + "/c"] + flags)
            #expect(status != 0 && output.contains(message), "\(flags): \(output)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/c"), "nothing may be written before the flags are checked")
    }
}
