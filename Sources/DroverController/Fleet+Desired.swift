import DroverCore
import DroverStore

/// A stamp per workload that changes whenever its record does (its template, revisions,
/// rollout), so that a replica spec made from the record can be reused while it holds.
/// Each workload has a slot, so that whether a spec's stamp is still its workload's is an
/// array lookup, not a lookup by name for every replica of every touched device: those were
/// a third of the time a large change spent on desired state.
struct WorkloadStamps {
    private var slots: [String: Int] = [:]
    /// By slot: its workload's name and record as last seen (nil when free), its stamp, and
    /// the check it was last looked at in.
    private var names: [String?] = []
    private var records: [WorkloadRecord?] = []
    private var current: [Int] = []
    private var checkedIn: [Int] = []
    private var free: [Int] = []
    private var last = 0
    /// One check of a change's specs (`begin`): each workload's record is compared once in it.
    private var check = 0
    /// The workload asked for last (replicas of one workload come in runs).
    private var lastAsked: (name: String, slot: Int)?

    /// Starts a check against `workloads`: their records may have changed since the last one.
    mutating func begin(_ workloads: [String: WorkloadRecord]) {
        check += 1
        // Workloads that are gone give their slots back (each is looked at lazily otherwise).
        if slots.count > workloads.count {
            for (name, slot) in slots where workloads[name] == nil { release(name, slot) }
        }
    }

    /// The stamp and slot of workload `name` as it is now; nil when it is gone.
    mutating func stamp(of name: String, _ workloads: [String: WorkloadRecord]) -> SpecMade.Stamp? {
        let known = lastAsked.flatMap { $0.name == name ? $0.slot : nil } ?? slots[name]
        if let slot = known, checkedIn[slot] == check {
            lastAsked = (name, slot)
            return current[slot] == 0 ? nil : SpecMade.Stamp(stamp: current[slot], slot: slot)
        }
        guard let record = workloads[name] else {
            if let slot = known { release(name, slot) }
            return nil
        }
        let slot: Int
        if let known {
            slot = known
            if records[slot] != record {
                last += 1
                records[slot] = record
                current[slot] = last
            }
        } else {
            last += 1
            if let reused = free.popLast() {
                slot = reused
                names[slot] = name
                records[slot] = record
                current[slot] = last
            } else {
                slot = names.count
                names.append(name)
                records.append(record)
                current.append(last)
                checkedIn.append(check)
            }
            slots[name] = slot
        }
        checkedIn[slot] = check
        lastAsked = (name, slot)
        return SpecMade.Stamp(stamp: current[slot], slot: slot)
    }

    /// Whether a spec made under `made` is still what its workload's record gives.
    mutating func holds(_ made: SpecMade.Stamp, _ workloads: [String: WorkloadRecord]) -> Bool {
        guard made.stamp != 0, made.slot < names.count else { return false }
        if checkedIn[made.slot] != check {
            guard let name = names[made.slot], let now = stamp(of: name, workloads) else { return false }
            return now == made
        }
        return current[made.slot] == made.stamp
    }

    private mutating func release(_ name: String, _ slot: Int) {
        slots[name] = nil
        names[slot] = nil
        records[slot] = nil
        // Stamps are never given twice: a spec made under the old workload never matches.
        current[slot] = 0
        checkedIn[slot] = check
        free.append(slot)
        lastAsked = nil
    }
}

/// How a desired spec was made: its workload's stamp then, and its hash.
struct SpecMade: Hashable {
    /// A workload's stamp and the slot it is kept in (`WorkloadStamps`); stamp 0 is none.
    struct Stamp: Hashable {
        var stamp: Int
        var slot: Int
    }

    var stamp: Stamp
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
    mutating func updateDesired(of id: String, _ specs: ReplicaSpecs) -> DesiredWrite? {
        let wanted = replicasOn[id]?.ids ?? []
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
        let none = SpecMade(stamp: SpecMade.Stamp(stamp: 0, slot: 0), hash: 0)
        if made.count != list.count { made = Array(repeating: none, count: list.count) }
        var removed: [Int] = []
        var inserts: [(at: Int, spec: ReplicaSpec, made: SpecMade)] = []
        var upserted = 0
        // One walk of both in id order (every record here and from the store holds its
        // replicas in strictly increasing id order, as `replicasOn` holds ids).
        var (i, j) = (0, 0)
        while i < wanted.count || j < list.count {
            if i == wanted.count || (j < list.count && list[j].id < wanted[i]) {
                removed.append(j)
                j += 1
            } else if j == list.count || wanted[i] < list[j].id {
                // New here.
                if let workload = replicas[wanted[i]]?.workload, let stamp = workloadStamps.stamp(of: workload, workloads), let (spec, hash) = specs.made(wanted[i], workload) {
                    upserted += 1
                    inserts.append((j, spec, SpecMade(stamp: stamp, hash: hash)))
                }
                i += 1
            } else {
                // Kept: as it is while its workload's stamp holds, else made again.
                if !workloadStamps.holds(made[j].stamp, workloads) {
                    if let stamp = workloadStamps.stamp(of: list[j].workload, workloads), let (spec, hash) = specs.made(wanted[i], list[j].workload) {
                        if spec != list[j] {
                            upserted += 1
                            list[j] = spec
                        }
                        made[j] = SpecMade(stamp: stamp, hash: hash)
                    } else {
                        removed.append(j)
                    }
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
        workloadStamps.begin(workloads)
        for id in Set(replicasOn.keys).union(headers.keys).sorted() {
            // From nothing: every spec is made, with its hash.
            _ = updateDesired(of: id, specs)
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

}
