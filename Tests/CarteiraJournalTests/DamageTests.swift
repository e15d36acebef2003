import CarteiraTestSupport
import CarteiraCore
import Foundation
import Testing

@testable import CarteiraJournal

/// Three machines, a few transfers and a rotation: 8 lines.
func smallActivity(_ driver: inout LedgerDriver) {
    driver.register("alice")
    driver.register("bob")
    driver.register("carol")
    driver.pay("alice", "bob", 2500)
    driver.pay("bob", "carol", 100, request: "r1")
    driver.rotate("carol")
    driver.pay("carol", "alice", 5)
}

/// Re-chains `events` after the journal's last line, as a writer would.
func chained(_ events: [Event], after directory: TemporaryDirectory) throws -> [UInt8] {
    var previous = try #require(try journalLines(directory).last?.split(separator: "=").last).description
    var bytes: [UInt8] = []
    for event in events {
        let (line, hash) = JournalCodec.encode(event, previousHash: previous)
        bytes += Array(line.utf8)
        previous = hash
    }
    return bytes
}

func open(_ directory: TemporaryDirectory) throws -> OpenedJournal {
    try Journal.open(directory: directory.path, policy: KeyPolicy(), now: startTime.adding(seconds: 3600))
}

func expectCorrupt(_ directory: TemporaryDirectory, line: Int, reason: String) throws {
    let before = try directory.journalBytes()
    #expect {
        _ = try open(directory)
    } throws: { error in
        guard case let .corrupt(number, text) = error as? JournalError else { return false }
        return number == line && text.contains(reason)
    }
    #expect(try directory.journalBytes() == before, "open must not change a corrupt journal")
    #expect(try directory.files(withPrefix: "ledger.journal.torn").isEmpty)
    #expect {
        _ = try JournalVerifier.verify(directory: directory.path)
    } throws: { error in
        guard case let .corrupt(number, _) = error as? JournalError else { return false }
        return number == line
    }
    #expect(throws: JournalError.self) { _ = try JournalRepair.repair(directory: directory.path) }
    #expect(try directory.journalBytes() == before, "repair must not change a corrupt journal")
}

@Suite("Journal damage")
struct DamageTests {
    @Test(
        "a torn tail (a partial line, or NUL bytes) is cut at start-up at the right offset, keeping the cut bytes",
        arguments: [
            Array("seq=8 at=2026-11-26T19:22".utf8),
            [UInt8](repeating: 0, count: 4096 + 10),
            Array("seq=8 at=2026".utf8) + [0, 0, 0, 10],
        ])
    func tornTailAtStartUp(tail: [UInt8]) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let live = try await writeJournal(in: directory, smallActivity)
        let whole = try directory.journalBytes()
        try directory.appendJournal(tail)

