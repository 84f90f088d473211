import CZlib

/// Desired state deflated on the wire (zlib, RFC 1950), for a device that says it reads it
/// (`DeviceFacts.encodings`). The controller sends a device its whole desired state at every
/// change, retained, so that applying it is idempotent and a device back after a week knows
/// everything from one message; most of it repeats what the device already has, and its
/// replicas' specs repeat each other. Deflated, 10 replicas take about 400 bytes instead of
/// 3.3 KB, about what one replica's spec alone would cost as a delta.
public enum Deflate {
    /// Whether `payload` is a zlib stream rather than JSON: a JSON text starts with
    /// whitespace or `{`, a zlib stream with 0x78 (deflate, 32 KiB window) and a header that
    /// is a multiple of 31.
    public static func isDeflated(_ payload: [UInt8]) -> Bool {
        payload.count >= 2 && payload[0] == 0x78 && (UInt16(payload[0]) << 8 | UInt16(payload[1])) % 31 == 0
    }

    /// `bytes` deflated (level 1: the controller deflates thousands in a large change), or
    /// nil when zlib fails.
    public static func deflated(_ bytes: [UInt8]) -> [UInt8]? {
        var stream = z_stream()
        guard deflateInit_(&stream, 1, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else { return nil }
        defer { deflateEnd(&stream) }
        var out = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(bytes.count))))
        let rc = bytes.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                // zlib never writes through next_in.
                stream.next_in = UnsafeMutablePointer(mutating: src.baseAddress)
                stream.avail_in = uInt(src.count)
                stream.next_out = dst.baseAddress
                stream.avail_out = uInt(dst.count)
                return deflate(&stream, Z_FINISH)
            }
        }
        guard rc == Z_STREAM_END else { return nil }
        out.removeLast(out.count - Int(stream.total_out))
        return out
    }

    /// The bytes of a zlib stream, at most `limit` of them: a stream that inflates past it (a
    /// "zip bomb") is refused as soon as it does, without inflating the rest.
    public static func inflated(_ payload: [UInt8], limit: Int) throws(WireError) -> [UInt8] {
        var stream = z_stream()
        guard inflateInit_(&stream, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw WireError(.malformed, "zlib: cannot start inflating")
        }
        defer { inflateEnd(&stream) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var rc = Z_OK
        var tooLarge = false
        payload.withUnsafeBufferPointer { src in
            stream.next_in = UnsafeMutablePointer(mutating: src.baseAddress)
            stream.avail_in = uInt(src.count)
            // Until the end, an error, or no progress (Z_BUF_ERROR: a truncated stream).
            while rc == Z_OK {
                let produced = chunk.withUnsafeMutableBufferPointer { dst -> Int in
                    stream.next_out = dst.baseAddress
                    stream.avail_out = uInt(dst.count)
                    rc = inflate(&stream, Z_NO_FLUSH)
                    return dst.count - Int(stream.avail_out)
                }
                guard out.count + produced <= limit else {
                    tooLarge = true
                    return
                }
                out += chunk.prefix(produced)
            }
        }
        if tooLarge { throw WireError(.oversized, "deflated desired state inflates past \(limit) bytes") }
        guard rc == Z_STREAM_END, stream.avail_in == 0 else {
            let why = rc == Z_STREAM_END ? "bytes after the end of the stream" : stream.msg.map { String(cString: $0) } ?? "truncated"
            throw WireError(.malformed, "zlib: \(why) (code \(rc))")
        }
        return out
    }
}
