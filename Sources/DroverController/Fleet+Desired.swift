import DroverCore
import DroverStore

/// A stamp per workload that changes whenever its record does (its template, revisions,
/// rollout), so that a replica spec made from the record can be reused while it holds.
struct WorkloadStamps {
    private var seen: [String: (record: WorkloadRecord, stamp: Int)] = [:]
    private var last = 0

    /// The stamp of `record`: the one it had, or a new one when it differs from the record
    /// last seen under its name. (Comparing an unchanged record is cheap: its arrays and
    /// dictionaries share their storage, which `==` checks first.)
    mutating func stamp(_ record: WorkloadRecord) -> Int {
        if let known = seen[record.spec.name], known.record == record { return known.stamp }
        last += 1
        seen[record.spec.name] = (record, last)
        return last
    }

    /// Forgets workloads that are gone.
    mutating func keep(only names: some Collection<String>) {
        guard seen.count > names.count else { return }
        let kept = Set(names)
        seen = seen.filter { kept.contains($0.key) }
    }
}

/// How a desired spec was made: its workload's stamp then, and its hash.
struct SpecMade: Hashable {
    var stamp: Int
    var hash: UInt64
}

extension FleetState {
    /// Brings device `id`'s desired state to what its rows give: its replicas in id order,
    /// the generation one up when anything changed; the write, or nil when nothing did.
    ///
    /// The list is changed in place, and a spec whose workload's stamp is what it was when the
    /// spec was made is left as it is: only the others are made (and compared). Making and
    /// comparing every spec of every device a change touched took a new 5,000-replica
    /// workload 20–125 ms at 10,000 devices, growing with the fleet.
    /// (`stamps`: the stamps met so far in this change, nil for a workload that is gone.)
    mutating func updateDesired(of id: String, _ specs: ReplicaSpecs, _ stamps: inout [String: Int?]) -> DesiredWrite? {
        let wanted = (replicasOn[id] ?? []).sorted()
        // Taken out, so that the arrays change in place (no copy).
        // (Swapped out where they are: a removal and insertion again in dictionaries of
        // 10,000 devices cost a tenth of a large change.)
        let at = desired.index(forKey: id)
        var list: [ReplicaSpec] = []
        var previous: DesiredRecord?
        if let at {
            swap(&list, &desired.values[at].replicas)
            previous = desired.values[at]
        }
        let madeAt = desiredStamps.index(forKey: id)
        var made: [SpecMade] = []
        if let madeAt { swap(&made, &desiredStamps.values[madeAt]) }
        if made.count != list.count { made = Array(repeating: SpecMade(stamp: 0, hash: 0), count: list.count) }
        var removed: [Int] = []
        var inserts: [(at: Int, spec: ReplicaSpec, made: SpecMade)] = []
        var upserted = 0
        // One walk of both in id order (every record here and from the store holds its
        // replicas in strictly increasing id order). Replicas of one workload sort together,
        // so the last workload's stamp is kept at hand.
        var last: (workload: String, stamp: Int?)?
        func stamp(_ workload: String, _ state: inout FleetState) -> Int? {
            if let last, last.workload == workload { return last.stamp }
            let stamp = state.stamp(of: workload, &stamps)
            last = (workload, stamp)
            return stamp
        }
        var (i, j) = (0, 0)
        while i < wanted.count || j < list.count {
            if i == wanted.count || (j < list.count && list[j].id < wanted[i]) {
                removed.append(j)
                j += 1
            } else if j == list.count || wanted[i] < list[j].id {
                // New here.
                if let workload = replicas[wanted[i]]?.workload, let stamp = stamp(workload, &self), let (spec, hash) = specs.made(wanted[i], workload) {
                    upserted += 1
                    inserts.append((j, spec, SpecMade(stamp: stamp, hash: hash)))
                }
                i += 1
            } else {
                // Kept: as it is while its workload's stamp holds, else made again.
                if let stamp = stamp(list[j].workload, &self) {
                    if made[j].stamp != stamp, let (spec, hash) = specs.made(wanted[i], list[j].workload) {
                        if spec != list[j] {
                            upserted += 1
                            list[j] = spec
                        }
                        made[j] = SpecMade(stamp: stamp, hash: hash)
                    }
                } else {
                    removed.append(j)
                }
                i += 1
                j += 1
            }
        }
        let removedIDs = removed.map { list[$0].id }
        if removed.count + inserts.count > 8 {
            (list, made) = Self.merge(list, made, removing: removed, inserting: inserts)
        } else if !removed.isEmpty || !inserts.isEmpty {
            // From the end: a removal at a place before the insertions there.
            var (r, k) = (removed.count - 1, inserts.count - 1)
            while r >= 0 || k >= 0 {
                if r >= 0, k < 0 || removed[r] >= inserts[k].at {
                    list.remove(at: removed[r])
                    made.remove(at: removed[r])
                    r -= 1
                } else {
                    list.insert(inserts[k].spec, at: inserts[k].at)
                    made.insert(inserts[k].made, at: inserts[k].at)
                    k -= 1
                }
            }
        }
        guard previous != nil || !list.isEmpty else { return nil }
        let digest = ReplicaSpecs.digest(made.lazy.map(\.hash))
        let changed = previous == nil || upserted > 0 || !removedIDs.isEmpty || previous?.digest != digest
        // Generation never decreases: a stale retained message must not resurrect a replica.
        let record = DesiredRecord(device: id, generation: (previous?.generation ?? 0) + (changed ? 1 : 0), replicas: list, digest: digest)
        if let at { desired.values[at] = record } else { desired[id] = record }
        if let madeAt { desiredStamps.values[madeAt] = made } else { desiredStamps[id] = made }
        return changed ? DesiredWrite(record) : nil
    }

