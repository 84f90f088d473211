import DroverPOSIX
import Foundation
import Yams

/// `~/.config/drover/config.yaml`: named contexts (a controller URL, a token, a CA), one of
/// them current, as kubectl's kubeconfig. `DROVER_CONFIG` names another file.
///
/// ```yaml
/// current-context: plant-a
/// contexts:
///   - name: plant-a
///     controller: https://10.0.0.5:7070
///     token: drv_...
///     ca: /etc/drover/ca.pem
/// ```
struct CLIConfig: Codable {
    struct Context: Codable {
        var name: String
        var controller: String
        var token: String?
        var ca: String?
    }

    var currentContext: String?
    var contexts: [Context] = []

    enum CodingKeys: String, CodingKey {
        case currentContext = "current-context"
        case contexts
    }

    static var path: String {
        let env = ProcessInfo.processInfo.environment
        if let explicit = env["DROVER_CONFIG"], !explicit.isEmpty { return explicit }
        let base = env["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? ((env["HOME"] ?? NSHomeDirectory()) + "/.config")
        return base + "/drover/config.yaml"
    }

    /// The file's contents; an absent file is an empty config, an unreadable one an error.
    static func load() -> CLIConfig {
        guard FileManager.default.fileExists(atPath: path) else { return CLIConfig() }
        guard let data = FileManager.default.contents(atPath: path) else { fail("cannot read \(path)") }
        do {
            return try YAMLDecoder().decode(CLIConfig.self, from: data)
        } catch {
            fail("\(path) is not a drover config: \(error)")
        }
    }

    /// Written owner-only: it holds tokens.
    func save() {
        let path = Self.path
        do {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try OwnerOnlyFile.write(try YAMLEncoder().encode(self), to: path)
        } catch {
            fail("cannot write \(path): \(error)")
        }
    }

    func context(named name: String) -> Context? { contexts.first { $0.name == name } }

    mutating func upsert(_ context: Context) {
        if let i = contexts.firstIndex(where: { $0.name == context.name }) { contexts[i] = context } else { contexts.append(context) }
    }
}

/// Where the CLI sends requests and with what, each from the first of: a flag, the
/// environment (`DROVER_CONTROLLER`, `DROVER_TOKEN`, `DROVER_CA`, `DROVER_CONTEXT`), the
/// current context, the default (http://127.0.0.1:7070, no token).
struct Connection {
    var controller: String
    var token: String?
    var ca: String?

    static func resolve(controller: String?, token: String?, ca: String?, context: String?) -> Connection {
        let env = ProcessInfo.processInfo.environment
        func nonEmpty(_ s: String?) -> String? { s.flatMap { $0.isEmpty ? nil : $0 } }
        var chosen: CLIConfig.Context?
        let config = CLIConfig.load()
        if let name = nonEmpty(context) ?? nonEmpty(env["DROVER_CONTEXT"]) {
            guard let found = config.context(named: name) else { fail("no context '\(name)' in \(CLIConfig.path) (drover config get-contexts lists them)") }
            chosen = found
        } else if let name = config.currentContext {
            chosen = config.context(named: name)
        }
        let url = nonEmpty(controller) ?? nonEmpty(env["DROVER_CONTROLLER"]) ?? chosen?.controller ?? "http://127.0.0.1:7070"
        // A context's token and CA belong to its controller: never sent to another one.
        if let context = chosen, context.controller != url { chosen = nil }
        return Connection(
            controller: url,
            token: nonEmpty(token) ?? nonEmpty(env["DROVER_TOKEN"]) ?? chosen?.token,
            ca: nonEmpty(ca) ?? nonEmpty(env["DROVER_CA"]) ?? chosen?.ca)
    }
}
