import CarteiraTestSupport
import Foundation
import Testing

@Suite("The admin console on a pipe, with the server run as a process", .timeLimit(.minutes(2)))
struct ConsolePipeTests {
    @Test("machines, history, stats and machines --format json show live state; shutdown exits 0")
    func commandsThenShutdown() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try await ServerProcess(journal: directory + "/journal", extra: ["--console"])
        let alice = try LineSocket(port: server.port)
        let bob = try LineSocket(port: server.port)
        _ = alice.request("REGISTER|alice")
        let bobKey = try #require(bob.request("REGISTER|bob")?.split(separator: "|").dropFirst(3).first)
        let sent = try #require(alice.request("SEND|\(bobKey)|12,34"))
        let tx = try #require(sent.split(separator: "|").dropFirst().first)

        // An acknowledged transfer shows up in the very next command.
        server.child.write("machines\nhistory\nstats\n")
        let shown = await server.child.waitForOutput { text in
            text.contains("money in circulation") && text.contains(String(tx))
        }
        #expect(shown, "\(server.child.output.text)")
        let output = server.child.output.text
        #expect(output.contains("R$ 87,66") && output.contains("R$ 112,34"))
        #expect(output.contains("R$ 200,00"))

        let before = output.count
        server.child.write("machines --format json\n")
        let jsonShown = await server.child.waitForOutput { $0.dropFirst(before).contains("]") }
        #expect(jsonShown)
        let jsonText = String(server.child.output.text.dropFirst(before))
        let start = try #require(jsonText.firstIndex(of: "["))
        let end = try #require(jsonText.lastIndex(of: "]"))
        let rows = try #require(
            try JSONSerialization.jsonObject(with: Data(jsonText[start...end].utf8)) as? [[String: Any]])
        let balances = Dictionary(
            uniqueKeysWithValues: rows.compactMap { row in
                (row["machine"] as? String).map { ($0, row["balance_cents"] as? Int ?? -1) }
            })
        #expect(balances == ["alice": 8766, "bob": 11234])

        // rotate: journaled with reason=admin and pushed to the machine's sessions.
        let oldKey = try #require(alice.request("KEY")?.split(separator: "|").dropFirst().first)
        server.child.write("rotate alice\nverify\n")
        let push = try #require(alice.readLine())
        #expect(push.hasPrefix("EVT|key|") && !push.contains(oldKey))
        #expect(await server.child.waitForOutput { $0.contains("last hash") })
        let journalText = try String(contentsOfFile: directory + "/journal/ledger.journal", encoding: .utf8)
        #expect(journalText.contains("type=key_rotated machine=alice ") && journalText.contains(" reason=admin "))

        server.child.write("nonsense\nshutdown\n")
        #expect(await server.child.exitStatus() == 0)
        #expect(server.child.output.text.contains("nonsense"))
    }

    @Test("End of input ends the console, not the server")
    func endOfInputKeepsServing() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try await ServerProcess(journal: directory + "/journal", extra: ["--console"])
        server.child.write("stats\n")
        #expect(await server.child.waitForOutput { $0.contains("uptime") })
        server.child.closeInput()
        #expect(await eventually(within: 10) { server.child.errors.text.contains("Console input ended") })
        // Still serving after the console ended.
        let peer = try LineSocket(port: server.port)
        #expect(peer.request("REGISTER|carol")?.hasPrefix("OK|carol|") == true)
        #expect(server.child.process.isRunning)
        #expect(await server.stop() == 0)
    }
}
