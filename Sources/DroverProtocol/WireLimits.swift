import DroverCore

/// The documented range of every number and the size of every list or text a device may
/// send (`Sources/DroverProtocol/README.md` lists them per message). A value outside its
/// range drops the whole message as `invalidField`: whatever a device sends, no arithmetic on
/// it can overflow later.
public enum WireLimits {
    /// Generations and report sequence numbers: 2^53, exact in every JSON parser.
    public static let maxCounter: Int64 = 1 << 53
    /// 10,000 cores, in millicores.
    public static let maxCPUMillis = 10_000_000
    /// 1 PiB of memory.
    public static let maxMemoryBytes: Int64 = 1 << 50
    /// 1 EiB of storage or disk.
    public static let maxStorageBytes: Int64 = 1 << 60
    /// Count of one named device resource (`gpu: 2`).
    public static let maxDeviceResourceCount = 1_000_000
    public static let maxDeviceResourceKinds = 32
    public static let maxLabels = 64
    public static let maxRuntimes = 8
    /// Names in a hello's `facts.encodings`, known or not.
    public static let maxEncodings = 8
    /// Replicas in one report or one desired state, and entries of per-replica maps in a beat.
    public static let maxReplicas = 10_000
    /// Wall-clock milliseconds since the epoch, up to the end of year 9999.
    public static let timeRange: ClosedRange<Int64> = 0...253_402_300_799_999
    /// Machine-wide CPU use in percent.
    public static let cpuPercentRange: ClosedRange<Double> = 0...100
    /// `hello.beatEvery`: 1 s to a day, in milliseconds.
    public static let beatEveryRange: ClosedRange<Int64> = 1_000...86_400_000
    /// `beat.rtt`: up to 10 minutes, in milliseconds.
    public static let rttRange: ClosedRange<Double> = 0...600_000
    public static let exitCodeRange: ClosedRange<Int32> = 0...255
    public static let maxRestarts = Int(Int32.max)
    public static let maxShortText = 64
    public static let maxOSText = 128
    public static let maxMessageText = 1024
}

/// Collects field errors with their paths, so that a message is checked whole.
struct FieldChecker {
    var errors: [FieldError] = []

    // Paths are autoclosures: a path like `replicas[12].generation` is made only for a field
    // that fails, not for every field of every message (the interpolations cost a beat 40 %
    // of its check).

    mutating func range<T: Comparable>(_ path: @autoclosure () -> String, _ value: T, _ range: ClosedRange<T>) {
        if !range.contains(value) { errors.append(FieldError(path: path(), reason: "must be between \(range.lowerBound) and \(range.upperBound)")) }
    }

    mutating func text(_ path: @autoclosure () -> String, _ value: String, max: Int, empty: Bool = true) {
        if value.utf8.count > max { errors.append(FieldError(path: path(), reason: "must be at most \(max) bytes")) }
        if !empty, value.isEmpty { errors.append(FieldError(path: path(), reason: "must not be empty")) }
    }

    mutating func count(_ path: @autoclosure () -> String, _ count: Int, max: Int) {
        if count > max { errors.append(FieldError(path: path(), reason: "must have at most \(max) entries")) }
    }

    mutating func require(_ ok: Bool, _ path: @autoclosure () -> String, _ reason: @autoclosure () -> String) {
        if !ok { errors.append(FieldError(path: path(), reason: reason())) }
    }

    mutating func resources(_ path: @autoclosure () -> String, _ r: Resources) {
        range(path() + ".cpuMillis", r.cpuMillis, 0...WireLimits.maxCPUMillis)
        range(path() + ".memoryBytes", r.memoryBytes, 0...WireLimits.maxMemoryBytes)
        range(path() + ".storageBytes", r.storageBytes, 0...WireLimits.maxStorageBytes)
        count(path() + ".devices", r.devices.count, max: WireLimits.maxDeviceResourceKinds)
        for (key, value) in r.devices.sorted(by: { $0.key < $1.key }) {
            require(Names.isValidLabelKey(key), "\(path()).devices.\(key.prefix(64))", "is not a valid resource name")
            range("\(path()).devices.\(key.prefix(64))", value, 0...WireLimits.maxDeviceResourceCount)
        }
    }

    mutating func labels(_ path: @autoclosure () -> String, _ labels: [String: String]) {
        count(path(), labels.count, max: WireLimits.maxLabels)
        guard labels.count <= WireLimits.maxLabels else { return }
        for (key, value) in labels.sorted(by: { $0.key < $1.key }) {
            require(Names.isValidLabelKey(key), "\(path()).\(key.prefix(64))", "is not a valid label key")
            require(Names.isValidLabelValue(value), "\(path()).\(key.prefix(64))", "is not a valid label value")
        }
    }
}

extension String {
    /// At most `maxBytes` of UTF-8, cut at a character boundary.
    public func truncatedUTF8(maxBytes: Int) -> String {
        guard utf8.count > maxBytes else { return self }
        var result = ""
        var bytes = 0
        for character in self {
            let size = character.utf8.count
            guard bytes + size <= maxBytes else { break }
            result.append(character)
            bytes += size
        }
        return result
    }
}
