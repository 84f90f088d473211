/// Replica ids in increasing order, each once: the replicas placed on one device. Kept in
/// order, a device's desired state is walked beside them without sorting them first
/// (`updateDesired`); sorting every touched device's ids was a tenth of a large change.
struct SortedIDs: RandomAccessCollection, ExpressibleByArrayLiteral, Equatable, Sendable {
    private(set) var ids: [String] = []

    init() {}

    init(arrayLiteral ids: String...) { self.init(ids) }

    /// `ids` in order, repeats dropped.
    init(_ ids: some Sequence<String>) {
        var sorted = ids.sorted()
        var kept = 0
        for i in sorted.indices where kept == 0 || sorted[i] != sorted[kept - 1] {
            sorted.swapAt(kept, i)
            kept += 1
        }
        sorted.removeLast(sorted.count - kept)
        self.ids = sorted
    }

    var startIndex: Int { ids.startIndex }
    var endIndex: Int { ids.endIndex }
    subscript(position: Int) -> String { ids[position] }

    /// Where `id` is, or where it would go.
    private func place(of id: String) -> (at: Int, found: Bool) {
        var (low, high) = (0, ids.count)
        while low < high {
            let mid = (low + high) / 2
            if ids[mid] < id { low = mid + 1 } else { high = mid }
        }
        return (low, low < ids.count && ids[low] == id)
    }

    func contains(_ id: String) -> Bool { place(of: id).found }

    /// Adds `id`; false when it was there.
    @discardableResult
    mutating func insert(_ id: String) -> Bool {
        let (at, found) = place(of: id)
        if !found { ids.insert(id, at: at) }
        return !found
    }

    /// Takes `id` out; nil when it was not there.
    @discardableResult
    mutating func remove(_ id: String) -> String? {
        let (at, found) = place(of: id)
        return found ? ids.remove(at: at) : nil
    }

    /// The ids, already in order.
    func sorted() -> [String] { ids }
}