        #expect(throws: JournalError.tornTail(offset: Int64(whole.count))) {
            _ = try JournalVerifier.verify(directory: directory.path)
        }
        let opened = try open(directory)
        #expect(opened.tornTailCutAt == Int64(whole.count))
        #expect(LedgerSnapshot(opened.ledger) == LedgerSnapshot(live))
        #expect(try directory.journalBytes() == whole)
        let kept = try #require(opened.tornTailKeptAt)
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: kept))) == tail)

        // Appends go on right after the last whole line.
        var driver = LedgerDriver(ledger: opened.ledger)
        driver.pay("bob", "alice", 1)
        for event in driver.events { opened.writer.append(event) }
        try await opened.writer.waitDurable(through: driver.ledger.lastSeq)
        await opened.writer.shutdown()
        opened.lock.release()
        #expect(try JournalVerifier.verify(directory: directory.path).lastSeq == driver.ledger.lastSeq)
    }

    @Test("CRLF line endings are named as such, with what to do, and nothing is changed")
    func crlfEndings() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        _ = try await writeJournal(in: directory, smallActivity)
        var converted: [UInt8] = []
        for byte in try directory.journalBytes() {
            if byte == UInt8(ascii: "\n") { converted.append(UInt8(ascii: "\r")) }
            converted.append(byte)
        }
        try directory.writeJournal(converted)
        try expectCorrupt(directory, line: 1, reason: "CRLF (Windows) line endings")
    }

    @Test("an empty last line is named as such, with what to do, and nothing is changed")
    func emptyLastLine() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        _ = try await writeJournal(in: directory, smallActivity)
        try directory.appendJournal([UInt8(ascii: "\n")])
        try expectCorrupt(directory, line: 9, reason: "an empty line, which a journal never has")
    }

    @Test("repair cuts only a torn tail, keeps its bytes beside the journal, and then verify passes")
    func repairCutsTornTail() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        _ = try await writeJournal(in: directory, smallActivity)
        let whole = try directory.journalBytes()
        #expect(try JournalRepair.repair(directory: directory.path) == nil)
        let tail = Array("seq=8 at=2026-11-26T19:22:10.004Z type=trans".utf8)
        try directory.appendJournal(tail)

        let cut = try #require(try JournalRepair.repair(directory: directory.path))
        #expect(cut.offset == Int64(whole.count))
        #expect(cut.bytes == tail.count)
        #expect(try directory.journalBytes() == whole)
        let kept = try #require(try directory.files(withPrefix: "ledger.journal.torn-").first)
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: directory.path + "/" + kept))) == tail)
        #expect(try JournalVerifier.verify(directory: directory.path).events == 8)
    }

    @Test("verify passes over an incomplete last line while a live server holds the lock")
    func verifyWhileLive() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        _ = try await writeJournal(in: directory, smallActivity)
        try directory.appendJournal(Array("seq=8 at=2026-11-26".utf8))
        let lock = try JournalLock.acquire(directory: directory.path)
        let summary = try JournalVerifier.verify(directory: directory.path)
        #expect(summary.passedOverIncompleteLine)
        #expect(summary.lastSeq == 7)
        lock.release()
        #expect(throws: JournalError.self) { _ = try JournalVerifier.verify(directory: directory.path) }
    }

    @Test("one changed byte in the middle is refused naming its line, and nothing on disk changes")
    func changedByteInTheMiddle() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        _ = try await writeJournal(in: directory, smallActivity)
        var lines = try journalLines(directory)
        lines[4] = lines[4].replacingOccurrences(of: "amount=2500", with: "amount=2600")
        try directory.writeJournal(Array((lines.joined(separator: "\n") + "\n").utf8))
        try expectCorrupt(directory, line: 5, reason: "hash does not match")
    }

    @Test("an edited whole last line is corruption, not a torn tail, even if later bytes look torn")
    func editedLastLine() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        _ = try await writeJournal(in: directory, smallActivity)
        var lines = try journalLines(directory)
        lines[7] = lines[7].replacingOccurrences(of: "amount=5 ", with: "amount=6 ")
        try directory.writeJournal(Array((lines.joined(separator: "\n") + "\n").utf8))
        try expectCorrupt(directory, line: 8, reason: "hash does not match")
        try directory.appendJournal(Array("seq=8 at=".utf8))
        try expectCorrupt(directory, line: 8, reason: "hash does not match")
    }

    @Test("a seq gap and a repeated seq are refused with their line, though the chain holds")
    func seqGapAndRepeat() async throws {
        for skip: Int64 in [2, 0] {
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            _ = try await writeJournal(in: directory, smallActivity)
            var random = SeededBytes(seed: 99)
            let event = Event(
                seq: 7 + skip, at: startTime.adding(seconds: 9),
                kind: .keyRotated(
                    Event.KeyRotation(
                        machine: MachineName("bob")!, key: random.key(), expires: startTime.adding(seconds: 99),
                        reason: .admin)))
            try directory.appendJournal(try chained([event], after: directory))
            try expectCorrupt(directory, line: 9, reason: "seq \(7 + skip) does not follow 7")
        }
    }

    @Test("an unknown type stops replay naming the line")
    func unknownType() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        _ = try await writeJournal(in: directory, smallActivity)
        let previous = try #require(try journalLines(directory).last?.split(separator: "=").last).description
        let line = CodecTests.line("seq=8 at=2026-11-26T19:22:09.123Z type=merged into=x", previous: previous) + "\n"
        try directory.appendJournal(Array(line.utf8))
        try expectCorrupt(directory, line: 9, reason: "unknown type merged")
    }

    @Test("a transfer that overdraws its payer is refused as a broken ledger rule naming the line")
    func overdraw() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let live = try await writeJournal(in: directory, smallActivity)
        let bob = try #require(live.machines[MachineName("bob")!])
        let transfer = Event.Transfer(
            tx: TxID(seq: 8), from: MachineName("alice")!, to: bob.name, key: bob.key, amount: Centavos(1_000_000),
            requestID: nil)
        let event = Event(seq: 8, at: startTime.adding(seconds: 9), kind: .transfer(transfer))
        try directory.appendJournal(try chained([event], after: directory))
        try expectCorrupt(directory, line: 9, reason: "below zero")
    }
}
