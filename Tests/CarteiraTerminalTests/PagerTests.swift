import CarteiraTerminal
import CarteiraTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

// Running a pager changes SIGPIPE and SIGINT for a moment, process-wide:
// those tests hold `TestGate.readline`, as the line editor's tests do.
@Suite("The pager: when it is used, which one, and running it")
struct PagerTests {
    let screen = TerminalSize(rows: 24, columns: 80)

    func lines(_ count: Int, width: Int = 10) -> String {
        (1...count).map { String(repeating: "x", count: width - String($0).count) + String($0) }.joined(separator: "\n")
    }

    @Test("psql's rule: long or wide output on a terminal pages; short output, a pipe or an unknown size never does")
    func decision() {
        // 24 rows keep one for the prompt: 23 lines fit, 24 do not.
        #expect(!Pager.shouldPage(lines(23), isTerminal: true, size: screen))
        #expect(Pager.shouldPage(lines(24), isTerminal: true, size: screen))
        #expect(Pager.shouldPage(lines(1000), isTerminal: true, size: screen))
        // Wider than the terminal, in psql's way, even when short.
        #expect(!Pager.shouldPage(lines(3, width: 80), isTerminal: true, size: screen))
        #expect(Pager.shouldPage(lines(3, width: 81), isTerminal: true, size: screen))
        // Never on a pipe or a file, never without a size, never for nothing.
        #expect(!Pager.shouldPage(lines(1000), isTerminal: false, size: screen))
        #expect(!Pager.shouldPage(lines(3, width: 500), isTerminal: false, size: screen))
        #expect(!Pager.shouldPage(lines(1000), isTerminal: true, size: nil))
        #expect(!Pager.shouldPage("", isTerminal: true, size: TerminalSize(rows: 1, columns: 1)))
    }

    @Test("a Pager object decides with the terminal and size injected; PAGER='' or no pager means never")
    func injectedDecision() {
        let long = lines(100)
        let terminal = Pager(command: PagerCommand("cat"), isTerminal: { true }, size: { screen })
        #expect(terminal.wouldPage(long))
        #expect(!terminal.wouldPage(lines(5)))
        let pipe = Pager(command: PagerCommand("cat"), isTerminal: { false }, size: { screen })
        #expect(!pipe.wouldPage(long))
        let none = PagerCommand.from(environment: ["PAGER": ""], isOnPath: { _ in true })
        #expect(none == nil)
        #expect(!Pager(command: none, isTerminal: { true }, size: { screen }).wouldPage(long))
    }

    @Test("$PAGER wins (empty: none); else less with LESS=-FRX unless LESS is set; else more; else none")
    func choice() {
        let everything: (String) -> Bool = { _ in true }
        #expect(PagerCommand.from(environment: ["PAGER": "most -s"], isOnPath: everything) == PagerCommand("most -s"))
        #expect(PagerCommand.from(environment: ["PAGER": ""], isOnPath: everything) == nil)
        #expect(PagerCommand.from(environment: ["PAGER": "  "], isOnPath: everything) == nil)
        #expect(
            PagerCommand.from(environment: [:], isOnPath: everything)
                == PagerCommand("less", environment: ["LESS": "-FRX"]))
        #expect(PagerCommand.from(environment: ["LESS": "-S"], isOnPath: everything) == PagerCommand("less"))
        #expect(PagerCommand.from(environment: [:], isOnPath: { $0 == "more" }) == PagerCommand("more"))
        #expect(PagerCommand.from(environment: [:], isOnPath: { _ in false }) == nil)
        #expect(PagerCommand.isExecutable("sh", onPath: "/nonexistent:/bin"))
        #expect(!PagerCommand.isExecutable("no-such-pager-here", onPath: "/bin:/usr/bin"))
    }

    @Test("the pager gets the whole text on its standard input, with the environment the command asks for")
    func runsThePager() async throws {
        try await TestGate.readline.exclusively {
            let directory = try TemporaryDirectory(prefix: "carteira-pager")
            defer { directory.remove() }
            let text = lines(5000)
            let output = Pipe()
            let pager = Pager(
                command: PagerCommand(
                    "printf '%s\\n' \"$CARTEIRA_PAGER_TEST\" > '\(directory.path)/env'; cat > '\(directory.path)/paged'",
                    environment: ["CARTEIRA_PAGER_TEST": "from the command"]),
                output: output.fileHandleForWriting.fileDescriptor, isTerminal: { true }, size: { screen })
            pager.print(text)
            #expect(try String(contentsOfFile: directory.path + "/paged", encoding: .utf8) == text + "\n")
            #expect(try String(contentsOfFile: directory.path + "/env", encoding: .utf8) == "from the command\n")
            // Nothing was printed around the pager.
            try output.fileHandleForWriting.close()
            #expect(output.fileHandleForReading.readDataToEndOfFile().isEmpty)
        }
    }

    @Test("short output, or enabled: false, is printed as it is and the pager never starts")
    func printsDirectly() async throws {
        try await TestGate.readline.exclusively {
            let directory = try TemporaryDirectory(prefix: "carteira-pager")
            defer { directory.remove() }
            let output = Pipe()
            let pager = Pager(
                command: PagerCommand("cat > '\(directory.path)/paged'"),
                output: output.fileHandleForWriting.fileDescriptor, isTerminal: { true }, size: { screen })
            pager.print("short")
            pager.print(lines(100), enabled: false)
            try output.fileHandleForWriting.close()
            let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(printed == "short\n" + lines(100) + "\n")
            #expect(!FileManager.default.fileExists(atPath: directory.path + "/paged"))
        }
    }

    @Test("a pager quit before the end (EPIPE) neither kills the process nor blocks; SIGPIPE is put back")
    func quitEarly() async throws {
        try await TestGate.readline.exclusively {
            let directory = try TemporaryDirectory(prefix: "carteira-pager")
            defer { directory.remove() }
            // Far more than a pipe holds, to a pager that reads 10 bytes and leaves.
            let text = lines(200_000)
            let pager = Pager(
                command: PagerCommand("head -c 10 > '\(directory.path)/paged'"), isTerminal: { true }, size: { screen })
            let before = signal(SIGPIPE, SIG_DFL)
            signal(SIGPIPE, before)
            pager.print(text)
            #expect(try String(contentsOfFile: directory.path + "/paged", encoding: .utf8) == String(text.prefix(10)))
            let after = signal(SIGPIPE, SIG_DFL)
            signal(SIGPIPE, after)
            #expect(unsafeBitCast(after, to: Int.self) == unsafeBitCast(before, to: Int.self))
        }
    }

    @Test("a pager that cannot run: the text is printed as it is, and why is said once on the diagnostics")
    func cannotRun() async throws {
        try await TestGate.readline.exclusively {
            let output = Pipe()
            let diagnostics = Pipe()
            let pager = Pager(
                command: PagerCommand("/nonexistent/pager"), output: output.fileHandleForWriting.fileDescriptor,
                diagnostics: diagnostics.fileHandleForWriting.fileDescriptor, isTerminal: { true }, size: { screen })
            let text = lines(50)
            pager.print(text)
            pager.print(text)
            try output.fileHandleForWriting.close()
            try diagnostics.fileHandleForWriting.close()
            let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(printed == text + "\n" + text + "\n")
            let said = String(decoding: diagnostics.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                .split(separator: "\n").filter { $0.hasPrefix("the pager") }
            #expect(said.count == 1, "\(said)")
            #expect(said.first?.contains("/nonexistent/pager") == true)
            #expect(said.first?.contains("status 127") == true)
            #expect(!pager.wouldPage(text), "not tried again")
        }
    }
}
