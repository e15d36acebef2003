import CarteiraTestSupport
import Foundation
import Testing

@Suite("kill -9 in the middle of a stream of payments", .timeLimit(.minutes(2)))
struct CrashTests {
    @Test("Every transfer acknowledged before the kill is in the journal, and a restart rebuilds consistent balances")
    func acknowledgedTransfersSurviveKill() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let journal = directory + "/journal"
        let server = try await ServerProcess(journal: journal)
        let alice = try LineSocket(port: server.port)
        let bob = try LineSocket(port: server.port)
        let aliceToken = try #require(alice.request("REGISTER|alice")?.split(separator: "|").dropFirst(2).first)
        let bobKey = try #require(bob.request("REGISTER|bob")?.split(separator: "|").dropFirst(3).first)

        // 20000 payments of R$ 0,01 pipelined; kill -9 after 500 answers.
        alice.send((0..<20000).map { "SEND|\(bobKey)|0,01|crash-\($0)\n" }.joined())
        var acknowledged: [String] = []
        while acknowledged.count < 500, let line = alice.readLine() {
            if line.hasPrefix("OK|") { acknowledged.append(String(line.split(separator: "|")[1])) }
        }
        server.child.signal(SIGKILL)
        // Answers already on the wire before the kill count as acknowledged too.
        while let line = alice.readLine() {
            if line.hasPrefix("OK|") { acknowledged.append(String(line.split(separator: "|")[1])) }
        }
        #expect(await server.child.exitStatus() != 0)
        #expect(acknowledged.count >= 500)
        #expect(acknowledged.count < 20000, "the kill came after the last payment")

        let restarted = try await ServerProcess(journal: journal)
        let text = try String(contentsOfFile: journal + "/ledger.journal", encoding: .utf8)
        let journaled = Set(
            text.split(separator: "\n").compactMap { line -> String? in
                guard line.contains(" type=transfer ") else { return nil }
                return line.split(separator: " ").first { $0.hasPrefix("tx=") }.map { String($0.dropFirst(3)) }
            })
        let missing = acknowledged.filter { !journaled.contains($0) }
        #expect(missing.isEmpty, "acknowledged but not journaled: \(missing.prefix(5))")
        let again = try LineSocket(port: restarted.port)
        #expect(again.request("LOGIN|alice|\(aliceToken)")?.hasPrefix("OK|") == true)
        #expect(again.request("BALANCE") == "OK|\(10_000 - journaled.count)")
        #expect(await restarted.stop() == 0)
    }
}
