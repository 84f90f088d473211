import Foundation
import Testing

/// The `drover` CLI against a real controller, as an operator types it.
@Suite("drover CLI", .serialized)
struct CLITests {
    static func drover(_ bed: FleetTestbed?, _ arguments: [String], port: Int? = nil) throws -> (status: Int32, output: String) {
        if let bed, port == nil { return try bed.drover(arguments) }
        let url = "http://127.0.0.1:\(port ?? 1)"
        return try Harness.run(Harness.binary("drover"), arguments, environment: ["DROVER_CONTROLLER": url, "DROVER_CONFIG": "/nonexistent/drover.yaml"])
    }

    @Test("a controller that cannot be reached gives one clear line and a non-zero exit")
    func unreachable() throws {
        let (status, output) = try Self.drover(nil, ["status"], port: try Harness.freePort())
        #expect(status != 0)
        #expect(output.hasPrefix("error: cannot reach the controller at http://127.0.0.1:"))
        #expect(output.split(separator: "\n").count == 1)
    }

    @Test("a bad manifest names each bad field on one line and changes nothing")
    func badManifest() async throws {
        try await FleetTestbed.run("cli-bad") { bed in
            let file = Harness.repoRoot + "/fleet-configs/invalid/bad-workload.yaml"
            let (status, output) = try Self.drover(bed, ["apply", "-f", file])
            #expect(status != 0)
            #expect(output.split(separator: "\n").count == 1)
            for field in ["apiVersion", "spec.replicas", "spec.restartPolicy", "spec.resources.memory"] { #expect(output.contains(field)) }
            #expect(try await bed.api.list("/v1/workloads").isEmpty)
            let missing = try Self.drover(bed, ["apply", "-f", bed.dir + "/nope.yaml"])
            #expect(missing.status != 0 && missing.output.contains("cannot read"))
        }
    }

    @Test("an unknown name gives one clear line and a non-zero exit")
    func unknownName() async throws {
        try await FleetTestbed.run("cli-unknown") { bed in
            let cases: [([String], String)] = [
                (["describe", "workload", "nope"], "workload 'nope' not found"),
                (["delete", "workload", "nope"], "workload 'nope' not found"),
                (["scale", "nope", "--replicas", "2"], "workload 'nope' not found"),
                (["describe", "device", "ghost"], "device 'ghost' not found"),
            ]
            for (args, message) in cases {
                let (status, output) = try Self.drover(bed, args)
                #expect(status != 0, "\(args)")
                #expect(output == "error: \(message)\n", "\(args)")
            }
        }
    }

    @Test("apply, scale, describe and delete through the CLI; tables, JSON and YAML")
    func roundTrip() async throws {
        try await FleetTestbed.run("cli") { bed in
            try bed.startAgent("gw-1", labels: "role=gateway", capacity: "cpu=1,memory=512Mi")
            try await bed.waitForDevices(online: 1)
            let dry = try Self.drover(bed, ["apply", "--dry-run", "-f", Harness.repoRoot + "/fleet-configs/workloads/sensor-reader.yaml"])
            #expect(dry.status == 0)
            #expect(dry.output.contains("place    sensor-reader-0  gw-1"), "\(dry.output)")
            #expect(dry.output.contains("pending  sensor-reader-1  -       1 device: already runs a replica of this workload"), "\(dry.output)")
            #expect(dry.output.contains("nothing changed"))
            #expect(try await bed.api.list("/v1/workloads").isEmpty)
            let apply = try Self.drover(bed, ["apply", "-f", Harness.repoRoot + "/fleet-configs/workloads/sensor-reader.yaml"])
            #expect(apply.status == 0)
            #expect(apply.output == "workload/sensor-reader created (revision 1)\n")
            #expect(await Harness.eventually { (try? await bed.running("sensor-reader").count) == 1 })

            let status = try Self.drover(bed, ["status"])
            #expect(status.output.contains("broker            \(bed.brokerURL) (managed, connected)"))
            #expect(status.output.contains("replicas          1/3 running"))
            let devices = try Self.drover(bed, ["devices"])
            #expect(devices.output.hasPrefix("DEVICE  PRESENCE  ARCH"))
            #expect(devices.output.contains("gw-1    online"))
            let describe = try Self.drover(bed, ["describe", "workload", "sensor-reader"])
            #expect(describe.output.contains("sensor-reader-0 on gw-1: running"))
            #expect(describe.output.contains("pending         sensor-reader-1: 1 device: already runs a replica of this workload"))

            let json = try Self.drover(bed, ["workloads", "-o", "json"])
            let parsed = try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [[String: Any]]
            #expect(parsed?.first?["name"] as? String == "sensor-reader")
            let yaml = try Self.drover(bed, ["describe", "device", "gw-1", "-o", "yaml"])
            #expect(yaml.output.contains("presence: \"online\"") || yaml.output.contains("presence: online"))

            #expect(try Self.drover(bed, ["scale", "sensor-reader", "--replicas", "0"]).output == "workload/sensor-reader scaled to 0\n")
            #expect(await Harness.eventually { (try? await bed.running("sensor-reader").count) == 0 })
            #expect(try Self.drover(bed, ["delete", "workload", "sensor-reader"]).status == 0)
            // The controller pings every 0.5 s here: the round trip is measured through the agent.
            #expect(await Harness.eventually(.seconds(10)) {
                ((try? await bed.api.get("/v1/devices/gw-1"))?["record"] as? [String: Any])?["rttMillis"] as? Double != nil
            })
            #expect(try Self.drover(bed, ["describe", "device", "gw-1"]).output.contains(" ms"))
            #expect(try Self.drover(bed, ["cordon", "gw-1"]).output == "device/gw-1 cordoned\n")
            #expect(try Self.drover(bed, ["devices"]).output.contains("online,cordoned"))
            #expect(try Self.drover(bed, ["uncordon", "gw-1"]).status == 0)
            #expect(try Self.drover(bed, ["drain", "ghost"]).output == "error: device 'ghost' not found\n")
            let events = try Self.drover(bed, ["events", "--limit", "5"])
            #expect(events.output.contains("WorkloadDeleted"))
        }
    }
}

