import CarteiraConsole
import CarteiraTerminal
import CarteiraTestSupport
import Foundation
import Testing

// Readline is process-wide: each test holds `TestGate.readline`, as the line
// editor's own tests do.
@Suite("The console runner on a pseudo-terminal", .serialized, .timeLimit(.minutes(1)))
struct ConsoleTerminalTests {
    @Test("on a terminal the runner prompts, runs commands, completes machine names, and Ctrl-D shuts down")
    func interactiveRunner() async throws {
        try await TestGate.readline.exclusively {
            let terminal = try PseudoTerminal()
            let directory = try TemporaryDirectory(prefix: "carteira-runner")
            defer { directory.remove() }
            let backend = FakeBackend(ledger: try Fixture.ledger())
            let runner = ConsoleRunner(
                backend: backend, interactive: true, historyPath: directory.path + "/history",
                time: TerminalTime.utc, input: terminal.slave, output: terminal.slave)
            let running = Task { await runner.run() }

            #expect(terminal.shows(ConsoleRunner.prompt))
            terminal.type("balance al\t")
            #expect(terminal.shows("balance alpha "))
            terminal.type("\r")
            #expect(terminal.shows("alpha: R$ 88,16"))
            #expect(terminal.shows(ConsoleRunner.prompt))
            runner.printAbove("a log line")
            #expect(terminal.shows("a log line"))
            terminal.type("\u{04}")
            #expect(await running.value == .shutdown)
            #expect(await backend.shutdowns == 1)
        }
    }

    @Test(
        "long output on a terminal goes whole through the pager, short output and \\pager off do not, and the prompt comes back"
    )
    func pagerOnTerminal() async throws {
        try await TestGate.readline.exclusively {
            // 12 rows: help (20 lines) is too long, a balance is not.
            let terminal = try PseudoTerminal(rows: 12, columns: 120)
            let directory = try TemporaryDirectory(prefix: "carteira-pager")
            defer { directory.remove() }
            let paged = directory.path + "/paged"
            let backend = FakeBackend(ledger: try Fixture.ledger())
            let runner = ConsoleRunner(
                backend: backend, interactive: true, historyPath: nil, time: TerminalTime.utc,
                input: terminal.slave, output: terminal.slave, pager: PagerCommand("cat >> '\(paged)'"))
            let help = await ConsoleInterpreter(backend: backend, time: TerminalTime.utc).run("help").text
            #expect(help.split(separator: "\n").count >= 12)
            let running = Task { await runner.run() }

            #expect(terminal.shows(ConsoleRunner.prompt))
            terminal.type("help\r")
            // The pager has exited once the next prompt is up.
            #expect(terminal.shows(ConsoleRunner.prompt))
            #expect(try String(contentsOfFile: paged, encoding: .utf8) == help + "\n")
            // Readline reads again, and short output is printed as it is.
            terminal.type("balance alpha\r")
            #expect(terminal.shows("alpha: R$ 88,16"))
            #expect(terminal.shows(ConsoleRunner.prompt))
            terminal.type("\\pager off\r")
            #expect(terminal.shows("Pager usage is off."))
            terminal.type("help\r")
            #expect(terminal.shows("as two words)"))
            #expect(terminal.shows(ConsoleRunner.prompt))
            terminal.type("\\pager\r")
            #expect(terminal.shows("Pager is used for long output."))
            #expect(try String(contentsOfFile: paged, encoding: .utf8) == help + "\n", "paged once only")
            terminal.type("quit\r")
            #expect(await running.value == .shutdown)
        }
    }
}
