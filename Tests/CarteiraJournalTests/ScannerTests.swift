import CarteiraTestSupport
import CarteiraCore
import Testing

@testable import CarteiraJournal

@Suite("Journal scanner")
struct ScannerTests {
    @Test("lines split across read chunks of any size replay the same, and a torn tail is found at the same offset")
    func chunkBoundaries() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let live = try await writeJournal(in: directory) { $0.randomActivity(events: 60) }
        let whole = try directory.journalBytes()
        for chunk in [1, 7, 100, 333, 4096] {
            let scan = try JournalScanner.scan(
                path: directory.journalPath, policy: KeyPolicy(), passOverIncompleteLine: false, chunkBytes: chunk)
            #expect(LedgerSnapshot(scan.ledger) == LedgerSnapshot(live), "chunk \(chunk)")
            #expect(scan.goodEnd == Int64(whole.count))
            #expect(!scan.torn)
        }
        try directory.appendJournal(Array("seq=99 at=2026".utf8))
        for chunk in [1, 7, 100] {
            let scan = try JournalScanner.scan(
                path: directory.journalPath, policy: KeyPolicy(), passOverIncompleteLine: false, chunkBytes: chunk)
            #expect(scan.torn)
            #expect(scan.goodEnd == Int64(whole.count))
        }
    }

    @Test("a run of more than 4096 bytes without a newline or NUL is corruption, not a torn tail")
    func overlongLine() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        _ = try await writeJournal(in: directory, smallActivity)
        try directory.appendJournal([UInt8](repeating: UInt8(ascii: "x"), count: 5000))
        #expect(throws: JournalError.corrupt(line: 9, reason: "no end of line within 4096 bytes")) {
            _ = try open(directory)
        }
    }
}
