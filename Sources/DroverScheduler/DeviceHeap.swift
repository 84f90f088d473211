/// A max-heap of devices by score, ties to the lower device index, with lazy invalidation:
/// a device whose score changed is pushed again and stale entries are skipped on pop.
struct DeviceHeap {
    struct Entry {
        var score: Double
        var device: Int32
        var version: Int32
    }

    private(set) var entries: [Entry] = []

    init(capacity: Int = 0) { entries.reserveCapacity(capacity) }

    var isEmpty: Bool { entries.isEmpty }

    @inline(__always)
    private static func above(_ a: Entry, _ b: Entry) -> Bool {
        a.score != b.score ? a.score > b.score : a.device < b.device
    }

    mutating func push(_ e: Entry) {
        entries.append(e)
        var i = entries.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard Self.above(entries[i], entries[parent]) else { break }
            entries.swapAt(i, parent)
            i = parent
        }
    }

    /// Builds a heap from unordered entries in O(n).
    mutating func build(_ items: [Entry]) {
        entries = items
        var i = entries.count / 2 - 1
        while i >= 0 {
            siftDown(i)
            i -= 1
        }
    }

    var top: Entry? { entries.first }

    mutating func pop() -> Entry? {
        guard let first = entries.first else { return nil }
        let last = entries.removeLast()
        if !entries.isEmpty {
            entries[0] = last
            siftDown(0)
        }
        return first
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        let n = entries.count
        while true {
            let l = 2 * i + 1
            let r = l + 1
            var best = i
            if l < n, Self.above(entries[l], entries[best]) { best = l }
            if r < n, Self.above(entries[r], entries[best]) { best = r }
            if best == i { return }
            entries.swapAt(i, best)
            i = best
        }
    }
}
