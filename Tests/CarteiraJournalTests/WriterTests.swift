import CarteiraTestSupport
import CarteiraCore
import Foundation
import Testing

@testable import CarteiraJournal

@Suite("Journal writer", .timeLimit(.minutes(1)))
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

    /// Registers machines with `append(_:wakeWriter: false)` and
    /// `syncPendingHere()`, as an event loop does, until one batch ran on
    /// this thread (the writer thread parks soon after the journal opens;
    /// until then it takes what is pending itself). After that the writer
    /// thread stays parked, so every such batch runs here.
    static func syncUntilOnCaller(_ writer: JournalWriter, _ driver: inout LedgerDriver) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(20)
        var index = 0
        while ContinuousClock.now < deadline {
            let registeredEvent = driver.register("early\(index)")
            let event = try #require(registeredEvent)
            index += 1
            #expect(writer.append(event, wakeWriter: false))
            writer.syncPendingHere()
            if writer.statistics().syncsOnCaller > 0 {
                #expect(writer.durableSeq == event.seq, "durable once syncPendingHere returns")
                return true
            }
            try await writer.waitDurable(through: event.seq)
        }
        return false
    }

    @Test("while the writer thread is parked, a batch runs on the thread that appended it, and is durable on return")
    func batchOnCaller() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let opened = try Journal.open(directory: directory.path, policy: KeyPolicy(), now: startTime)
        let writer = opened.writer
        var driver = LedgerDriver(ledger: opened.ledger)
        #expect(try await Self.syncUntilOnCaller(writer, &driver))

        // Three appends, one call: one batch, here.
        let before = writer.statistics()
        var last: Int64 = 0
        for name in ["alice", "bob", "carol"] {
            let registeredEvent = driver.register(name)
            let event = try #require(registeredEvent)
            writer.append(event, wakeWriter: false)
            last = event.seq
        }
        #expect(writer.durableSeq < last, "nothing syncs before syncPendingHere")
        writer.syncPendingHere()
        #expect(writer.durableSeq == last)
        let after = writer.statistics()
        #expect(after.syncs == before.syncs + 1)
        #expect(after.syncsOnCaller == before.syncsOnCaller + 1)
        #expect(after.eventsSynced == before.eventsSynced + 3)

        // Nothing pending: nothing to do.
        writer.syncPendingHere()
        #expect(writer.statistics().syncs == after.syncs)

        // More than a few pending: the call wakes the writer thread instead.
        var many: Int64 = 0
        for index in 0..<(JournalWriter.mostEventsOnCaller + 1) {
            let registeredEvent = driver.register("many\(index)")
            let event = try #require(registeredEvent)
            writer.append(event, wakeWriter: false)
            many = event.seq
        }
        writer.syncPendingHere()
        try await writer.waitDurable(through: many)
        #expect(writer.statistics().syncsOnCaller == after.syncsOnCaller)

        // An append that wakes the writer still goes through its thread.
        let registeredWoken = driver.register("dave")
        let woken = try #require(registeredWoken)
        writer.append(woken)
        try await writer.waitDurable(through: woken.seq)
        #expect(writer.statistics().syncsOnCaller == after.syncsOnCaller)
        await writer.shutdown()
        opened.lock.release()
        let verified = try JournalVerifier.verify(directory: directory.path)
        #expect(verified.lastSeq == woken.seq)
    }

    @Test("storage that cannot sync on the caller: an append that leaves the writer parked wakes it anyway")
    func storageRefusesCaller() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (opened, _) = try openFaulty(directory, syncsOnCaller: false)
        var driver = LedgerDriver(ledger: opened.ledger)
        for name in ["alice", "bob"] {
            let registeredEvent = driver.register(name)
            let event = try #require(registeredEvent)
            opened.writer.append(event, wakeWriter: false)
            opened.writer.syncPendingHere()
            // Durable without anybody calling anything more: the thread ran it.
            try await opened.writer.waitDurable(through: event.seq)
        }
        #expect(opened.writer.statistics().syncsOnCaller == 0)
        await opened.writer.shutdown()
        opened.lock.release()
    }

    @Test(
        "a failed sync on the caller closes the writer: its waiters throw .closed and the writer thread exits",
        arguments: [FaultyStorage.Fault.appendFails, .syncFails])
    func failureOnCaller(fault: FaultyStorage.Fault) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (opened, storage) = try openFaulty(directory, syncsOnCaller: true)
        let writer = opened.writer
        var driver = LedgerDriver(ledger: opened.ledger)
        #expect(try await Self.syncUntilOnCaller(writer, &driver))
        let durable = writer.durableSeq
        let onCaller = writer.statistics().syncsOnCaller

        storage.inject(fault)
        let registeredEvent = driver.register("doomed")
        let event = try #require(registeredEvent)
        writer.append(event, wakeWriter: false)
        let waiting = Task { () -> JournalError? in
            do throws(JournalError) {
                try await writer.waitDurable(through: event.seq)
                return nil
            } catch {
                return error
            }
        }
        writer.syncPendingHere()
        #expect(writer.failure != nil, "the batch ran, and failed, here")
        #expect(await waiting.value == .closed)
        #expect(writer.durableSeq == durable)
        #expect(writer.statistics().syncsOnCaller == onCaller)
        let registeredLater = driver.register("later")
        let later = try #require(registeredLater)
        #expect(!writer.append(later, wakeWriter: false))
        // The writer thread was woken to exit, so shutdown returns.
        await writer.shutdown()
        opened.lock.release()
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
