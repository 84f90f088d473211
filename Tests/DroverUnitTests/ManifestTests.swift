import DroverCore
import DroverManifest
import Testing

@Suite("Manifests")
struct ManifestTests {
    @Test("the demo's manifest parses into the workload it describes")
    func demoManifest() throws {
        let spec = try Manifest.parseWorkload(try Fixtures.fleetConfig("workloads/sensor-reader.yaml"))
        #expect(spec.name == "sensor-reader")
        #expect(spec.replicas == 3)
        #expect(spec.selector == LabelSelector(matchLabels: ["role": "gateway"]))
        #expect(spec.resources == Resources(cpuMillis: 100, memoryBytes: 32 << 20))
        #expect(spec.restartPolicy == .always)
        #expect(spec.env == ["INTERVAL": "1"])
        #expect(spec.command.first == "/bin/sh")
    }

    @Test("named volumes of a container workload parse, and change the revision")
    func volumes() throws {
        let spec = try Manifest.parseWorkload(Self.manifest(spec: "  image: a:v1\n  volumes:\n    - {name: data, path: /var/lib/app}\n    - {name: conf, path: /etc/app, readOnly: true}\n"))
        #expect(spec.volumes == [VolumeMount(name: "data", path: "/var/lib/app"), VolumeMount(name: "conf", path: "/etc/app", readOnly: true)])
        var other = spec
        other.volumes.removeLast()
        #expect(spec.replica(ordinal: 0).revisionKey != other.replica(ordinal: 0).revisionKey)
    }

    @Test("probes parse with their defaults, and a probe change is a new revision")
    func probes() throws {
        let spec = try Manifest.parseWorkload(Self.manifest(spec: Self.command + """
              startupProbe: {exec: {command: [test, -f, /tmp/up]}, failureThreshold: 30}
              livenessProbe: {tcp: {port: 8080}, periodSeconds: 5}
              readinessProbe: {http: {path: /ready, port: 8080}, successThreshold: 2}
            """))
        #expect(spec.probes.startup == Probe(action: .exec(command: ["test", "-f", "/tmp/up"]), failureThreshold: 30))
        #expect(spec.probes.liveness == Probe(action: .tcp(port: 8080), periodSeconds: 5))
        #expect(spec.probes.readiness == Probe(action: .http(path: "/ready", port: 8080), successThreshold: 2))
        var other = spec
        other.probes.liveness?.periodSeconds = 6
        #expect(spec.replica(ordinal: 0).revisionKey != other.replica(ordinal: 0).revisionKey)
    }

