import DroverCore

/// The controller's fast path for beats, its most frequent message: a reader of exactly the
/// JSON a beat is, without the generic machinery of `Codable` (Foundation's `JSONDecoder` took
/// two fifths of the controller's CPU under a flood of beats). Anything it does not expect (an
/// escape in a string, a number that is not plain, a key given twice, a value of another type,
/// trailing bytes) makes it give up and return nil: the general decoder (`JSON.decode`) then
/// decides, and names the problem. A differential test checks that whenever this returns a
/// beat, the general decoder returns the same.
enum BeatDecoder {
    static func decode(_ bytes: [UInt8]) -> Beat? {
        bytes.withUnsafeBufferPointer { buffer in
            var reader = JSONReader(buffer)
            guard let beat = reader.beat(), reader.atEnd() else { return nil }
            return beat
        }
    }
}

struct JSONReader {
    let bytes: UnsafeBufferPointer<UInt8>
    var i = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    mutating func space() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    mutating func atEnd() -> Bool {
        space()
        return i == bytes.count
    }

    /// Consumes `c` (after whitespace) if it is next.
    mutating func take(_ c: UInt8) -> Bool {
        space()
        guard i < bytes.count, bytes[i] == c else { return false }
        i += 1
        return true
    }

    mutating func null() -> Bool {
        space()
        guard i + 4 <= bytes.count, bytes[i] == 0x6E, bytes[i + 1] == 0x75, bytes[i + 2] == 0x6C, bytes[i + 3] == 0x6C else { return false }
        i += 4
        return true
    }

    /// A string without escapes or control characters, valid UTF-8.
    mutating func string() -> String? {
        rawString()?.string
    }

    /// A string's bytes, without escapes or control characters (not yet checked as UTF-8).
    mutating func rawString() -> Key? {
        guard take(0x22) else { return nil }
        let start = i
        var ascii = true
        while i < bytes.count, bytes[i] != 0x22 {
            guard bytes[i] >= 0x20, bytes[i] != 0x5C else { return nil }
            ascii = ascii && bytes[i] < 0x80
            i += 1
        }
        guard i < bytes.count else { return nil }
        defer { i += 1 }
        return Key(bytes: UnsafeBufferPointer(rebasing: bytes[start..<i]), ascii: ascii)
    }

    /// An object's key (or a string) as it is in the message: matched against the names a
    /// reader expects without making a `String` of it (`case "usage":` compares bytes).
    struct Key {
        let bytes: UnsafeBufferPointer<UInt8>
        let ascii: Bool

        /// Valid UTF-8 or nil. (ASCII is valid UTF-8; the generic validation looked up type
        /// metadata for every string.)
        var string: String? {
            ascii ? String(decoding: bytes, as: UTF8.self) : String(validating: bytes, as: UTF8.self)
        }

        static func ~= (name: StaticString, key: Key) -> Bool {
            name.utf8CodeUnitCount == key.bytes.count
                && name.withUTF8Buffer { expected in expected.elementsEqual(key.bytes) }
        }
    }

    /// The text of a JSON number (its grammar checked); `integer`: digits only, with an optional minus.
    mutating func number(integer: Bool) -> String? {
        numberRange(integer: integer).map { String(decoding: UnsafeBufferPointer(rebasing: bytes[$0]), as: UTF8.self) }
    }

    /// Where a JSON number is (its grammar checked); `integer`: digits only, with an optional minus.
    mutating func numberRange(integer: Bool) -> Range<Int>? {
        space()
        let start = i
        func digits(_ r: inout JSONReader) -> Int {
            let from = r.i
            while r.i < r.bytes.count, (0x30...0x39).contains(r.bytes[r.i]) { r.i += 1 }
            return r.i - from
        }
        if i < bytes.count, bytes[i] == 0x2D { i += 1 }
        let first = i < bytes.count ? bytes[i] : 0
        let count = digits(&self)
        guard count > 0, count == 1 || first != 0x30 else { return nil }
        if !integer {
            if i < bytes.count, bytes[i] == 0x2E {
                i += 1
                guard digits(&self) > 0 else { return nil }
            }
            if i < bytes.count, bytes[i] == 0x65 || bytes[i] == 0x45 {
                i += 1
                if i < bytes.count, bytes[i] == 0x2B || bytes[i] == 0x2D { i += 1 }
                guard digits(&self) > 0 else { return nil }
            }
        }
        // A fraction or exponent where an integer is wanted: the general decoder decides.
        guard i == bytes.count || ![0x2E, 0x65, 0x45].contains(bytes[i]) else { return nil }
        return start..<i
    }

