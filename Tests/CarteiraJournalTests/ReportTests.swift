import CarteiraTestSupport
import CarteiraCore
import Foundation
import Testing

@testable import CarteiraJournal

@Suite("Off-line journal reports")
struct ReportTests {
    @Test("verify's summary names events, machines, transfers, total money in R$, last seq and hash")
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
        let text = JournalReport.summary(summary, directory: directory.path)
        #expect(text.contains("events       8\n"))
        #expect(text.contains("total money  R$ 300,00\n"))
        #expect(text.contains("last seq     7\n"))
        #expect(text.contains("last hash    \(summary.lastHash)\n"))
    }

    @Test("replay prints an aligned table by machine name and a JSON array in centavos")
    func replayTable() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let live = try await writeJournal(in: directory) { driver in
            driver.register("alice", balance: 123_456)
            driver.register("bob")
            driver.pay("alice", "bob", 56)
        }
        let ledger = try JournalVerifier.verify(directory: directory.path).ledger
        let alice = try #require(live.machines[MachineName("alice")!])
        let bob = try #require(live.machines[MachineName("bob")!])
        #expect(
            JournalReport.machineTable(ledger) == """
                MACHINE      BALANCE  KEY
                alice    R$ 1.234,00  \(alice.key)
                bob        R$ 100,56  \(bob.key)

                """)
        let json = JournalReport.machineJSON(ledger)
        let objects = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]])
        #expect(objects.map { $0["machine"] as? String } == ["alice", "bob"])
        #expect(objects.map { $0["balance_cents"] as? Int } == [123_400, 10_056])
        #expect(objects.map { $0["key"] as? String } == [alice.key.text, bob.key.text])
        #expect(JournalReport.machineJSON(Ledger()) == "[]\n")
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
