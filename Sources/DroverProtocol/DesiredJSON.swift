import DroverCore
import DroverJSON
import Synchronization

/// A device's desired state as JSON, byte for byte what `JSONEncoder` with sorted keys writes,
/// for a fraction of the cost: the replicas of one workload revision differ only in their
/// id, so each distinct spec without its id (a template) is encoded once, kept, and the id
/// spliced in. A change to one workload re-sends the whole desired state of every device
/// it touches, most of it other workloads' replicas (the store keeps it, the wire carries
/// it); encoding every spec of it again took most of the controller's time in large applies.
public enum DesiredJSON {
    /// `version`: the wire message (`Desired`, with `v`); nil: the record's own JSON (`DesiredRecord`).
    public static func encode(device: String, generation: Int64, replicas: [ReplicaSpec], version: Int?) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64 + replicas.count * 512)
        out += Array(#"{"device":"#.utf8)
        string(device, into: &out)
        out += Array(#","generation":\#(generation),"replicas":["#.utf8)
        for (k, replica) in replicas.enumerated() {
            if k > 0 { out.append(0x2C) }
            spec(replica, into: &out)
        }
        out.append(0x5D)
        if let version { out += Array(#","v":\#(version)"#.utf8) }
        out.append(0x7D)
        return out
    }

    /// The stored row of a device's desired state: its generation and the digest of its
    /// replicas (which the controller makes again from its replica rows).
    public static func header(device: String, generation: Int64, digest: UInt64?) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(device.utf8.count + 96)
        out.append(contentsOf: #"{"device":"#.utf8)
        string(device, into: &out)
        if let digest {
            out.append(contentsOf: #","digest":""#.utf8)
            hex(digest, into: &out)
            out.append(0x22)
        }
        out.append(contentsOf: #","generation":"#.utf8)
        out.append(contentsOf: String(generation).utf8)
        out.append(contentsOf: #","replicas":[]}"#.utf8)
        return out
    }

    /// 16 lowercase hexadecimal digits.
    public static func hex(_ value: UInt64) -> String {
        var out: [UInt8] = []
        hex(value, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    static func hex(_ value: UInt64, into out: inout [UInt8]) {
        for shift in stride(from: 60, through: 0, by: -4) {
            let nibble = UInt8(truncatingIfNeeded: value >> UInt64(shift)) & 0xF
            out.append(nibble < 10 ? 0x30 + nibble : 0x57 + nibble)
        }
    }

    /// FNV-1a 64 of `bytes`, going on from `hash` (also the replica digest's, `ReplicaDigest`).
    public static func fnv(_ bytes: some Sequence<UInt8>, from hash: UInt64 = 0xcbf2_9ce4_8422_2325) -> UInt64 {
        var hash = hash
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }

    /// One replica's spec as JSON.
    public static func encode(replica: ReplicaSpec) -> [UInt8] {
        var out: [UInt8] = []
        spec(replica, into: &out)
        return out
    }

    /// JSON of one string, as JSONEncoder writes it: names are written as they are; anything
    /// else goes through JSONEncoder (escapes, `\/`, non-ASCII).
    static func string(_ s: String, into out: inout [UInt8]) {
        let plain = s.utf8.allSatisfy { c in (0x30...0x39).contains(c) || (0x41...0x5A).contains(c) || (0x61...0x7A).contains(c) || c == 0x2D || c == 0x2E || c == 0x5F }
        if plain {
            out.append(0x22)
            out += s.utf8
            out.append(0x22)
        } else {
            out += encoded(s)
        }
    }

    static func encoded<T: Encodable>(_ value: T) -> [UInt8] {
        // Our own value types hold only strings, numbers and collections of them.
        (try? JSON.encode(value)) ?? []
    }

    /// Per template (a spec whose id is the marker): its JSON before and after the id, and
    /// the bytes kept in all. Swift compares strings by Unicode equivalence, not bytes: a
    /// workload deleted and made again with the same text in another normal form would find
    /// the old bytes, so a deletion forgets its workload's templates (`forget`); while a
    /// workload lives, a spec equal to its own is never applied anew.
    private static let templates = Mutex<(cache: [ReplicaSpec: (before: [UInt8], after: [UInt8])], bytes: Int)>(([:], 0))
    /// Bounds on what is kept: the cache starts afresh past either.
    static let templatesKept = 4096
    static let bytesKept = 32 << 20

    /// Drops the templates of workload `name` (deleted).
    public static func forget(workload name: String) {
        templates.withLock { kept in
            kept.cache = kept.cache.filter { $0.key.workload != name }
            kept.bytes = kept.cache.values.reduce(0) { $0 + $1.before.count + $1.after.count }
        }
    }
    private static let marker = "\u{1}"
    private static let markedID = Array(#""id":"\u0001""#.utf8)

    static func spec(_ replica: ReplicaSpec, into out: inout [UInt8]) {
        var template = replica
        template.id = marker
        if let known = templates.withLock({ $0.cache[template] }) {
            out += known.before
            string(replica.id, into: &out)
            out += known.after
            return
        }
        let bytes = encoded(template)
        // The marker once, as the spec's own id (an env value could hold it too): else no template.
        guard let at = bytes.firstOccurrence(of: markedID), bytes[at.upperBound...].firstOccurrence(of: markedID) == nil else {
            out += encoded(replica)
            return
        }
        let split = (before: Array(bytes[..<(at.lowerBound + 5)]), after: Array(bytes[(at.upperBound)...]))
        templates.withLock { kept in
            let size = split.before.count + split.after.count
            if kept.cache.count >= templatesKept || kept.bytes + size > bytesKept { kept = ([:], 0) }
            kept.cache[template] = split
            kept.bytes += size
        }
        out += split.before
        string(replica.id, into: &out)
        out += split.after
    }
}

extension DesiredJSON {
    /// Templates kept now (for tests).
    static var templateCount: Int { templates.withLock { $0.cache.count } }
}
