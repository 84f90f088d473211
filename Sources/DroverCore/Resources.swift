/// What a device offers or a replica asks for: CPU in millicores, memory and storage in
/// bytes (so that sums never lose precision), and named device resources (`gpu`, `serial`)
/// as counts.
public struct Resources: Hashable, Codable, Sendable {
    public var cpuMillis: Int
    public var memoryBytes: Int64
    public var storageBytes: Int64
    public var devices: [String: Int]

    public init(cpuMillis: Int = 0, memoryBytes: Int64 = 0, storageBytes: Int64 = 0, devices: [String: Int] = [:]) {
        self.cpuMillis = cpuMillis
        self.memoryBytes = memoryBytes
        self.storageBytes = storageBytes
        self.devices = devices
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        cpuMillis = try c.decodeIfPresent(Int.self, forKey: .cpuMillis) ?? 0
        memoryBytes = try c.decodeIfPresent(Int64.self, forKey: .memoryBytes) ?? 0
        storageBytes = try c.decodeIfPresent(Int64.self, forKey: .storageBytes) ?? 0
        devices = try c.decodeIfPresent([String: Int].self, forKey: .devices) ?? [:]
    }

    public static let zero = Resources()

    public static func + (lhs: Resources, rhs: Resources) -> Resources {
        Resources(
            cpuMillis: lhs.cpuMillis + rhs.cpuMillis, memoryBytes: lhs.memoryBytes + rhs.memoryBytes,
            storageBytes: lhs.storageBytes + rhs.storageBytes, devices: lhs.devices.merging(rhs.devices, uniquingKeysWith: +))
    }

    public static func - (lhs: Resources, rhs: Resources) -> Resources {
        lhs + Resources(cpuMillis: -rhs.cpuMillis, memoryBytes: -rhs.memoryBytes, storageBytes: -rhs.storageBytes, devices: rhs.devices.mapValues { -$0 })
    }

    /// True when every dimension of `request` fits into `self`.
    public func fits(_ request: Resources) -> Bool {
        request.cpuMillis <= cpuMillis && request.memoryBytes <= memoryBytes && request.storageBytes <= storageBytes
            && request.devices.allSatisfy { $0.value <= (devices[$0.key] ?? 0) }
    }
}

/// Parsing and printing of the quantities used in manifests and on the command line:
/// CPU as cores (`0.5`, `2`) or millicores (`500m`); memory as bytes with an optional
/// binary (`Ki`, `Mi`, `Gi`, `Ti`) or decimal (`k`, `M`, `G`) suffix.
public enum Quantity {
    public static func parseCPU(_ text: String) -> Int? {
        let t = text.trimmingSpaces()
        if t.hasSuffix("m") {
            guard let milli = Int(t.dropLast()), milli >= 0 else { return nil }
            return milli
        }
        guard let cores = Double(t), cores >= 0, cores.isFinite, cores <= 1_000_000 else { return nil }
        return Int((cores * 1000).rounded())
    }

    public static func parseMemory(_ text: String) -> Int64? {
        let t = text.trimmingSpaces()
        let suffixes: [(String, Int64)] = [
            ("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30), ("Ti", 1 << 40),
            ("k", 1_000), ("K", 1_000), ("M", 1_000_000), ("G", 1_000_000_000), ("T", 1_000_000_000_000),
        ]
        for (suffix, scale) in suffixes where t.hasSuffix(suffix) {
            let number = String(t.dropLast(suffix.count))
            guard let value = Double(number), value >= 0, value.isFinite else { return nil }
            let bytes = value * Double(scale)
            guard bytes < 9.0e18 else { return nil }
            return Int64(bytes.rounded())
        }
        guard let bytes = Int64(t), bytes >= 0 else { return nil }
        return bytes
    }

    /// `cpu=2,memory=1Gi` (either may be left out), as `--capacity` takes it; the error says
    /// which part is wrong.
    public static func parseCapacity(_ text: String) throws(FieldError) -> (cpu: Int?, memory: Int64?) {
        var cpu: Int?
        var memory: Int64?
        for pair in text.split(separator: ",") {
            let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
            switch (kv.first, kv.count == 2 ? kv[1] : nil) {
            case ("cpu", let v?):
                cpu = parseCPU(v)
                if cpu == nil { throw FieldError(path: "cpu", reason: "'\(v)' must be cores (2, 0.5) or millicores (500m)") }
            case ("memory", let v?):
                memory = parseMemory(v)
                if memory == nil { throw FieldError(path: "memory", reason: "'\(v)' must be bytes with an optional Ki/Mi/Gi suffix") }
            default: throw FieldError(path: "'\(pair)'", reason: "must be cpu=N or memory=N")
            }
        }
        return (cpu, memory)
    }

    public static func formatCPU(_ millis: Int) -> String {
        millis % 1000 == 0 ? String(millis / 1000) : "\(millis)m"
    }

    /// In the largest binary unit the value reaches, with one decimal when not whole.
    public static func formatMemory(_ bytes: Int64) -> String {
        let units: [(String, Int64)] = [("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)]
        guard let (unit, scale) = units.first(where: { bytes >= $0.1 }) else { return String(bytes) }
        if bytes % scale == 0 { return "\(bytes / scale)\(unit)" }
        // Whole units and rounded tenths computed apart: `bytes * 10` would overflow near Int64.max.
        var whole = bytes / scale
        var tenth = ((bytes % scale) * 10 + scale / 2) / scale
        if tenth == 10 { (whole, tenth) = (whole + 1, 0) }
        return "\(whole).\(tenth)\(unit)"
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
