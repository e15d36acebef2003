import CarteiraTestSupport
import Foundation
import Testing

@Suite("carteira-server journal export, and a PostgreSQL URL without the trait", .timeLimit(.minutes(2)))
struct JournalExportTests {
    func run(_ arguments: [String]) async throws -> (status: Int32?, output: String, errors: String) {
        try await runToEnd("carteira-server", arguments)
    }

    @Test("export of a file journal writes its lines, after checking them")
    func exportFile() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let journal = directory + "/journal"
        let server = try await ServerProcess(journal: journal)
        let alice = try LineSocket(port: server.port)
        #expect(alice.request("REGISTER|alice")?.hasPrefix("OK|") == true)
        #expect(await server.stop() == 0)

        let exported = try await run(["journal", "export", journal])
        #expect(exported.status == 0)
        let file = try String(contentsOfFile: journal + "/ledger.journal", encoding: .utf8)
        #expect(exported.output == file)
        #expect(exported.output.split(separator: "\n").count == 2)

        // A damaged journal is not exported as good.
        try (file + "seq=2 junk\n").write(toFile: journal + "/ledger.journal", atomically: true, encoding: .utf8)
        let refused = try await run(["journal", "export", journal])
        #expect(refused.status == 1)
        #expect(refused.output.isEmpty)
        #expect(refused.errors.contains("line 3"))
    }

    #if !Postgres
        @Test("a postgres:// journal on a build without the trait is refused, saying how to build one")
        func withoutTrait() async throws {
            for arguments in [
                ["--journal", "postgres://carteira@127.0.0.1:1/ledger", "--no-console"],
                ["journal", "verify", "postgres://carteira@127.0.0.1:1/ledger"],
                ["journal", "replay", "--at", "3", "postgres://carteira@127.0.0.1:1/ledger"],
                ["journal", "statement", "alice", "postgres://carteira@127.0.0.1:1/ledger"],
                ["journal", "export", "postgres://carteira@127.0.0.1:1/ledger"],
            ] {
                let result = try await run(arguments)
                #expect(result.status == 1, "\(arguments)")
                #expect(result.errors.contains("swift build --traits Postgres"), "\(arguments): \(result.errors)")
            }
        }
    #endif

    @Test("repair on a postgres:// journal is refused: a table has no torn tail")
    func repairRefusesATable() async throws {
        let result = try await run(["journal", "repair", "postgres://carteira:secret@127.0.0.1:1/ledger"])
        #expect(result.status == 1)
        #expect(result.errors.contains("a PostgreSQL table has no torn tail"))
        #expect(!result.errors.contains("secret"))
    }
}
