import DroverCore
import Yams

/// Reads a workload manifest (YAML, or JSON, which YAML parses too) into a `WorkloadSpec`.
///
/// Every problem is reported with its field path, all at once, and nothing is returned
/// unless the whole manifest is valid: a half-valid manifest must never change anything.
public enum Manifest {
    public static let apiVersion = "drover/v1"

    public static func parseWorkload(_ text: String) throws(ValidationFailure) -> WorkloadSpec {
        let root: Any?
        do {
            root = try Yams.load(yaml: text)
        } catch {
            throw ValidationFailure([FieldError(path: "", reason: "not valid YAML or JSON: \(syntaxMessage(error))")])
        }
        var reader = FieldReader()
        guard let top = reader.object(root, "") else { throw ValidationFailure(reader.errors) }
        reader.allowOnly(top, ["apiVersion", "kind", "metadata", "spec"], at: "")
        let version = reader.string(top["apiVersion"], "apiVersion")
        if let version, version != apiVersion {
            reader.fail("apiVersion", "must be '\(apiVersion)', found '\(version)'")
        }
        let kind = reader.string(top["kind"], "kind")
        if let kind, kind != "Workload" { reader.fail("kind", "must be 'Workload', found '\(kind)'") }
        let metadata = reader.object(top["metadata"], "metadata") ?? [:]
        reader.allowOnly(metadata, ["name", "labels"], at: "metadata")
        let name = reader.string(metadata["name"], "metadata.name") ?? ""
        let spec = reader.object(top["spec"], "spec") ?? [:]
        let workload = readSpec(spec, name: name, reader: &reader)
        var errors = reader.errors
        if let workload {
            // Field paths already reported by the reader are not repeated.
            let known = Set(errors.map(\.path))
            errors += workload.validate().filter { !known.contains($0.path) }
        }
        guard errors.isEmpty, let workload else {
            throw ValidationFailure(errors.isEmpty ? [FieldError(path: "spec", reason: "invalid")] : errors)
        }
        return workload
    }

    private static func readSpec(_ spec: [String: Any], name: String, reader: inout FieldReader) -> WorkloadSpec? {
        reader.allowOnly(spec, ["replicas", "selector", "resources", "runtime", "command", "env", "restartPolicy"], at: "spec")
        let replicas = spec["replicas"] == nil ? 1 : reader.int(spec["replicas"], "spec.replicas")
        var selector: [String: String] = [:]
        if let sel = reader.object(spec["selector"], "spec.selector", optional: true) {
            reader.allowOnly(sel, ["matchLabels"], at: "spec.selector")
            selector = reader.stringMap(sel["matchLabels"], "spec.selector.matchLabels")
        }
        var resources = Resources.zero
        if let res = reader.object(spec["resources"], "spec.resources", optional: true) {
            reader.allowOnly(res, ["cpu", "memory"], at: "spec.resources")
            if let cpu = res["cpu"] {
                if let millis = Quantity.parseCPU(scalarText(cpu)) { resources.cpuMillis = millis } else {
                    reader.fail("spec.resources.cpu", "must be cores (0.5, 2) or millicores (500m), found '\(scalarText(cpu))'")
                }
            }
            if let memory = res["memory"] {
                if let bytes = Quantity.parseMemory(scalarText(memory)) { resources.memoryBytes = bytes } else {
                    reader.fail("spec.resources.memory", "must be bytes with an optional Ki/Mi/Gi suffix, found '\(scalarText(memory))'")
                }
            }
        }
        let runtime = reader.enumValue(spec["runtime"], "spec.runtime", default: RuntimeKind.exec)
        let restart = reader.enumValue(spec["restartPolicy"], "spec.restartPolicy", default: RestartPolicy.always)
        let command = reader.stringList(spec["command"], "spec.command")
        let env = reader.stringMap(spec["env"], "spec.env")
        guard let replicas, let runtime, let restart, let command else { return nil }
        return WorkloadSpec(
            name: name, replicas: replicas, selector: selector, resources: resources, runtime: runtime,
            command: command, env: env, restartPolicy: restart)
    }

    private static func syntaxMessage(_ error: any Error) -> String {
        "\(error)".split(separator: "\n").first.map(String.init) ?? "syntax error"
    }
}

func scalarText(_ value: Any) -> String {
    switch value {
    case let s as String: return s
    case let i as Int: return String(i)
    case let d as Double: return String(d)
    case let b as Bool: return String(b)
    default: return "\(value)"
    }
}