    @Test("JSON manifests are accepted too")
    func json() throws {
        let spec = try Manifest.parseWorkload(#"{"apiVersion":"drover/v1","kind":"Workload","metadata":{"name":"j"},"spec":{"command":["true"],"resources":{"cpu":0.25,"memory":"1Gi"}}}"#)
        #expect(spec.replicas == 1)
        #expect(spec.resources == Resources(cpuMillis: 250, memoryBytes: 1 << 30))
    }

    @Test("a manifest with many faults names every bad field at once")
    func everyErrorNamed() throws {
        let text = try Fixtures.fleetConfig("invalid/bad-workload.yaml")
        let failure = #expect(throws: ValidationFailure.self) { try Manifest.parseWorkload(text) }
        let paths = Set(failure?.errors.map(\.path) ?? [])
        for path in ["apiVersion", "metadata.name", "spec.replicas", "spec.resources.cpu", "spec.resources.memory", "spec.restartPolicy", "spec.command", "spec.replica"] {
            #expect(paths.contains(path), "expected an error at \(path), got \(paths.sorted())")
        }
    }

    static func manifest(kind: String = "Workload", name: String = "w", spec: String) -> String {
        "apiVersion: drover/v1\nkind: \(kind)\nmetadata:\n  name: \(name)\nspec:\n" + spec
    }

    static let command = "  command: [\"/bin/true\"]\n"

    @Test("each single fault in spec is reported at its path", arguments: [
        ("  replicas: 2.5\n" + command, "spec.replicas"),
        ("  replicas: 100001\n" + command, "spec.replicas"),
        ("  resources: {cpu: -1}\n" + command, "spec.resources.cpu"),
        ("  resources: {memory: 1Xi}\n" + command, "spec.resources.memory"),
        ("  resources: {gpu: many}\n" + command, "spec.resources.gpu"),
        ("  connectivity: {minLinkClass: fibre}\n" + command, "spec.connectivity.minLinkClass"),
        ("  connectivity: {tolerateOffline: soon}\n" + command, "spec.connectivity.tolerateOffline"),
        ("  spread: {labelKey: site, maxSkew: 0}\n" + command, "spec.spread.maxSkew"),
        ("  selector: {matchExpressions: [{key: site, operator: In}]}\n" + command, "spec.selector.matchExpressions[0].values"),
        ("  selector: {matchExpressions: [{key: site, operator: Near, values: [a]}]}\n" + command, "spec.selector.matchExpressions[0].operator"),
        ("  affinity: [{labelKey: site}]\n" + command, "spec.affinity[0].workload"),
        ("  maxPerDevice: 0\n" + command, "spec.maxPerDevice"),
        ("  mode: sometimes\n" + command, "spec.mode"),
        ("  runtime: docker\n" + command, "spec.runtime"),
        ("  replicas: 1\n", "spec.command"),
        ("  command: []\n", "spec.command"),
        ("  command: [\"\"]\n", "spec.command[0]"),
        ("  env: {A: [1]}\n" + command, "spec.env.A"),
        ("  selector: {matchLabels: {\"bad key!\": x}}\n" + command, "spec.selector.matchLabels.bad key!"),
        ("  selector: {role: gateway}\n" + command, "spec.selector.role"),
        ("  volumes: [{name: data, path: /data}]\n" + command, "spec.volumes"),
        ("  image: a:v1\n  volumes: {data: /data}\n", "spec.volumes"),
        ("  image: a:v1\n  volumes: [{name: Data, path: /data}]\n", "spec.volumes[0].name"),
        ("  image: a:v1\n  volumes: [{name: data, path: data}]\n", "spec.volumes[0].path"),
        ("  image: a:v1\n  volumes: [{name: data, path: /proc/x}]\n", "spec.volumes[0].path"),
        ("  image: a:v1\n  volumes: [{name: data, path: /a/../etc}]\n", "spec.volumes[0].path"),
        ("  image: a:v1\n  volumes: [{name: data, path: /}]\n", "spec.volumes[0].path"),
        ("  image: a:v1\n  volumes: [{name: data, path: /d, readOnly: maybe}]\n", "spec.volumes[0].readOnly"),
        ("  image: a:v1\n  volumes: [{name: data, path: /d, size: 1Gi}]\n", "spec.volumes[0].size"),
        ("  image: a:v1\n  volumes: [{name: a, path: /d}, {name: a, path: /e}]\n", "spec.volumes[1].name"),
        ("  image: a:v1\n  volumes: [{name: a, path: /d}, {name: b, path: /d}]\n", "spec.volumes[1].path"),
        ("  image: a:v1\n  volumes: [{name: a, path: /d}, {name: b, path: /d/e}]\n", "spec.volumes[1].path"),
        ("  image: a:v1\n  volumes: [{name: a, path: \"/d:rw\"}]\n", "spec.volumes[0].path"),
        ("  ports: 80\n" + command, "spec.ports"),
        ("  ports: [0]\n" + command, "spec.ports[0]"),
        ("  ports: [80, 65536]\n" + command, "spec.ports[1]"),
        ("  ports: [80, 80]\n" + command, "spec.ports[1]"),
        ("  ports: [http]\n" + command, "spec.ports[0]"),
        ("  ports: [80]\n  maxPerDevice: 2\n" + command, "spec.maxPerDevice"),
        ("  livenessProbe: {periodSeconds: 5}\n" + command, "spec.livenessProbe"),
        ("  livenessProbe: {tcp: {port: 80}, http: {port: 80}}\n" + command, "spec.livenessProbe"),
        ("  livenessProbe: {http: {port: 0}}\n" + command, "spec.livenessProbe.http.port"),
        ("  livenessProbe: {tcp: {port: 80}, periodSeconds: 0}\n" + command, "spec.livenessProbe.periodSeconds"),
        ("  livenessProbe: {tcp: {port: 80}, successThreshold: 2}\n" + command, "spec.livenessProbe.successThreshold"),
        ("  readinessProbe: {exec: {command: []}}\n" + command, "spec.readinessProbe.exec.command"),
        ("  readinessProbe: {http: {path: health, port: 80}}\n" + command, "spec.readinessProbe.http.path"),
        ("  readinessProbe: {grpc: {port: 80}}\n" + command, "spec.readinessProbe.grpc"),
        ("  startupProbe: {tcp: {port: 80}, timeoutSeconds: 99999}\n" + command, "spec.startupProbe.timeoutSeconds"),
    ])
    func specFault(spec: String, path: String) {
        let failure = #expect(throws: ValidationFailure.self) { try Manifest.parseWorkload(Self.manifest(spec: spec)) }
        #expect(failure?.errors.contains { $0.path == path } == true, "\(failure?.errors ?? []) lacks \(path)")
    }

    @Test("a wrong kind or a bad name is reported at its path")
    func headerFaults() {
        let kind = #expect(throws: ValidationFailure.self) { try Manifest.parseWorkload(Self.manifest(kind: "Device", spec: Self.command)) }
        #expect(kind?.errors.map(\.path) == ["kind"])
        let name = #expect(throws: ValidationFailure.self) { try Manifest.parseWorkload(Self.manifest(name: "-w", spec: Self.command)) }
        #expect(name?.errors.map(\.path) == ["metadata.name"])
    }

    @Test("text that is not YAML is refused with a syntax message")
    func notYAML() {
        let failure = #expect(throws: ValidationFailure.self) { try Manifest.parseWorkload("spec: [unclosed") }
        #expect(failure?.description.contains("not valid YAML") == true)
    }

    @Test("a list at the top is refused")
    func notAMapping() {
        #expect(throws: ValidationFailure.self) { try Manifest.parseWorkload("- a\n- b\n") }
    }
}
