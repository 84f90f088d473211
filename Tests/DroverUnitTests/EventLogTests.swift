import DroverCore
import DroverStore
import Foundation
import Testing

/// The event log in `controller.db` stays bounded: the newest 100,000, none older than 30 days.
@Suite("Event log")
struct EventLogTests {
    @Test("events older than 30 days than the newest go, and only the newest 100,000 are kept")
    func bounded() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try SQLiteFleetStore(path: dir + "/controller.db")
        let now: Int64 = 4_000_000_000_000
        var batch = StoreBatch()
        batch.events = [
            EventRecord(time: now - SQLiteFleetStore.eventsMaxAge - 1, kind: "Old", subject: "a", message: "too old"),
            EventRecord(time: now - SQLiteFleetStore.eventsMaxAge, kind: "Kept", subject: "a", message: "just young enough"),
            EventRecord(time: now, kind: "New", subject: "a", message: "newest"),
        ]
        try store.write(batch)
        #expect(try store.events(limit: 10, subject: nil).map(\.kind) == ["Kept", "New"])
        batch.events = (0..<(SQLiteFleetStore.eventsKept + 5)).map { EventRecord(time: now + Int64($0), kind: "Many", subject: "b", message: "\($0)") }
        try store.write(batch)
        let kept = try store.events(limit: SQLiteFleetStore.eventsKept + 10, subject: nil)
        #expect(kept.count == SQLiteFleetStore.eventsKept)
        #expect(kept.first?.message == "5" && kept.last?.message == "\(SQLiteFleetStore.eventsKept + 4)")
    }
}
