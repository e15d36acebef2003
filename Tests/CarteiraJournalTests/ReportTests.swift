import CarteiraTestSupport
import CarteiraCore
import Foundation
import Testing

@testable import CarteiraJournal

@Suite("Off-line journal reports")
struct ReportTests {
    @Test("verify's summary counts events, machines, transfers, total money and names the last seq and hash")
    func summary() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        _ = try await writeJournal(in: directory, smallActivity)
        let summary = try JournalVerifier.verify(directory: directory.path)
        #expect(summary.events == 8)
        #expect(summary.machines == 3)
        #expect(summary.transfers == 3)
        #expect(summary.totalMoney == Centavos(30_000))
        let lastLine = try #require(try journalLines(directory).last)
        #expect(lastLine.hasSuffix(" hash=\(summary.lastHash)"))
    }

    @Test("verify and repair on a directory without a journal fail with the path")
    func missingJournal() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        #expect(throws: JournalError.io("no journal at \(directory.journalPath)")) {
            _ = try JournalVerifier.verify(directory: directory.path)
        }
        #expect(throws: JournalError.self) { _ = try JournalRepair.repair(directory: directory.path) }
    }
}
