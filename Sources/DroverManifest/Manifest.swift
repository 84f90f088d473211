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
        reader.allowOnly(spec, [
            "mode", "replicas", "selector", "arch", "resources", "runtime", "command", "env", "restartPolicy", "connectivity",
            "spread", "affinity", "antiAffinity", "priority", "maxPerDevice", "strategy", "autoscale", "user", "image",
            "volumes", "ports", "startupProbe", "livenessProbe", "readinessProbe", "rollout",
        ], at: "spec")
        let mode = reader.enumValue(spec["mode"], "spec.mode", default: WorkloadMode.replicas)
        let replicas = spec["replicas"] == nil ? 1 : reader.int(spec["replicas"], "spec.replicas")
        let selector = readSelector(spec["selector"], reader: &reader)
        let arch = spec["arch"] == nil ? [] : reader.stringList(spec["arch"], "spec.arch") ?? []
        let resources = readResources(spec["resources"], reader: &reader)
        // An image means a container: runc unless the manifest names the runtime.
        let runtime = reader.enumValue(spec["runtime"], "spec.runtime", default: spec["image"] == nil ? RuntimeKind.exec : .runc)
        let restart = reader.enumValue(spec["restartPolicy"], "spec.restartPolicy", default: RestartPolicy.always)
        let command = spec["command"] == nil && spec["image"] != nil ? [] : reader.stringList(spec["command"], "spec.command")
        let env = reader.stringMap(spec["env"], "spec.env")
        let connectivity = readConnectivity(spec["connectivity"], reader: &reader)
        var spread: SpreadConstraint?
        if let s = reader.object(spec["spread"], "spec.spread", optional: true) {
            reader.allowOnly(s, ["labelKey", "maxSkew"], at: "spec.spread")
            spread = SpreadConstraint(
                labelKey: reader.string(s["labelKey"], "spec.spread.labelKey") ?? "",
                maxSkew: s["maxSkew"] == nil ? 1 : reader.int(s["maxSkew"], "spec.spread.maxSkew") ?? 1)
        }
        let affinity = readAffinity(spec["affinity"], "spec.affinity", reader: &reader)
        let antiAffinity = readAffinity(spec["antiAffinity"], "spec.antiAffinity", reader: &reader)
        let priority = spec["priority"] == nil ? 0 : reader.int(spec["priority"], "spec.priority") ?? 0
        let maxPerDevice = spec["maxPerDevice"] == nil ? 1 : reader.int(spec["maxPerDevice"], "spec.maxPerDevice") ?? 1
        let strategy = reader.enumValue(spec["strategy"], "spec.strategy", default: PlacementStrategy.spreadLoad)
        var autoscale: AutoscaleSpec?
        if let a = reader.object(spec["autoscale"], "spec.autoscale", optional: true) {
            reader.allowOnly(a, ["minReplicas", "maxReplicas", "targetCPUPercent", "stabilizationWindow"], at: "spec.autoscale")
            var window = 60
            if let raw = a["stabilizationWindow"] {
                if let seconds = Duration.parseSeconds(scalarText(raw)) { window = seconds } else {
                    reader.fail("spec.autoscale.stabilizationWindow", "must be a duration such as 30s or 5m, found '\(scalarText(raw))'")
                }
            }
            autoscale = AutoscaleSpec(
                minReplicas: a["minReplicas"] == nil ? 1 : reader.int(a["minReplicas"], "spec.autoscale.minReplicas") ?? 1,
                maxReplicas: reader.int(a["maxReplicas"], "spec.autoscale.maxReplicas") ?? 0,
                targetCPUPercent: a["targetCPUPercent"] == nil ? 80 : reader.int(a["targetCPUPercent"], "spec.autoscale.targetCPUPercent") ?? 80,
                stabilizationSeconds: window)
        }
        let user = spec["user"] == nil ? nil : reader.string(spec["user"], "spec.user")
        let image = spec["image"] == nil ? nil : reader.string(spec["image"], "spec.image")
        let volumes = readVolumes(spec["volumes"], reader: &reader)
        let probes = Probes(
            startup: readProbe(spec["startupProbe"], "spec.startupProbe", reader: &reader),
            liveness: readProbe(spec["livenessProbe"], "spec.livenessProbe", reader: &reader),
            readiness: readProbe(spec["readinessProbe"], "spec.readinessProbe", reader: &reader))
        var ports: [Int] = []
        if let raw = spec["ports"] {
            if let list = raw as? [Any] {
                ports = list.enumerated().compactMap { i, item in reader.int(item, "spec.ports[\(i)]") }
            } else {
                reader.fail("spec.ports", "must be a list of port numbers")
            }
        }
        let complete = replicas != nil && runtime != nil && restart != nil && command != nil && mode != nil && strategy != nil
        let workload = WorkloadSpec(
            name: name, mode: mode ?? .replicas, replicas: replicas ?? 0, selector: selector, arch: arch, resources: resources,
            runtime: runtime ?? .exec, command: command ?? ["-"], env: env, restartPolicy: restart ?? .always,
            connectivity: connectivity, spread: spread, affinity: affinity, antiAffinity: antiAffinity, priority: priority,
            maxPerDevice: maxPerDevice, strategy: strategy ?? .spreadLoad, autoscale: autoscale, user: user, image: image, volumes: volumes, ports: ports, probes: probes)
        var result = workload
        result.rollout = readRollout(spec["rollout"], reader: &reader)
        return (result, complete)
    }

    /// `{waves: [{count: 1}, {selector: {...}}, {percent: 100}], maxUnavailable, maxSurge, minReadySeconds,
    /// bakeTime, progressDeadline, failureThreshold, autoRollback}`.
    private static func readRollout(_ value: Any?, reader: inout FieldReader) -> RolloutSpec? {
        let path = "spec.rollout"
        guard let r = reader.object(value, path, optional: true) else { return nil }
        reader.allowOnly(r, ["waves", "maxUnavailable", "maxSurge", "minReadySeconds", "bakeTime", "progressDeadline", "failureThreshold", "autoRollback"], at: path)
        var spec = RolloutSpec()
        if let raw = r["waves"] {
            if let items = raw as? [Any] {
                spec.waves = items.enumerated().compactMap { i, item in
                    let at = "\(path).waves[\(i)]"
                    guard let w = reader.object(item, at) else { return nil }
                    reader.allowOnly(w, ["count", "percent", "selector"], at: at)
                    if w["count"] != nil { return reader.int(w["count"], at + ".count").map { .count($0) } }
                    if w["percent"] != nil { return reader.int(w["percent"], at + ".percent").map { .percent($0) } }
                    if let sel = reader.object(w["selector"], at + ".selector", optional: true) {
                        return .selector(LabelSelector(matchLabels: reader.stringMap(sel["matchLabels"], at + ".selector.matchLabels")))
                    }
                    reader.fail(at, "must be {count: N}, {percent: P} or {selector: {matchLabels: {...}}}")
                    return nil
                }
            } else {
                reader.fail(path + ".waves", "must be a list")
            }
        }
        func number(_ key: String, _ fallback: Int) -> Int { r[key] == nil ? fallback : reader.int(r[key], "\(path).\(key)") ?? fallback }
        func seconds(_ key: String, _ fallback: Int) -> Int {
            guard let raw = r[key] else { return fallback }
            if let value = Duration.parseSeconds(scalarText(raw)) { return value }
            reader.fail("\(path).\(key)", "must be a duration such as 30s or 5m, found '\(scalarText(raw))'")
            return fallback
        }
        spec.maxSurge = number("maxSurge", 0)
        // Surge where a device has room, one replaced at a time elsewhere; `maxUnavailable: 0`
        // asks for no gap at all (replicas that cannot surge then fail at the deadline).
        spec.maxUnavailable = number("maxUnavailable", 1)
        spec.minReadySeconds = number("minReadySeconds", 0)
        spec.failureThreshold = number("failureThreshold", 0)
        spec.bakeSeconds = seconds("bakeTime", 0)
        spec.progressDeadlineSeconds = seconds("progressDeadline", 600)
        if let raw = r["autoRollback"] {
            if let flag = raw as? Bool { spec.autoRollback = flag } else { reader.fail(path + ".autoRollback", "must be true or false") }
        }
        return spec
    }

    /// `{exec: {command: [...]}} | {http: {path, port}} | {tcp: {port}}` with the timings.
    private static func readProbe(_ value: Any?, _ path: String, reader: inout FieldReader) -> Probe? {
        guard let p = reader.object(value, path, optional: true) else { return nil }
        reader.allowOnly(p, ["exec", "http", "tcp", "initialDelaySeconds", "periodSeconds", "timeoutSeconds", "failureThreshold", "successThreshold"], at: path)
        let kinds = ["exec", "http", "tcp"].filter { p[$0] != nil }
        guard kinds.count == 1, let kind = kinds.first else {
            reader.fail(path, "must have exactly one of exec, http or tcp")
            return nil
        }
        let action: Probe.Action
        let body = reader.object(p[kind], "\(path).\(kind)") ?? [:]
        switch kind {
        case "exec":
            reader.allowOnly(body, ["command"], at: path + ".exec")
            action = .exec(command: reader.stringList(body["command"], path + ".exec.command") ?? [])
        case "http":
            reader.allowOnly(body, ["path", "port"], at: path + ".http")
            action = .http(path: body["path"] == nil ? "/" : reader.string(body["path"], path + ".http.path") ?? "/", port: reader.int(body["port"], path + ".http.port") ?? 0)
        default:
            reader.allowOnly(body, ["port"], at: path + ".tcp")
            action = .tcp(port: reader.int(body["port"], path + ".tcp.port") ?? 0)
        }
        func number(_ key: String, _ fallback: Int) -> Int { p[key] == nil ? fallback : reader.int(p[key], "\(path).\(key)") ?? fallback }
        return Probe(
            action: action, initialDelaySeconds: number("initialDelaySeconds", 0), periodSeconds: number("periodSeconds", 10),
            timeoutSeconds: number("timeoutSeconds", 1), failureThreshold: number("failureThreshold", 3), successThreshold: number("successThreshold", 1))
    }

    private static func readVolumes(_ value: Any?, reader: inout FieldReader) -> [VolumeMount] {
        guard let value else { return [] }
        guard let items = value as? [Any] else {
            reader.fail("spec.volumes", "must be a list of {name, path, readOnly}")
            return []
        }
        return items.enumerated().compactMap { i, item in
            let path = "spec.volumes[\(i)]"
            guard let v = reader.object(item, path) else { return nil }
            reader.allowOnly(v, ["name", "path", "readOnly"], at: path)
            var readOnly = false
            if let raw = v["readOnly"] {
                if let flag = raw as? Bool { readOnly = flag } else { reader.fail(path + ".readOnly", "must be true or false") }
            }
            return VolumeMount(name: reader.string(v["name"], path + ".name") ?? "", path: reader.string(v["path"], path + ".path") ?? "", readOnly: readOnly)
        }
    }

    private static func readSelector(_ value: Any?, reader: inout FieldReader) -> LabelSelector {
        guard let sel = reader.object(value, "spec.selector", optional: true) else { return LabelSelector() }
        reader.allowOnly(sel, ["matchLabels", "matchExpressions"], at: "spec.selector")
        var selector = LabelSelector(matchLabels: reader.stringMap(sel["matchLabels"], "spec.selector.matchLabels"))
        guard let list = sel["matchExpressions"] else { return selector }
        guard let items = list as? [Any] else {
            reader.fail("spec.selector.matchExpressions", "must be a list")
            return selector
        }
        for (i, item) in items.enumerated() {
            let path = "spec.selector.matchExpressions[\(i)]"
            guard let e = reader.object(item, path) else { continue }
            reader.allowOnly(e, ["key", "operator", "values"], at: path)
            let key = reader.string(e["key"], path + ".key") ?? ""
            let op = e["operator"] == nil ? nil : reader.enumValue(e["operator"], path + ".operator", default: LabelRequirement.Operator.exists)
            if e["operator"] == nil { reader.fail(path + ".operator", "is required (In, NotIn, Exists, DoesNotExist)") }
            let values = e["values"] == nil ? [] : reader.stringList(e["values"], path + ".values") ?? []
            if let op { selector.matchExpressions.append(LabelRequirement(key: key, operator: op, values: values)) }
        }
        return selector
    }

    private static func readResources(_ value: Any?, reader: inout FieldReader) -> Resources {
        var resources = Resources.zero
        guard let res = reader.object(value, "spec.resources", optional: true) else { return resources }
        for (key, raw) in res.sorted(by: { $0.key < $1.key }) {
            let text = scalarText(raw)
            let path = "spec.resources.\(key)"
            switch key {
            case "cpu":
                if let millis = Quantity.parseCPU(text) { resources.cpuMillis = millis } else {
                    reader.fail(path, "must be cores (0.5, 2) or millicores (500m), found '\(text)'")
                }
            case "memory", "storage":
                guard let bytes = Quantity.parseMemory(text) else {
                    reader.fail(path, "must be bytes with an optional Ki/Mi/Gi suffix, found '\(text)'")
                    continue
                }
                if key == "memory" { resources.memoryBytes = bytes } else { resources.storageBytes = bytes }
            default:
                // Named device resources (gpu, serial, …) are whole counts.
                guard let count = raw as? Int, count >= 0 else {
                    reader.fail(path, "a device resource must be a whole count >= 0, found '\(text)'")
                    continue
                }
                resources.devices[key] = count
            }
        }
        return resources
    }

    private static func readConnectivity(_ value: Any?, reader: inout FieldReader) -> ConnectivityNeeds {
        var needs = ConnectivityNeeds()
        guard let c = reader.object(value, "spec.connectivity", optional: true) else { return needs }
        reader.allowOnly(c, ["minLinkClass", "minUptime", "tolerateOffline"], at: "spec.connectivity")
        if c["minLinkClass"] != nil { needs.minLinkClass = reader.enumValue(c["minLinkClass"], "spec.connectivity.minLinkClass", default: LinkClass.wired) }
        if let raw = c["minUptime"] {
            if let v = (raw as? Double) ?? (raw as? Int).map(Double.init) { needs.minUptime = v } else { reader.fail("spec.connectivity.minUptime", "must be a ratio between 0 and 1") }
        }
        if let raw = c["tolerateOffline"] {
            if let seconds = Duration.parseSeconds(scalarText(raw)) { needs.tolerateOfflineSeconds = seconds } else {
                reader.fail("spec.connectivity.tolerateOffline", "must be a duration such as 90s, 5m or 2h, found '\(scalarText(raw))'")
            }
        }
        return needs
    }

    private static func readAffinity(_ value: Any?, _ path: String, reader: inout FieldReader) -> [AffinityTerm] {
        guard let value else { return [] }
        guard let items = value as? [Any] else {
            reader.fail(path, "must be a list of {workload, labelKey}")
            return []
        }
        return items.enumerated().compactMap { i, item in
            let p = "\(path)[\(i)]"
            guard let t = reader.object(item, p) else { return nil }
            reader.allowOnly(t, ["workload", "labelKey"], at: p)
            let workload = reader.string(t["workload"], p + ".workload") ?? ""
            let key = t["labelKey"] == nil ? nil : reader.string(t["labelKey"], p + ".labelKey")
            return AffinityTerm(workload: workload, labelKey: key)
        }
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

extension Duration {
    /// "90s", "5m", "2h", "1d" or a bare number of seconds.
    static func parseSeconds(_ text: String) -> Int? {
        let units: [(String, Int)] = [("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            guard let n = Int(text.dropLast()), n >= 0 else { return nil }
            let (seconds, overflow) = n.multipliedReportingOverflow(by: scale)
            return overflow ? nil : seconds
        }
        return Int(text).flatMap { $0 >= 0 ? $0 : nil }
    }
}
