import DroverCore
import Testing

@Suite("Quantities")
struct QuantityTests {
    @Test("cpu as cores or millicores", arguments: [("2", 2000), ("0.5", 500), ("250m", 250), (" 1 ", 1000)])
    func cpu(text: String, millis: Int) {
        #expect(Quantity.parseCPU(text) == millis)
    }

    @Test("memory with binary and decimal suffixes", arguments: [("64Mi", Int64(64 << 20)), ("1Gi", Int64(1 << 30)), ("1.5Ki", Int64(1536)), ("1000", Int64(1000)), ("2M", Int64(2_000_000))])
    func memory(text: String, bytes: Int64) {
        #expect(Quantity.parseMemory(text) == bytes)
    }

    @Test("nonsense is refused", arguments: ["", "lots", "-1", "1Qi", "m", "1e400"])
    func refused(text: String) {
        #expect(Quantity.parseCPU(text) == nil)
        #expect(Quantity.parseMemory(text) == nil)
    }

    @Test("formatting round-trips the common sizes")
    func format() {
        #expect(Quantity.formatMemory(512 << 20) == "512Mi")
        #expect(Quantity.formatMemory(1536 << 20) == "1.5Gi")
        #expect(Quantity.formatCPU(1500) == "1500m")
        #expect(Quantity.formatCPU(2000) == "2")
    }

    @Test("device ids that would break topics are invalid", arguments: ["a/b", "a+b", "#", "", String(repeating: "x", count: 65)])
    func badDeviceIDs(id: String) {
        #expect(!Names.isValidDeviceID(id))
    }
}
