@testable import CarteiraConsole
import CarteiraCore
import CarteiraTerminal
import Foundation
import Testing

@Suite("The console runner reading a pipe")
struct ConsoleRunnerTests {
    /// A pipe whose write end gets `input` and is then closed (or left open).
    private func inputPipe(_ input: String, close: Bool = true) -> Pipe {
        let pipe = Pipe()
        pipe.fileHandleForWriting.write(Data(input.utf8))
        if close { try? pipe.fileHandleForWriting.close() }
        return pipe
    }

    @Test("on a pipe, commands run one a line with no prompt, and end of input returns without shutting down")
    func pipeEndOfInput() async throws {
        let backend = FakeBackend(ledger: try Fixture.ledger())
        let input = inputPipe("balance alpha\n\nbogus\nhistory --limit 1 --format csv")
        let output = Pipe()
        let diagnostics = Pipe()
        let runner = ConsoleRunner(
            backend: backend, interactive: false, historyPath: nil, time: TerminalTime.utc,
            input: input.fileHandleForReading.fileDescriptor, output: output.fileHandleForWriting.fileDescriptor,
            diagnostics: diagnostics.fileHandleForWriting.fileDescriptor)
        runner.printAbove("a log line")
        #expect(await runner.run() == .endOfInput)
        try output.fileHandleForWriting.close()
        try diagnostics.fileHandleForWriting.close()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(
            text == """
                alpha: R$ 88,16
                tx,time,from,to,amount_cents
                T000000000005,2026-11-26T19:00:05.000Z,beta,alpha,50

                """)
        // Errors and printed lines go apart, so standard output parses.
        let other = String(decoding: diagnostics.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(other == "a log line\nunknown command bogus; type help (or \\?) for the commands\n")
        #expect(await backend.shutdowns == 0)
    }

    @Test("quit on a pipe shuts the server down once and reads no further command")
    func pipeQuit() async throws {
        let backend = FakeBackend(ledger: try Fixture.ledger())
        let input = inputPipe("quit\nrotate alpha\n", close: false)
        let output = Pipe()
        let diagnostics = Pipe()
        let runner = ConsoleRunner(
            backend: backend, interactive: false, historyPath: nil, time: TerminalTime.utc,
            input: input.fileHandleForReading.fileDescriptor, output: output.fileHandleForWriting.fileDescriptor,
            diagnostics: diagnostics.fileHandleForWriting.fileDescriptor)
        #expect(await runner.run() == .shutdown)
        try output.fileHandleForWriting.close()
        try diagnostics.fileHandleForWriting.close()
        #expect(output.fileHandleForReading.readDataToEndOfFile().isEmpty)
        #expect(
            String(decoding: diagnostics.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                == "shutting down\n")
        #expect(await backend.shutdowns == 1)
        #expect(await backend.rotations.isEmpty)
    }

    @Test("cancelling the task ends a console blocked on a silent pipe")
    func pipeCancel() async throws {
        let backend = FakeBackend(ledger: try Fixture.ledger())
        let input = inputPipe("", close: false)
        let output = Pipe()
        let runner = ConsoleRunner(
            backend: backend, interactive: false, historyPath: nil, time: TerminalTime.utc,
            input: input.fileHandleForReading.fileDescriptor, output: output.fileHandleForWriting.fileDescriptor)
        let task = Task { await runner.run() }
        task.cancel()
        #expect(await task.value == .cancelled)
        #expect(await backend.shutdowns == 0)
    }

    @Test("the history path comes from CARTEIRA_HISTORY, else the home directory; isTerminal is false on a pipe")
    func environment() {
        let pipe = Pipe()
        #expect(!Terminal.isTerminal(fd: pipe.fileHandleForReading.fileDescriptor))
        let path = ConsoleRunner.defaultHistoryPath()
        if let override = ProcessInfo.processInfo.environment["CARTEIRA_HISTORY"], !override.isEmpty {
            #expect(path == override)
        } else if let home = ProcessInfo.processInfo.environment["HOME"], !home.isEmpty {
            #expect(path == home + "/.carteira_history")
        }
    }
}
