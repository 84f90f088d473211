import DroverCore

extension PlanState {
    /// Adds a device the plan has not seen, at its place in id order, and renumbers every
    /// structure indexed by device. Integer work over the replicas and the candidate lists,
    /// far cheaper than a full plan; afterwards the state is exactly what a full plan over the
    /// larger fleet would have built. Returns the new device's index.
    mutating func insert(device d: DeviceSnapshot) -> Int32 {
        // (Binary search on the records themselves: mapping 100,000 ids first cost milliseconds a join.)
        var (low, high) = (0, devices.count)
        while low < high {
            let mid = (low + high) / 2
            if devices[mid].id < d.id { low = mid + 1 } else { high = mid }
        }
        let at = low
        let index = Int32(at)
        @inline(__always) func shifted(_ i: Int32) -> Int32 { i >= index ? i + 1 : i }

        devices.insert(d, at: at)
        for k in deviceIndex.values.indices where deviceIndex.values[k] >= index { deviceIndex.values[k] += 1 }
        deviceIndex[d.id] = index
        free.insert(d.capacity, at: at)
        connectivityScore.insert(Self.connectivityScore(d), at: at)
        capacityCPU.insert(d.capacity.cpuMillis, at: at)
        capacityMemory.insert(d.capacity.memoryBytes, at: at)
        onDevice.insert([], at: at)
        placedDevice.shift(from: index)
        for w in hosts.indices where hosts[w].keys.contains(where: { $0 >= index }) {
            hosts[w] = Dictionary(uniqueKeysWithValues: hosts[w].map { (shifted($0.key), $0.value) })
        }
        for key in Array(domains.keys) { domains[key]?.ofDevice.insert(-1, at: at) }
        indexDomains(of: at)
        return index
    }
}

extension [Int32] {
    /// Device indices after a device was inserted at `index`.
    mutating func shift(from index: Int32) {
        for k in indices where self[k] >= index { self[k] += 1 }
    }
}
