import CarteiraTestSupport
import CarteiraCore
import Crypto
import Foundation
import Testing

@testable import CarteiraJournal

/// Writes `activity` through a real writer into `directory`, waits until it
/// is durable, shuts down and releases the lock. Returns the live ledger.
func writeJournal(in directory: TemporaryDirectory, _ activity: (inout LedgerDriver) -> Void) async throws -> Ledger {
    let opened = try Journal.open(directory: directory.path, policy: KeyPolicy(), now: startTime)
    var driver = LedgerDriver(ledger: opened.ledger)
    activity(&driver)
    for event in driver.events { opened.writer.append(event) }
    try await opened.writer.waitDurable(through: driver.ledger.lastSeq)
    await opened.writer.shutdown()
    opened.lock.release()
    return driver.ledger
}

/// The journal's lines as text, without their "\n".
func journalLines(_ directory: TemporaryDirectory) throws -> [String] {
    try String(decoding: directory.journalBytes(), as: UTF8.self).split(separator: "\n").map(String.init)
}

@Suite("Journal file")
struct JournalFileTests {
    @Test("the file is logfmt with seq counting from 0 and a SHA-256 chain an outsider can recompute")
    func outsiderChecksTheChain() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        _ = try await writeJournal(in: directory) { $0.randomActivity(events: 40) }
        let bytes = try directory.journalBytes()
        #expect(bytes.last == UInt8(ascii: "\n"))
        let lines = try journalLines(directory)
        #expect(lines.count > 20)
        var previous = String(repeating: "0", count: 64)
        for (index, line) in lines.enumerated() {
            let pairs = line.split(separator: " ").map { $0.split(separator: "=", maxSplits: 1).map(String.init) }
            #expect(pairs.allSatisfy { $0.count == 2 })
            #expect(pairs.first == ["seq", "\(index)"])
            #expect(pairs.last?.first == "hash")
            if index == 0 { #expect(pairs[2] == ["type", "genesis"] && pairs[3] == ["format", "carteira-journal/1"]) }
            let hash = try #require(pairs.last?.last)
            let text = try #require(line.range(of: " hash=")).lowerBound
            let digest = SHA256.hash(data: Data((previous + " " + line[..<text]).utf8))
            #expect(hash == digest.map { String(format: "%02x", $0) }.joined(), "line \(index + 1)")
            previous = hash
        }
    }

    @Test("replay after a restart rebuilds the same balances, keys and transfers as the live ledger")
    func replayEqualsLive() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let live = try await writeJournal(in: directory) { $0.randomActivity(events: 300, machines: 7) }
        #expect(live.transfers.count > 100)
        let reopened = try Journal.open(
            directory: directory.path, policy: KeyPolicy(), now: startTime.adding(seconds: 60))
        defer { reopened.lock.release() }
        #expect(!reopened.genesisWritten)
        #expect(reopened.tornTailCutAt == nil)
        #expect(LedgerSnapshot(reopened.ledger) == LedgerSnapshot(live))
        #expect(reopened.writer.durableSeq == live.lastSeq)

        // The writer carries the chain on: a restart after more appends still replays.
        var driver = LedgerDriver(ledger: reopened.ledger)
        driver.random = SeededBytes(seed: 7)
        driver.clock = startTime.adding(seconds: 60)
        driver.pay("m1", "m2", 1)
        driver.rotate("m3")
        for event in driver.events { reopened.writer.append(event) }
        try await reopened.writer.waitDurable(through: driver.ledger.lastSeq)
        await reopened.writer.shutdown()
        reopened.lock.release()
        let summary = try JournalVerifier.verify(directory: directory.path)
        #expect(LedgerSnapshot(summary.ledger) == LedgerSnapshot(driver.ledger))
    }

    @Test("a new directory gets a synced genesis line and an empty journal file is treated as new")
    func genesis() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let nested = directory.path + "/a/b"
        let opened = try Journal.open(directory: nested, policy: KeyPolicy(), now: startTime)
        #expect(opened.genesisWritten)
        #expect(opened.ledger.lastSeq == 0)
        #expect(opened.writer.durableSeq == 0)
        await opened.writer.shutdown()
        opened.lock.release()
        let text = try String(contentsOfFile: nested + "/ledger.journal", encoding: .utf8)
        #expect(text.hasPrefix("seq=0 at=\(startTime.iso8601) type=genesis format=carteira-journal/1 hash="))

        try directory.writeJournal([])
        let again = try Journal.open(directory: directory.path, policy: KeyPolicy(), now: startTime)
        #expect(again.genesisWritten)
        await again.writer.shutdown()
        again.lock.release()
        #expect(try journalLines(directory).count == 1)
    }

    @Test("a second open of a locked directory, even in this process, fails naming our pid")
    func lockHeld() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let opened = try Journal.open(directory: directory.path, policy: KeyPolicy(), now: startTime)
        #expect(throws: JournalError.lockHeld(pid: getpid())) {
            _ = try Journal.open(directory: directory.path, policy: KeyPolicy(), now: startTime)
        }
        #expect(throws: JournalError.lockHeld(pid: getpid())) {
            _ = try JournalRepair.repair(directory: directory.path)
        }
        await opened.writer.shutdown()
        opened.lock.release()
        let again = try Journal.open(directory: directory.path, policy: KeyPolicy(), now: startTime)
        await again.writer.shutdown()
        again.lock.release()
    }
}
