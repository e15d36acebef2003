import CarteiraTerminal
import CarteiraTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

// Readline is process-wide, one editor at a time: every test that opens one
// holds `TestGate.readline` (the console's runner tests too).
@Suite("Readline on a pseudo-terminal", .serialized, .timeLimit(.minutes(1)))
struct LineEditorTests {
    @Test(
        "Tab completes, Enter accepts and saves history, Up recalls, printAbove keeps the typed line, Ctrl-C clears, Ctrl-D ends"
    )
    func editing() async throws {
        try await TestGate.readline.exclusively { try await editingOnce() }
    }

    private func editingOnce() async throws {
        let terminal = try PseudoTerminal()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("carteira-editor-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let historyPath = directory.appendingPathComponent("history").path

        let editor = try LineEditor(
            prompt: "test> ", historyPath: historyPath, interruptReminder: "(reminder)", input: terminal.slave,
            output: terminal.slave
        ) { before, word in
            before.isEmpty ? ["machines", "machine", "help"].filter { $0.hasPrefix(word) } : ["alpha"]
        }
        defer { editor.close() }
        #expect(throws: LineEditorError.alreadyOpen) {
            _ = try LineEditor(prompt: "x> ", historyPath: nil) { _, _ in [] }
        }

        // Tab completes the common prefix; the typed rest is accepted.
        let completed = Task { await editor.nextLine() }
        #expect(terminal.shows("test> "))
        terminal.type("mach\t")
        #expect(terminal.shows("machine"))
        terminal.type("s\r")
        #expect(await completed.value == "machines")
        let saved = try String(contentsOfFile: historyPath, encoding: .utf8)
        #expect(saved.split(separator: "\n").last == "machines")

        // Up recalls the previous line.
        let recalled = Task { await editor.nextLine() }
        #expect(terminal.shows("test> "))
        terminal.type("\u{1b}[A\r")
        #expect(await recalled.value == "machines")

        // A line printed above the prompt leaves the typed text in place.
        let typed = Task { await editor.nextLine() }
        #expect(terminal.shows("test> "))
        terminal.type("abc")
        #expect(terminal.shows("abc"))
        editor.printAbove("log line 1")
        #expect(terminal.shows("log line 1"))
        #expect(terminal.shows("test> abc"))
        terminal.type("d\r")
        #expect(await typed.value == "abcd")

        // Ctrl-C (SIGINT) clears the line instead of ending the process.
        let cleared = Task { await editor.nextLine() }
        #expect(terminal.shows("test> "))
        terminal.type("xyz")
        #expect(terminal.shows("xyz"))
        kill(getpid(), SIGINT)
        #expect(terminal.shows("^C"))
        #expect(terminal.shows("test> "))
        terminal.type("ok\r")
        #expect(await cleared.value == "ok")

        // On an empty line Ctrl-C reminds how to leave; Ctrl-D ends.
        let ended = Task { await editor.nextLine() }
        #expect(terminal.shows("test> "))
        kill(getpid(), SIGINT)
        #expect(terminal.shows("(reminder)"))
        #expect(terminal.shows("test> "))
        terminal.type("\u{04}")
        #expect(await ended.value == nil)

        // close() ends a blocked read, and every later one.
        let closed = Task { await editor.nextLine() }
        #expect(terminal.shows("test> "), "a new prompt after Ctrl-D")
        editor.close()
        #expect(await closed.value == nil)
        #expect(await editor.nextLine() == nil)
    }
}
