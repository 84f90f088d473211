import DroverAgentStore
import DroverCore
import Foundation
import Testing

@Suite("Agent store")
struct AgentStoreTests {
    @Test("desired state never goes back to an older generation")
    func generationMonotonic() throws {
        let store = try AgentStore(path: try Fixtures.temporaryDirectory() + "/agent.db")
        #expect(try store.saveDesired(generation: 2, payload: "two"))
        #expect(try !store.saveDesired(generation: 1, payload: "one"))
        #expect(try !store.saveDesired(generation: 2, payload: "two again"))
        #expect(try store.loadDesired()?.payload == "two")
    }

    @Test("the outbox keeps order across a reopen and forgets only what was acknowledged")
    func outbox() throws {
        let path = try Fixtures.temporaryDirectory() + "/agent.db"
        do {
            let store = try AgentStore(path: path)
            let first = try store.enqueue("a")
            let second = try store.enqueue("b")
            #expect(second > first)
            try store.acknowledge(seq: first)
        }
        let reopened = try AgentStore(path: path)
        #expect(try reopened.pending().map(\.payload) == ["b"])
        let third = try reopened.enqueue("c")
        #expect(try reopened.pending().map(\.seq).last == third)
        #expect(try reopened.trimOutbox(keep: 1) == 1)
        #expect(try reopened.pending().map(\.payload) == ["c"])
    }

    @Test("replica records and meta survive a reopen")
    func replicas() throws {
        let path = try Fixtures.temporaryDirectory() + "/agent.db"
        let spec = WorkloadSpec(name: "w", command: ["/bin/true"]).replica(ordinal: 0)
        do {
            let store = try AgentStore(path: path)
            try store.saveReplica(ReplicaRecord(spec: spec, phase: .running, pid: 42, startTicks: 7))
            try store.setMeta("k", "v")
        }
        let reopened = try AgentStore(path: path)
        #expect(try reopened.loadReplicas() == [ReplicaRecord(spec: spec, phase: .running, pid: 42, startTicks: 7)])
        #expect(try reopened.meta("k") == "v")
        try reopened.deleteReplica(id: spec.id)
        #expect(try reopened.loadReplicas().isEmpty)
    }

    @Test("a file that is not a database is refused with an error, not a crash")
    func corrupt() throws {
        let path = try Fixtures.temporaryDirectory() + "/agent.db"
        try Data(repeating: 0x41, count: 4096).write(to: URL(fileURLWithPath: path))
        #expect(throws: SQLiteError.self) { try AgentStore(path: path) }
    }
}
