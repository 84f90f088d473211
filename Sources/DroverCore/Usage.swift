/// Machine usage as the agent measures it.
public struct Usage: Hashable, Codable, Sendable {
    public var cpuPercent: Double
    public var memoryUsedBytes: Int64
    public var memoryTotalBytes: Int64
    public var diskUsedBytes: Int64
    public var diskTotalBytes: Int64

    public init(cpuPercent: Double, memoryUsedBytes: Int64, memoryTotalBytes: Int64, diskUsedBytes: Int64, diskTotalBytes: Int64) {
        self.cpuPercent = cpuPercent
        self.memoryUsedBytes = memoryUsedBytes
        self.memoryTotalBytes = memoryTotalBytes
        self.diskUsedBytes = diskUsedBytes
        self.diskTotalBytes = diskTotalBytes
    }
}
