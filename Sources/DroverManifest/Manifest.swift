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
        // Semantic checks run even when some fields did not read, so that every fault is
        // reported at once; a path the reader already reported is not repeated.
        var errors = reader.errors
        let known = Set(errors.map(\.path))
        errors += workload.spec.validate().filter { !known.contains($0.path) }
        guard errors.isEmpty, workload.complete else { throw ValidationFailure(errors) }
        return workload.spec
    }

    /// The spec as far as it could be read; fields that could not be read hold placeholders
    /// and `complete` is false.
    private static func readSpec(_ spec: [String: Any], name: String, reader: inout FieldReader) -> (spec: WorkloadSpec, complete: Bool) {
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
        let complete = replicas != nil && runtime != nil && restart != nil && command != nil
        let workload = WorkloadSpec(
            name: name, replicas: replicas ?? 0, selector: selector, resources: resources, runtime: runtime ?? .exec,
            command: command ?? ["-"], env: env, restartPolicy: restart ?? .always)
        return (workload, complete)
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
