import DroverCore

/// Picks one device by a single scan of the candidates, with the same rules and tie-breaks as
/// `DevicePicker`. Building heaps costs a pass over every candidate anyway, so for a workload
/// missing only a few replicas (the usual incremental case) one scan per replica is cheaper.
struct LinearPick {
    var device: Int32?
    var skewBlocked: SpreadConstraint?
    /// Spread only: global domain index → local (candidate domains in name order), or -1.
    private var localOf: [Int32] = []
    private var global: [Int32] = []
    private var counts: [Int] = []
    private let maxSkew: Int

    init(workload w: Int, candidates: [Int32], state: PlanState) {
        let spec = state.workloads[w]
        maxSkew = spec.spread?.maxSkew ?? 0
        var domainsUsed = 1
        if let spread = spec.spread, let index = state.domains[spread.labelKey] {
            global = index.ofDevice
            localOf = Array(repeating: -1, count: index.names.count)
            for c in candidates where global[Int(c)] >= 0 { localOf[Int(global[Int(c)])] = 0 }
            var next: Int32 = 0
            for g in localOf.indices where localOf[g] >= 0 {
                localOf[g] = next
                next += 1
            }
            domainsUsed = Int(next)
            counts = Array(repeating: 0, count: domainsUsed)
            for (d, n) in state.hosts[w] where n > 0 {
                let g = Int(global[Int(d)])
                if g >= 0, localOf[g] >= 0 { counts[Int(localOf[g])] += n }
            }
        }
        var best = Array(repeating: (score: -Double.infinity, device: Int32(-1)), count: domainsUsed)
        // Devices already at maxPerDevice, as a flat array: no hashing in the scan below.
        var full = [Bool](repeating: false, count: state.devices.count)
        for (d, n) in state.hosts[w] where n >= spec.maxPerDevice { full[Int(d)] = true }
        for c in candidates {
            let k = spec.spread == nil ? 0 : local(c)
            guard k >= 0, !full[Int(c)], state.fits(Int(c), spec.resources) else { continue }
            let score = state.score(spec, Int(c))
            if score > best[k].score || (score == best[k].score && c < best[k].device) { best[k] = (score, c) }
        }
        guard spec.spread != nil else {
            device = best[0].device >= 0 ? best[0].device : nil
            return
        }
        guard let minimum = counts.min() else { return }
        var chosen: Int?
        for k in best.indices where best[k].device >= 0 {
            if let c = chosen, counts[c] <= counts[k] { continue }
            chosen = k
        }
        guard let chosen else { return }
        guard counts[chosen] + 1 - minimum <= maxSkew else {
            skewBlocked = spec.spread
            return
        }
        device = best[chosen].device
    }

    private func local(_ d: Int32) -> Int {
        let g = Int(global[Int(d)])
        return g >= 0 ? Int(localOf[g]) : -1
    }

    /// Whether one more replica on device `d` keeps the spread within maxSkew.
    func spreadAllows(_ d: Int32) -> Bool {
        guard !counts.isEmpty else { return true }
        let k = local(d)
        guard k >= 0, let minimum = counts.min() else { return false }
        return counts[k] + 1 - minimum <= maxSkew
    }
}