    /// `list` without the elements at `removing` (ascending), with `inserting` (each before
    /// the element at its index, in order) merged in.
    private static func merge(_ list: [ReplicaSpec], _ made: [SpecMade], removing: [Int], inserting: [(at: Int, spec: ReplicaSpec, made: SpecMade)])
        -> ([ReplicaSpec], [SpecMade]) {
        var specs: [ReplicaSpec] = []
        var stamps: [SpecMade] = []
        specs.reserveCapacity(list.count + inserting.count)
        stamps.reserveCapacity(list.count + inserting.count)
        var (k, r) = (0, 0)
        for i in 0...list.count {
            while k < inserting.count, inserting[k].at == i {
                specs.append(inserting[k].spec)
                stamps.append(inserting[k].made)
                k += 1
            }
            if r < removing.count, removing[r] == i {
                r += 1
            } else if i < list.count {
                specs.append(list[i])
                stamps.append(made[i])
            }
        }
        return (specs, stamps)
    }

    /// Every device's desired state made afresh from the rows, at a load: the store keeps only
    /// each device's generation and digest (`DesiredWrite`). A device whose replicas are not
    /// what its digest says (rows from before the digest, or specs this build makes otherwise)
    /// gets a new generation; those are returned, to be written before anything is sent.
    mutating func makeDesired(stored: [DesiredRecord]) -> StoreBatch {
        let headers = Dictionary(stored.map { ($0.device, $0) }, uniquingKeysWith: { a, _ in a })
        desired = [:]
        desiredStamps = [:]
        var batch = StoreBatch()
        let specs = ReplicaSpecs(workloads)
        var stamps: [String: Int?] = [:]
        for id in Set(replicasOn.keys).union(headers.keys).sorted() {
            // From nothing: every spec is made, with its hash.
            _ = updateDesired(of: id, specs, &stamps)
            var record = desired[id] ?? DesiredRecord(device: id, generation: 0, replicas: [], digest: ReplicaSpecs.digest([]))
            if let header = headers[id], header.digest == record.digest {
                record.generation = header.generation
            } else {
                record.generation = (headers[id]?.generation ?? 0) + 1
                batch.desired.append(DesiredWrite(record))
            }
            desired[id] = record
        }
        return batch
    }

    private mutating func stamp(of workload: String, _ stamps: inout [String: Int?]) -> Int? {
        if let known = stamps[workload] { return known }
        let stamp = workloads[workload].map { workloadStamps.stamp($0) }
        stamps[workload] = stamp
        if stamps.count == 1 { workloadStamps.keep(only: workloads.keys) }
        return stamp
    }
}
