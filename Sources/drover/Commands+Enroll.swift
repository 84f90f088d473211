import ArgumentParser
import DroverAPI
import DroverCore
import Foundation

struct EnrollCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enroll", abstract: "Make a one-time enrollment token for a device (admin); it is printed once.",
        discussion: "Start the device's agent with --controller URL --token-file FILE holding the token; it trades it for MQTT credentials of its own.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Device id: 1-64 letters, digits, '.', '_' or '-'.") var id: String
    @Option(help: "Labels the controller gives the device, e.g. site=plant-a,role=gateway; they win over the agent's.") var labels: String = ""
    @Option(help: "How long the token stays good: 60s to 30d (e.g. 10m, 24h, 7d).") var ttl: String = "24h"

    func validate() throws {
        guard Names.isValidDeviceID(id) else { throw ValidationError("device id '\(id)' must be 1-64 letters, digits, '.', '_' or '-'") }
        guard let seconds = Self.seconds(ttl), EnrollRequest.ttlRange.contains(seconds) else { throw ValidationError("--ttl: '\(ttl)' must be 60s to 30d, e.g. 10m, 24h or 7d") }
        _ = try parsedLabels()
    }

    static func seconds(_ text: String) -> Int? {
        let units: [Character: Int] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        guard let unit = text.last, let factor = units[unit], let n = Int(text.dropLast()), n > 0, n <= 1_000_000 else { return Int(text) }
        return n * factor
    }

    func parsedLabels() throws -> [String: String] {
        let parsed = Names.parseLabels(labels)
        if let bad = parsed.bad { throw ValidationError("--labels: '\(bad)' is not key=value with a valid key and value") }
        return parsed.labels
    }

    func run() async throws {
        let request = EnrollRequest(labels: try parsedLabels(), ttlSeconds: Self.seconds(ttl))
        let data = await options.client.send("POST", "/v1/devices/\(id.pathEscaped)/enroll", body: (try? JSONEncoder().encode(request)) ?? Data())
        guard let issued = try? JSONDecoder().decode(EnrollmentIssued.self, from: data) else { fail("unexpected answer from the controller") }
        if options.output == .table {
            print(issued.token)
            let expires = Date(timeIntervalSince1970: Double(issued.expires) / 1000)
            FileHandle.standardError.write(Data("enrollment token for \(issued.device), good once until \(expires) (CA sha256:\(issued.caFingerprint.prefix(16))...)\n".utf8))
        } else {
            Output.print(data, format: options.output) { [] }
        }
    }
}

struct RevokeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke", abstract: "Revoke a device (admin): the broker disconnects it and refuses it from then on; its replicas move away.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Device id.") var id: String

    func run() async {
        _ = await options.client.send("POST", "/v1/devices/\(id.pathEscaped)/revoke")
        print("device \(id) revoked")
    }
}