    /// A JSON integer read straight from its digits; nil past Int64's range.
    mutating func int64() -> Int64? {
        guard let digits = numberRange(integer: true) else { return nil }
        var at = digits.lowerBound
        let negative = bytes[at] == 0x2D
        if negative { at += 1 }
        var value: Int64 = 0
        while at < digits.upperBound {
            let digit = Int64(bytes[at] &- 0x30)
            let (times, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = negative ? times.subtractingReportingOverflow(digit) : times.addingReportingOverflow(digit)
            guard !o1, !o2 else { return nil }
            value = sum
            at += 1
        }
        return value
    }

    /// A plain decimal of at most 24 characters: an exponent (`1e-3002` underflows to 0 here,
    /// where the general decoder refuses it) or a very long number goes to the general decoder.
    mutating func double() -> Double? {
        guard let text = number(integer: false), text.utf8.count <= 24, !text.utf8.contains(where: { $0 == 0x65 || $0 == 0x45 }) else { return nil }
        return Double(text).flatMap { $0.isFinite ? $0 : nil }
    }

    /// An object: `field` is called with each key, the reader before its value; it reads the
    /// value and says whether it could. (Each caller fails a key it has seen already.)
    mutating func object(_ field: (inout JSONReader, Key) -> Bool) -> Bool {
        guard take(0x7B) else { return false }
        if take(0x7D) { return true }
        repeat {
            guard let key = rawString(), take(0x3A), field(&self, key) else { return false }
        } while take(0x2C)
        return take(0x7D)
    }

    /// An object of integers (phase counts, replica CPU).
    mutating func integers() -> [String: Int]? {
        var result: [String: Int] = [:]
        let ok = object { r, raw in
            guard let key = raw.string, result[key] == nil, let n = r.int64().flatMap({ Int(exactly: $0) }) else { return false }
            result[key] = n
            return true
        }
        return ok ? result : nil
    }

    /// Marks field `bit` as seen; false when it was already.
    static func first(_ bit: Int, _ seen: inout UInt32) -> Bool {
        defer { seen |= 1 << bit }
        return seen & (1 << bit) == 0
    }

    mutating func usage() -> Usage? {
        var cpu: Double?
        var (mu, mt, du, dt): (Int64?, Int64?, Int64?, Int64?)
        /// Reads one figure into an empty slot.
        func figure(_ slot: inout Int64?, _ r: inout JSONReader) -> Bool {
            guard slot == nil else { return false }
            slot = r.int64()
            return slot != nil
        }
        let ok = object { r, key in
            switch key {
            case "cpuPercent":
                guard cpu == nil else { return false }
                cpu = r.double()
                return cpu != nil
            case "memoryUsedBytes": return figure(&mu, &r)
            case "memoryTotalBytes": return figure(&mt, &r)
            case "diskUsedBytes": return figure(&du, &r)
            case "diskTotalBytes": return figure(&dt, &r)
            default: return false
            }
        }
        guard ok, let cpu, let mu, let mt, let du, let dt else { return nil }
        return Usage(cpuPercent: cpu, memoryUsedBytes: mu, memoryTotalBytes: mt, diskUsedBytes: du, diskTotalBytes: dt)
    }

    /// An optional field: null is nil; `read` fails the field when it returns nil.
    mutating func optional<T>(_ slot: inout T?, _ read: (inout JSONReader) -> T?) -> Bool {
        if null() { return true }
        slot = read(&self)
        return slot != nil
    }

    mutating func beat() -> Beat? {
        var v: Int64?
        var device: String?
        var time: Int64?
        var beat = Beat(device: "", time: 0)
        var seen: UInt32 = 0
        let ok = object { r, key in
            switch key {
            case "v": v = Self.first(0, &seen) ? r.int64() : nil; return v != nil
            case "device": device = Self.first(1, &seen) ? r.string() : nil; return device != nil
            case "time": time = Self.first(2, &seen) ? r.int64() : nil; return time != nil
            case "usage": return Self.first(3, &seen) && r.optional(&beat.usage) { $0.usage() }
            case "phases": return Self.first(4, &seen) && r.optional(&beat.phases) { $0.integers() }
            case "replicaCPU": return Self.first(5, &seen) && r.optional(&beat.replicaCPU) { $0.integers() }
            case "generation": return Self.first(6, &seen) && r.optional(&beat.generation) { $0.int64() }
            case "reportSeq": return Self.first(7, &seen) && r.optional(&beat.reportSeq) { $0.int64() }
            case "digest": return Self.first(8, &seen) && r.optional(&beat.digest) { $0.string() }
            case "rtt": return Self.first(9, &seen) && r.optional(&beat.rtt) { $0.double() }
            // Other keys: the general decoder skips them; so does it, by giving up.
            default: return false
            }
        }
        guard ok, let v = v.flatMap({ Int(exactly: $0) }), let device, let time else { return nil }
        beat.v = v
        beat.device = device
        beat.time = time
        return beat
    }
}
