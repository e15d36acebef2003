import CarteiraTestSupport
import Foundation
import Testing

/// The console commands that take `--format` (CONSOLE.md), so a new one
/// cannot be left out of the JSON test.
enum ConsoleCommandNames {
    static let printingRows = [
        "machines", "machine", "balance", "history", "statement", "tx", "sessions", "stats", "verify",
    ]
}

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
        #expect(server.child.errors.text.contains("unknown command nonsense"))
        #expect(!server.child.output.text.contains("nonsense"))
    }

    @Test("On a pipe, standard output carries only the commands' output: it parses as JSON (regression)")
    func standardOutputIsOnlyOutput() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try await ServerProcess(journal: directory + "/journal", extra: ["--console"])
        let peer = try LineSocket(port: server.port)
        #expect(peer.request("REGISTER|alice")?.hasPrefix("OK|") == true)
        server.child.write("machines --format json\nbogus\nshutdown\n")
        #expect(await server.child.exitStatus() == 0)
        _ = await eventually(within: 5) { server.child.output.isClosed && server.child.errors.isClosed }
        // As `| jq .` would see it: the whole of standard output is one JSON value.
        let value = try JSONSerialization.jsonObject(with: Data(server.child.output.text.utf8))
        let rows = try #require(value as? [[String: Any]])
        #expect(rows.map { $0["machine"] as? String } == ["alice"])
        let errors = server.child.errors.text
        for line in ["listening on", "carteira console on", "unknown command bogus", "shutting down"] {
            #expect(errors.contains(line), "\(line) not on standard error: \(errors)")
        }
    }

    @Test("Every console command that prints rows, through a pipe with --format json, prints one line of JSON")
    func everyCommandAsJSON() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try await ServerProcess(journal: directory + "/journal", extra: ["--console"])
        // The head is in the start-up log, for auditors to write down.
        #expect(server.child.errors.text.contains("journal.last_hash="))
        let alice = try LineSocket(port: server.port)
        let bob = try LineSocket(port: server.port)
        let aliceKey = try #require(alice.request("REGISTER|alice")?.split(separator: "|").dropFirst(3).first)
        let bobKey = try #require(bob.request("REGISTER|bob")?.split(separator: "|").dropFirst(3).first)
        #expect(alice.request("SEND|\(bobKey)|12,34")?.hasPrefix("OK|") == true)
        let commands = [
            "machines", "MACHINES --sort balance", "machine alice", "balance alice", "balance \(aliceKey)",
            "balance bob --at 2", "balance bob --at 2999-01-01", "history", "history --from alice --to bob",
            "history --since 2000-01-01 00:00 --until 2999-12-31", "statement bob",
            "statement alice --since 2000-01-01",
            "tx 3", "tx T000000000003", "sessions", "stats", "verify",
        ]
        for command in ConsoleCommandNames.printingRows {
            #expect(commands.contains { $0.lowercased().hasPrefix(command) }, "\(command) is not tried")
        }
        server.child.write(commands.map { $0 + " --format json\n" }.joined() + "shutdown\n")
        #expect(await server.child.exitStatus() == 0)
        _ = await eventually(within: 5) { server.child.output.isClosed }
        let lines = server.child.output.text.split(separator: "\n")
        #expect(lines.count == commands.count, "\(server.child.output.text)\n\(server.child.errors.text)")
        for (command, line) in zip(commands, lines) {
            let value = try JSONSerialization.jsonObject(with: Data(line.utf8))
            let rows = try #require(value as? [[String: Any]], "\(command): \(line)")
            #expect(!rows.isEmpty || command.hasPrefix("history --since"), "\(command)")
        }
        // A few values, to show they are the state's.
        let balanceAt2 = try JSONSerialization.jsonObject(with: Data(lines[5].utf8)) as? [[String: Any]]
        #expect(balanceAt2?.first?["balance_cents"] as? Int == 10_000)
        let stats = try JSONSerialization.jsonObject(with: Data(lines[15].utf8)) as? [[String: Any]]
        #expect((stats?.first?["last_hash"] as? String)?.count == 64)
        #expect(stats?.first?["last_seq"] as? Int == 3)
        let verify = try JSONSerialization.jsonObject(with: Data(lines[16].utf8)) as? [[String: Any]]
        #expect(verify?.first?["verdict"] as? String == "ok")
        #expect(verify?.first?["last_hash"] as? String == stats?.first?["last_hash"] as? String)
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
