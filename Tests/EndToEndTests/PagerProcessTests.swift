import CarteiraTestSupport
import Foundation
import Testing

/// `program ARGS` on a pseudo-terminal of `rows` rows and 100 columns, with
/// `environment` added; the transcript and the driver's standard error.
private func onSizedTerminal(
    rows: Int, _ program: String, _ arguments: [String], steps: [[String]] = [], environment: [String: String]
) async throws -> (transcript: String, errors: String) {
    let run = try await onPseudoTerminal(
        program, arguments, steps: steps, rows: rows, columns: 100, environment: environment)
    return (run.transcript, run.errors)
}

@Suite("The pager in the real programs, on a pseudo-terminal", .timeLimit(.minutes(2)))
struct PagerProcessTests {
    @Test(
        "carteira history: through $PAGER on a terminal when longer than the screen, never on a pipe or with PAGER=''")
    func clientHistory() async throws {
        let peers = try await TwoPeers.start()
        for amount in ["1", "2", "3", "4"] {
            let sent = try await peers.run(["send", peers.bobKey, amount], as: "alice")
            try #require(sent.status == 0, "\(sent.errors)")
        }
        let paged = peers.directory + "/paged"
        let pager = ["PAGER": "cat >> '\(paged)'"]
        let arguments = ["--server", "127.0.0.1:\(peers.port)", "--state-dir", peers.state, "--machine", "alice"]

        // On a pipe: printed as it is, even with PAGER set.
        let piped = try await runToEnd("carteira", arguments + ["history"], environment: pager)
        #expect(piped.status == 0)
        let statement = piped.output
        #expect(statement.split(separator: "\n").count == 6, "\(statement)")
        #expect(!FileManager.default.fileExists(atPath: paged))

        // On a terminal of 6 rows the 6 lines go whole through the pager.
        let run = try await onSizedTerminal(rows: 6, "carteira", arguments + ["history"], environment: pager)
        #expect(run.errors.contains("EXIT 0"), "\(run.errors)\n\(run.transcript)")
        #expect(try String(contentsOfFile: paged, encoding: .utf8) == statement)
        #expect(!run.transcript.contains("received from bob") && !run.transcript.contains("sent to bob"))

        // A taller terminal, or PAGER='': printed on the terminal, no pager.
        for (rows, environment) in [(40, pager), (6, ["PAGER": ""])] {
            let direct = try await onSizedTerminal(
                rows: rows, "carteira", arguments + ["history"], environment: environment)
            #expect(direct.errors.contains("EXIT 0"), "\(direct.errors)")
            #expect(direct.transcript.contains("sent to bob"), "\(rows) rows: \(direct.transcript)")
        }
        #expect(try String(contentsOfFile: paged, encoding: .utf8) == statement, "paged once only")
        await peers.stop()
    }

    @Test("the server's console pages help on a short terminal, then prompts again and quits")
    func consoleHelp() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let paged = directory + "/paged"
        // The same help, through a pipe: printed as it is.
        let piped = try ChildProcess(
            "carteira-server", ["--console", "--port", "0", "--journal", directory + "/piped"],
            environment: ["PAGER": "cat >> '\(paged)'"])
        piped.write("help\n")
        piped.closeInput()
        #expect(await piped.waitForOutput { $0.contains("as two words)\n") })
        piped.signal(SIGTERM)
        _ = await piped.exitStatus()
        let help = piped.output.text
        #expect(!FileManager.default.fileExists(atPath: paged))

        let run = try await onSizedTerminal(
            rows: 10, "carteira-server", ["--console", "--port", "0", "--journal", directory + "/journal"],
            steps: [
                ["expect", "carteira> "], ["send", "help\r"], ["expect", "carteira> "], ["send", "quit\r"],
            ],
            environment: ["PAGER": "cat >> '\(paged)'", "CARTEIRA_HISTORY": directory + "/history"])
        #expect(run.errors.contains("EXIT 0"), "\(run.errors)\n\(run.transcript)")
        #expect(try String(contentsOfFile: paged, encoding: .utf8) == help)
        #expect(!run.transcript.contains("as two words)"))
    }
}
