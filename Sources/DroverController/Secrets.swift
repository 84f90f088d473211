import Crypto
import DroverCore
import DroverPOSIX
import Foundation

/// Random secrets and their hashes. Tokens carry 256 random bits, so a plain SHA-256 is
/// enough to store them: there is nothing to guess that a slow hash would protect.
enum Secrets {
    /// `bytes` random bytes as lowercase hex, from the system's CSPRNG (getrandom).
    static func randomHex(bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return hex((0..<bytes).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    static func sha256Hex(_ text: String) -> String {
        hex(Array(SHA256.hash(data: Data(text.utf8))))
    }

    static func hex(_ bytes: some Sequence<UInt8>) -> String { hexString(bytes) }

    /// Compares without an early exit, so the time taken says nothing about where two
    /// hashes differ.
    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var diff: UInt8 = 0
        for i in x.indices { diff |= x[i] ^ y[i] }
        return diff == 0
    }

    /// Writes `text` to `path` readable by its owner only (0600), replacing it atomically.
    static func writeOwnerOnly(_ text: String, to path: String) throws {
        do { try OwnerOnlyFile.write(text, to: path) } catch { throw ControllerError(error.description) }
    }
}
