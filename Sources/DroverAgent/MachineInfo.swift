#if canImport(Glibc)
import Glibc
#endif
import DroverCore
import DroverProtocol

/// Facts and usage read from the machine the agent runs on.
enum MachineInfo {
    static func arch() -> String {
        var u = utsname()
        uname(&u)
        let machine = withUnsafeBytes(of: u.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        switch machine {
        case "x86_64": return "amd64"
        case "aarch64": return "arm64"
        case "armv7l": return "arm"
        default: return machine
        }
    }

    static func os() -> String {
        let release = POSIX.readFile("/etc/os-release") ?? ""
        for line in release.split(separator: "\n") where line.hasPrefix("PRETTY_NAME=") {
            return String(line.dropFirst("PRETTY_NAME=".count).filter { $0 != "\"" })
        }
        return "Linux"
    }

    static func bootID() -> String {
        (POSIX.readFile("/proc/sys/kernel/random/boot_id") ?? "unknown").filter { !$0.isWhitespace }
    }

    static func cpuMillis() -> Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) * 1000 }

    /// This process's resident memory (`VmRSS` of /proc/self/status), in bytes.
    static func residentBytes() -> Int64? {
        let line = (POSIX.readFile("/proc/self/status") ?? "").split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
        return line.flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Int64($0) }.map { $0 * 1024 }
    }

    /// `MemTotal` and `MemAvailable` from /proc/meminfo, in bytes.
    static func memory() -> (total: Int64, available: Int64) {
        var total: Int64 = 0
        var available: Int64 = 0
        for line in (POSIX.readFile("/proc/meminfo") ?? "").split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count >= 2, let kib = Int64(parts[1]) else { continue }
            if parts[0] == "MemTotal:" { total = kib * 1024 }
            if parts[0] == "MemAvailable:" { available = kib * 1024 }
        }
        return (total, available)
    }

    static func disk(_ path: String) -> (total: Int64, used: Int64) {
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { return (0, 0) }
        let total = Int64(s.f_blocks) * Int64(s.f_frsize)
        let free = Int64(s.f_bfree) * Int64(s.f_frsize)
        return (total, total - free)
    }
}

/// Machine CPU usage between two samples of /proc/stat.
struct CPUSampler {
    private var last: (busy: Int64, total: Int64)?

    mutating func percent() -> Double {
        guard let line = POSIX.readFile("/proc/stat")?.split(separator: "\n").first, line.hasPrefix("cpu ") else { return 0 }
        let values = line.split(separator: " ").dropFirst().compactMap { Int64($0) }
        guard values.count >= 5 else { return 0 }
        let idle = values[3] + values[4]
        let total = values.reduce(0, +)
        defer { last = (total - idle, total) }
        guard let last, total > last.total else { return 0 }
        let busy = Double((total - idle) - last.busy) / Double(total - last.total) * 100
        return min(max(busy, 0), 100)
    }
}

extension Usage {
    static func sample(cpu: inout CPUSampler, dataDir: String) -> Usage {
        let memory = MachineInfo.memory()
        let disk = MachineInfo.disk(dataDir)
        return Usage(
            cpuPercent: cpu.percent(), memoryUsedBytes: memory.total - memory.available, memoryTotalBytes: memory.total,
            diskUsedBytes: disk.used, diskTotalBytes: disk.total)
    }
}