@Suite("drover config and tokens", .serialized)
struct CLIAccessTests {
    @Test("contexts hold the URL and token; tokens are made, used, refused by role and revoked, each failure one line")
    func contextsAndTokens() async throws {
        try await FleetTestbed.run("cli-access", Self.body)
    }

    static func body(_ bed: FleetTestbed) async throws {
        let config = bed.dir + "/cli.yaml"
        // Only the config file: no DROVER_CONTROLLER or DROVER_TOKEN.
        func cli(_ args: [String], _ extra: [String: String] = [:]) throws -> (status: Int32, output: String) {
            try Harness.run(Harness.binary("drover"), args, environment: ["DROVER_CONFIG": config, "DROVER_CONTROLLER": "", "DROVER_TOKEN": ""].merging(extra) { $1 })
        }
        let none = try cli(["status", "--controller", "http://127.0.0.1:\(bed.apiPort)"])
        #expect(none.status != 0 && none.output.hasPrefix("error: this API needs a bearer token") && none.output.split(separator: "\n").count == 1, "\(none.output)")

        let set = try cli(["config", "set-context", "lab", "--controller", "http://127.0.0.1:\(bed.apiPort)", "--token-file", bed.dir + "/controller/admin.token"])
        #expect(set.status == 0, "\(set.output)")
        #expect(SecurityTests.mode(config) == 0o600, "the config holds tokens")
        #expect(try cli(["status"]).status == 0)
        let contexts = try cli(["config", "get-contexts"]).output
        #expect(contexts.contains("*") && contexts.contains("lab") && !contexts.contains(bed.api.token ?? "-"), "\(contexts)")

        let made = try cli(["tokens", "create", "watcher", "--role", "viewer"])
        let viewer = made.output.split(separator: "\n").first { $0.hasPrefix("drv_") }.map(String.init) ?? ""
        #expect(made.status == 0 && !viewer.isEmpty, "\(made.output)")
        #expect(try cli(["tokens", "list"]).output.contains("watcher  viewer"))
        _ = try cli(["config", "set-context", "ro", "--controller", "http://127.0.0.1:\(bed.apiPort)", "--token", viewer])
        #expect(try cli(["devices", "--context", "ro"]).status == 0)
        let write = try cli(["apply", "-f", Harness.repoRoot + "/fleet-configs/workloads/sensor-reader.yaml", "--context", "ro"])
        #expect(write.status != 0 && write.output.contains("has role viewer") && write.output.split(separator: "\n").count == 1, "\(write.output)")
        #expect(try cli(["config", "use-context", "ro"]).status == 0)
        #expect(try cli(["config", "current-context"]).output == "ro\n")
        // The environment wins over the context, a flag over the environment.
        #expect(try cli(["tokens", "list"], ["DROVER_TOKEN": bed.api.token ?? ""]).status == 0)
        #expect(try cli(["tokens", "list", "--token", viewer], ["DROVER_TOKEN": bed.api.token ?? ""]).status != 0)

        #expect(try cli(["tokens", "revoke", "watcher", "--context", "lab"]).status == 0)
        let revoked = try cli(["devices"])
        #expect(revoked.status != 0 && revoked.output.contains("revoked"), "\(revoked.output)")
        let missing = try cli(["status", "--context", "nope"])
        #expect(missing.status != 0 && missing.output.contains("no context 'nope'"), "\(missing.output)")
    }
}
