import CarteiraTestSupport
import CarteiraCore
import CarteiraJournal
import Testing

@Suite("A journal that cannot be written", .timeLimit(.minutes(1)))
struct JournalFailureTests {
    @Test("A failed write answers unavailable, acknowledges nothing after it, and makes run() throw")
    func failedWrite() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let made = Locked<BreakableStorage?>(nil)
        let server = try await TestServer.start(journal: directory.path) { path in
            let storage = try BreakableStorage(path: path)
            made.withLock { $0 = storage }
            return storage
        }
        let alice = try await TestPeer(port: server.port)
        let bob = try await TestPeer(port: server.port)
        _ = try await alice.register("alice")
        let bobKey = try await bob.register("bob").key
        #expect(try await fields(alice.request("SEND|\(bobKey)|10"))[0] == "OK")

        let storage = try #require(made.withLock { $0 })
        storage.failing.withLock { $0 = true }
        #expect(try await errorCode(alice.request("SEND|\(bobKey)|10")) == "unavailable")
        // Nothing that was in memory only is served any more.
        let after = try await alice.nextLine()
        #expect(after == nil || errorCode(after ?? "") == "unavailable")
        await #expect(throws: JournalError.self) { try await server.task.value }
        await alice.close()
        await bob.close()

        // What was durable survives; the refused transfer does not.
        let restarted = try await TestServer.start(journal: directory.path)
        let ledger = await restarted.server.durableLedger()
        #expect(ledger.machines[try #require(MachineName("alice"))]?.balance == Centavos(9000))
        #expect(ledger.transfers.count == 1)
        try await restarted.stop()
    }
}
