import Foundation
import Yams

/// Table, JSON and YAML output, from the API's JSON answer.
enum Output {
    static func print(_ data: Data, format: OutputFormat, table: () -> [[String]]) {
        switch format {
        case .json:
            Swift.print(String(decoding: data, as: UTF8.self))
        case .yaml:
            guard let value = try? JSONDecoder().decode(JSONValue.self, from: data),
                let text = try? Yams.serialize(node: value.node)
            else { fail("cannot render the answer as YAML") }
            Swift.print(text, terminator: "")
        case .table:
            Swift.print(render(table()), terminator: "")
        }
    }

    /// Aligned columns, the first row a header, two spaces between columns.
    static func render(_ rows: [[String]]) -> String {
        guard let header = rows.first else { return "" }
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
        return rows.map { row in
            row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }

    static func age(_ millis: Int64) -> String {
        let seconds = max(0, Int(Date().timeIntervalSince1970) - Int(millis / 1000))
        if seconds < 120 { return "\(seconds)s" }
        if seconds < 7200 { return "\(seconds / 60)m" }
        if seconds < 172_800 { return "\(seconds / 3600)h" }
        return "\(seconds / 86400)d"
    }
}

/// Any JSON value, to turn an API answer into YAML with its types intact.
enum JSONValue: Decodable {
    case null, bool(Bool), number(Double), integer(Int64), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int64.self) { self = .integer(i) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    var node: Node {
        switch self {
        case .null: return Node("null", Tag(.null))
        case .bool(let b): return Node(b ? "true" : "false", Tag(.bool))
        case .integer(let i): return Node(String(i), Tag(.int))
        case .number(let d): return Node(String(d), Tag(.float))
        case .string(let s): return Node(s, Tag(.str), .doubleQuoted)
        case .array(let a): return .sequence(.init(a.map(\.node)))
        case .object(let o): return .mapping(.init(o.keys.sorted().map { (Node($0), o[$0]?.node ?? Node("null", Tag(.null))) }))
        }
    }
}
