import CarteiraTestSupport
import CarteiraCore
import Foundation
import Testing

@testable import CarteiraJournal

@Suite("Journal writer")
struct WriterTests {
    @Test("200 concurrent appenders through one owner resolve with far fewer syncs than events")
    func groupCommit() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (opened, storage) = try openFaulty(directory)
        let owner = JournalOwner(ledger: opened.ledger, writer: opened.writer)
        let writer = opened.writer
        let syncsAtOpen = storage.syncs

        // Hold the first batch's sync so the rest gather behind it.
        storage.closeGate()
        let first = try #require(await owner.register("first"))
        let blocked = try await waitUntil { storage.syncsEntered > syncsAtOpen }
        #expect(blocked)
        let firstDone = Task { try await writer.waitDurable(through: first) }

        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<199 {
                group.addTask {
                    let seq = try #require(await owner.register("m\(index)"))
                    try await writer.waitDurable(through: seq)
                }
            }
            // Every line is queued behind the held sync before it is let go.
            let gathered = try await waitUntil { await owner.ledger.lastSeq == 200 }
            #expect(gathered)
            #expect(storage.syncsEntered == syncsAtOpen + 1)
            #expect(writer.durableSeq == 0, "nothing is durable while the sync is held")
            storage.openGate()
            try await group.waitForAll()
        }
        try await firstDone.value
        let statistics = writer.statistics()
        #expect(statistics.eventsSynced == 200)
        #expect(statistics.syncs <= 5, "\(statistics.syncs) syncs for 200 events")
        #expect(writer.durableSeq == 200)
        #expect(statistics.lastSeq == 200)
        await writer.shutdown()
        opened.lock.release()
        #expect(try JournalVerifier.verify(directory: directory.path).machines == 200)
    }

    @Test("waiting on a seq that is already durable returns at once, and shutdown flushes what is pending")
    func shutdownFlushes() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let opened = try Journal.open(directory: directory.path, policy: KeyPolicy(), now: startTime)
        try await opened.writer.waitDurable(through: 0)
        var driver = LedgerDriver(ledger: opened.ledger)
        driver.register("alice")
        driver.register("bob")
        for event in driver.events { opened.writer.append(event) }
        await opened.writer.shutdown()
        #expect(opened.writer.durableSeq == 2)
        await #expect(throws: JournalError.closed) { try await opened.writer.waitDurable(through: 3) }
        opened.lock.release()
        #expect(try JournalVerifier.verify(directory: directory.path).lastSeq == 2)
    }

    /// Registers `names` through `opened`, returning the tasks waiting on each
    /// (each yields the error its wait threw, nil once durable).
    static func appendAndWait(
        _ opened: OpenedJournal, after ledger: Ledger, seed: UInt64, _ names: [String]
    ) -> (Ledger, [Task<JournalError?, Never>]) {
        var driver = LedgerDriver(ledger: ledger)
        driver.random = SeededBytes(seed: seed)
        var waits: [Task<JournalError?, Never>] = []
        for name in names {
            guard let event = driver.register(name) else { continue }
            opened.writer.append(event)
            let writer = opened.writer
            waits.append(
                Task { () -> JournalError? in
                    do throws(JournalError) {
                        try await writer.waitDurable(through: event.seq)
                        return nil
                    } catch {
                        return error
                    }
                })
        }
        return (driver.ledger, waits)
    }

    @Test(
        "a failed write or sync closes the writer: every waiter throws .closed and nothing later is acknowledged",
        arguments: [FaultyStorage.Fault.appendFails, .syncFails, .shortWrite(bytes: 150)])
    func failureClosesTheWriter(fault: FaultyStorage.Fault) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (opened, storage) = try openFaulty(directory)
        let (afterAlice, good) = Self.appendAndWait(opened, after: opened.ledger, seed: 1, ["alice"])
        for wait in good { #expect(await wait.value == nil) }

        storage.inject(fault)
        let (ledger, doomed) = Self.appendAndWait(opened, after: afterAlice, seed: 2, ["bob", "carol", "dave"])
        for wait in doomed { #expect(await wait.value == .closed) }
        #expect(opened.writer.failure != nil)
        #expect(opened.writer.durableSeq == 1)

        // Even once the disk recovers, nothing more becomes durable.
        storage.inject(.none)
        var driver = LedgerDriver(ledger: ledger)
        driver.random = SeededBytes(seed: 3)
        let registered = driver.register("erin")
        let late = try #require(registered)
        opened.writer.append(late)
        await #expect(throws: JournalError.closed) { try await opened.writer.waitDurable(through: late.seq) }
        await #expect(throws: JournalError.closed) { try await opened.writer.waitDurable(through: 2) }
        #expect(opened.writer.durableSeq == 1)
        await opened.writer.shutdown()
        opened.lock.release()

        // A restart keeps what was durable; a short write left a torn tail that is cut.
        let reopened = try open(directory)
        #expect(reopened.ledger.machines.keys.contains(MachineName("alice")!))
        if case .shortWrite = fault {
            #expect(reopened.tornTailCutAt != nil)
            #expect(reopened.ledger.lastSeq == 1)
        }
        if case .syncFails = fault {
            // The bytes were written, just never synced: they may replay.
            #expect((1...4).contains(reopened.ledger.lastSeq))
        } else {
            #expect(reopened.ledger.lastSeq == 1)
        }
        await reopened.writer.shutdown()
        reopened.lock.release()
    }
}
