import CarteiraTestSupport
import Foundation
import Testing

@Suite("carteira-server run as a process", .timeLimit(.minutes(2)))
struct ServerProcessTests {
    @Test("It prints the port it bound, serves peers, and stops on SIGTERM with exit 0 and a durable journal")
    func serveAndStop() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let journal = directory + "/journal"
        let server = try await ServerProcess(journal: journal)
        let peer = try LineSocket(port: server.port)
        let registered = try #require(peer.request("REGISTER|alice"))
        #expect(registered.hasPrefix("OK|alice|"))
        #expect(await server.stop() == 0)
        let text = try String(contentsOfFile: journal + "/ledger.journal", encoding: .utf8)
        #expect(text.contains("type=registered machine=alice "))
    }

    @Test(
        "SIGTERM the moment it says it is listening stops it gracefully with exit 0, every time",
        arguments: [["--no-console"], ["--console"]])
    func stopRightAfterListening(extra: [String]) async throws {
        // The shell signals as soon as it reads the line; a test's polling
        // would come too late to see the race. Before the handlers were
        // trapped ahead of the line, most such starts ended by the signal's
        // default action.
        let script = #"""
            for i in 1 2 3 4 5; do
              d=$(mktemp -d)
              coproc S { exec "$0" --port 0 --journal "$d/journal" "$@" 2>&1; }
              pid=$S_PID
              while read -t 20 -r line <&"${S[0]}"; do case $line in *"listening on"*) break;; esac; done
              kill -TERM "$pid"; wait "$pid"; echo "exit $?"; rm -rf "$d"
            done
            """#
        let server = productsDirectory.appendingPathComponent("carteira-server").path
        let result = try await runToEnd("/bin/bash", ["-c", script, server] + extra)
        #expect(result.output == String(repeating: "exit 0\n", count: 5), "\(result.errors)")
    }

    @Test("A torn tail cut at start-up is logged with its line and byte offset, then the replay with its time")
    func tornTailLogged() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let journal = directory + "/journal"
        let first = try await ServerProcess(journal: journal)
        let peer = try LineSocket(port: first.port)
        #expect(peer.request("REGISTER|alice")?.hasPrefix("OK|") == true)
        #expect(try LineSocket(port: first.port).request("REGISTER|bob")?.hasPrefix("OK|") == true)
        #expect(await first.stop() == 0)
        let path = journal + "/ledger.journal"
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("seq=3 at=2026-12-01T13:".utf8))
        try handle.close()

        let second = try await ServerProcess(journal: journal)
        let line = try #require(
            await second.child.loggedLine(containing: "Cut a torn tail"), "\(second.child.errors.text)")
        // Genesis, alice, bob: the torn line is line 4.
        #expect(line.contains("journal.line=4"), "\(line)")
        #expect(line.contains("journal.offset=\(size)"), "\(line)")
        let summary = try #require(
            await second.child.loggedLine(containing: "Journal replayed"), "\(second.child.errors.text)")
        #expect(summary.contains("journal.events=3 "), "\(summary)")
        let field = summary.split(separator: " ").first { $0.hasPrefix("journal.replay_ms=") }
        #expect(field.flatMap { Int($0.dropFirst("journal.replay_ms=".count)) } != nil, "\(summary)")
        #expect(await second.stop() == 0)
    }

    @Test("A second server on the same journal refuses to start and names the holder's PID")
    func lockRefusesSecondServer() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let journal = directory + "/journal"
        let first = try await ServerProcess(journal: journal)
        let second = try ChildProcess("carteira-server", ["--port", "0", "--journal", journal, "--no-console"])
        let status = await second.exitStatus()
        #expect(status != nil && status != 0)
        #expect(second.errors.text.contains("\(first.child.process.processIdentifier)"))
        #expect(await first.stop() == 0)
    }

    @Test(
        "--initial-balance takes a request amount or zero", arguments: [("25,50", "2550"), ("0", "0"), ("0,00", "0")])
    func initialBalance(amount: String, cents: String) async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try await ServerProcess(
            journal: directory + "/journal", extra: ["--no-console", "--initial-balance", amount])
        let peer = try LineSocket(port: server.port)
        #expect(peer.request("REGISTER|alice")?.hasSuffix("|\(cents)") == true)
        #expect(await server.stop() == 0)
    }

    @Test("Bad flags are refused with a usage error before anything starts")
    func badFlags() async throws {
        for arguments in [
            ["--initial-balance", "abc"], ["--initial-balance", ",00"], ["--key-ttl", "0"], ["--key-grace", "-1"],
            ["--port", "70000"], ["--max-clients", "0"], ["--bogus"],
        ] {
            let child = try ChildProcess("carteira-server", arguments + ["--journal", "/nonexistent/never"])
            #expect(await child.exitStatus() == 64, "\(arguments)")
        }
    }
}
