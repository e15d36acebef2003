import CarteiraTestSupport
import Foundation
import Testing

@Suite("carteira-server journal verify, replay and repair run as processes", .timeLimit(.minutes(2)))
struct JournalCommandTests {
    /// A journal with two machines and one transfer of R$ 12,34, written by a real server.
    func makeJournal() async throws -> (directory: String, journal: String) {
        let directory = try makeTemporaryDirectory()
        let journal = directory + "/journal"
        let server = try await ServerProcess(journal: journal)
        let alice = try LineSocket(port: server.port)
        let bob = try LineSocket(port: server.port)
        _ = alice.request("REGISTER|alice")
        let bobKey = try #require(bob.request("REGISTER|bob")?.split(separator: "|").dropFirst(3).first)
        #expect(alice.request("SEND|\(bobKey)|12,34")?.hasPrefix("OK|") == true)
        #expect(await server.stop() == 0)
        return (directory, journal)
    }

    func run(_ arguments: [String]) async throws -> (status: Int32?, output: String, errors: String) {
        try await runToEnd("carteira-server", ["journal"] + arguments)
    }

    @Test("verify summarises a sound journal; replay prints balances as a table and as JSON")
    func verifyAndReplay() async throws {
        let (directory, journal) = try await makeJournal()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let verified = try await run(["verify", journal])
        #expect(verified.status == 0)
        #expect(verified.output.contains("R$ 200,00"))
        #expect(verified.output.contains("transfers") && verified.output.contains("last hash"))

        let table = try await run(["replay", journal])
        #expect(table.status == 0)
        let lines = table.output.split(separator: "\n")
        #expect(lines.first?.hasPrefix("machine") == true)
        #expect(lines.contains { $0.hasPrefix("alice") && $0.contains("R$ 87,66") })
        #expect(lines.contains { $0.hasPrefix("bob") && $0.contains("R$ 112,34") })

        let json = try await run(["replay", journal, "--format", "json"])
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [[String: Any]])
        var balances: [String: Int] = [:]
        for row in rows {
            balances[try #require(row["machine"] as? String)] = row["balance_cents"] as? Int
        }
        #expect(balances == ["alice": 8766, "bob": 11234])
    }

    @Test("The awk example in docs/journal.md prints every transfer's amount (regression: it printed req)")
    func awkExampleInDocs() async throws {
        let (directory, _) = try await makeJournal()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/journal.md")
        let text = try String(contentsOf: docs, encoding: .utf8)
        let command = try #require(text.split(separator: "\n").first { $0.hasPrefix("awk ") })
        let awk = try ChildProcess("/bin/sh", ["-c", String(command)], directory: directory)
        awk.closeInput()
        #expect(await awk.exitStatus() == 0)
        _ = await eventually(within: 2) { awk.output.isClosed }
        // makeJournal's one transfer is R$ 12,34, sent with no request id.
        #expect(awk.output.text == "1234\n", "\(awk.errors.text)")
    }

    @Test("A changed byte is refused with its line number by verify, and by the server at start-up")
    func corruption() async throws {
        let (directory, journal) = try await makeJournal()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = journal + "/ledger.journal"
        var text = try String(contentsOfFile: path, encoding: .utf8)
        // Line 2 is alice's registration: give her more money.
        text = text.replacingOccurrences(of: "balance=10000", with: "balance=90000", options: [], range: nil)
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))

        let verified = try await run(["verify", journal])
        #expect(verified.status == 1)
        #expect(verified.errors.contains("line 2"))
        let server = try ChildProcess("carteira-server", ["--port", "0", "--journal", journal, "--no-console"])
        #expect(await server.exitStatus() == 1)
        #expect(server.errors.text.contains("line 2"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
    }

    @Test("A torn tail fails verify, is cut by repair (bytes kept), and the server starts with the whole lines")
    func tornTail() async throws {
        let (directory, journal) = try await makeJournal()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = journal + "/ledger.journal"
        let whole = try Data(contentsOf: URL(fileURLWithPath: path))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("seq=5 at=2026-11-26T19:22:30.000Z type=tran".utf8))
        try handle.close()

        let verified = try await run(["verify", journal])
        #expect(verified.status == 1)
        #expect(verified.errors.contains("\(whole.count)"))
        // The report: the four whole lines check, the torn one is line 5.
        #expect(verified.errors.contains("line 5 (byte \(whole.count)): torn tail"), "\(verified.errors)")
        #expect(verified.output.contains("verdict: FAILED"), "\(verified.output)")
        let repaired = try await run(["repair", journal])
        #expect(repaired.status == 0)
        #expect(repaired.output.contains("\(whole.count)"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == whole)
        let kept = try FileManager.default.contentsOfDirectory(atPath: journal).filter { $0.contains("torn") }
        #expect(kept.count == 1)
        #expect(try await run(["verify", journal]).status == 0)

        // The same damage at start-up: cut with a warning naming the offset.
        let handle2 = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle2.seekToEnd()
        try handle2.write(contentsOf: Data([0, 0, 0, 0]))
        try handle2.close()
        let server = try await ServerProcess(journal: journal)
        #expect(server.child.errors.text.contains("torn tail") && server.child.errors.text.contains("\(whole.count)"))
        let peer = try LineSocket(port: server.port)
        #expect(peer.request("PING") == "OK|PONG")
        #expect(await server.stop() == 0)
        #expect(try await run(["verify", journal]).status == 0)
    }

    @Test("A server that cannot bind leaves no new journal; a clean exit leaves a LOCK naming no process")
    func bindFailureAndStaleLock() async throws {
        let (directory, journal) = try await makeJournal()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(try String(contentsOfFile: journal + "/LOCK", encoding: .utf8).isEmpty)
        let server = try await ServerProcess(journal: journal)
        let fresh = directory + "/fresh"
        let second = try ChildProcess(
            "carteira-server", ["--port", String(server.port), "--journal", fresh, "--no-console"])
        #expect(await second.exitStatus() == 1)
        #expect(!FileManager.default.fileExists(atPath: fresh + "/ledger.journal"))
        #expect(await server.stop() == 0)
    }

    @Test("repair refuses while a server holds the journal; verify passes a live journal")
    func repairRefusesLiveJournal() async throws {
        let (directory, journal) = try await makeJournal()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try await ServerProcess(journal: journal)
        let repaired = try await run(["repair", journal])
        #expect(repaired.status == 1)
        #expect(repaired.errors.contains("\(server.child.process.processIdentifier)"))
        #expect(try await run(["verify", journal]).status == 0)
        #expect(await server.stop() == 0)
    }
}
