import DroverCore
import DroverJSON

/// Replica rows as JSON, byte for byte what `JSON.encodeText` writes (sorted keys, absent
/// optionals left out), without `Codable`'s generic encoder: a large change writes thousands
/// of rows, and the generic encoder was half of the store's CPU in them (`perf`).
enum RowJSON {
    static func encode(_ r: ReplicaRow) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(160 + r.id.utf8.count + r.workload.utf8.count + r.device.utf8.count + (r.message?.utf8.count ?? 0))
        out += #"{"device":"#.utf8
        JSONWriter.string(r.device, into: &out)
        if let code = r.exitCode { number("exitCode", Int64(code), into: &out) }
        out += #","id":"#.utf8
        JSONWriter.string(r.id, into: &out)
        if let message = r.message {
            out += #","message":"#.utf8
            JSONWriter.string(message, into: &out)
        }
        number("ordinal", Int64(r.ordinal), into: &out)
        out += #","phase":"#.utf8
        JSONWriter.string(r.phase.rawValue, into: &out)
        if let pid = r.pid { number("pid", Int64(pid), into: &out) }
        if let ready = r.ready { out += (ready ? #","ready":true"# : #","ready":false"#).utf8 }
        number("restarts", Int64(r.restarts), into: &out)
        if let revision = r.revision { number("revision", Int64(revision), into: &out) }
        number("updatedAt", r.updatedAt, into: &out)
        out += #","workload":"#.utf8
        JSONWriter.string(r.workload, into: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    private static func number(_ key: StaticString, _ value: Int64, into out: inout [UInt8]) {
        out += #",""#.utf8
        key.withUTF8Buffer { out += $0 }
        out += #"":"#.utf8
        out += String(value).utf8
    }
}
