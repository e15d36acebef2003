import CarteiraConsole
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The other side of a pseudo-terminal: what a person types and sees.
final class Terminal {
    let master: Int32
    let slave: Int32
    private var transcript: [UInt8] = []
    private var cursor = 0

    init() throws {
        // posix_openpt and friends are not in Swift's Glibc module; these
        // are the Linux ioctls behind them: TIOCSPTLCK (unlock), TIOCGPTN (number).
        master = open("/dev/ptmx", O_RDWR | O_NOCTTY)
        var unlock: Int32 = 0
        var number: UInt32 = 0
        guard master >= 0, ioctl(master, 0x4004_5431, &unlock) == 0, ioctl(master, 0x8004_5430, &number) == 0 else {
            throw POSIXError(.ENODEV)
        }
        slave = open("/dev/pts/\(number)", O_RDWR | O_NOCTTY)
        guard slave >= 0 else { throw POSIXError(.ENODEV) }
        var size = winsize(ws_row: 24, ws_col: 120, ws_xpixel: 0, ws_ypixel: 0)
        _ = ioctl(master, UInt(TIOCSWINSZ), &size)
    }

    deinit {
        close(slave)
        close(master)
    }

    func type(_ keys: String) {
        var bytes = Array(keys.utf8)
        _ = write(master, &bytes, bytes.count)
    }

    /// Waits (with a deadline) until `text` appears on the screen after
    /// whatever the previous wait found; true if it did.
    func shows(_ text: String, within seconds: Double = 10) -> Bool {
        let wanted = Array(text.utf8)
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            if let found = find(wanted) {
                cursor = found + wanted.count
                return true
            }
            guard Date() < deadline else { return false }
            var descriptor = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 50) > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let count = read(master, &chunk, chunk.count)
            if count > 0 { transcript += chunk[0..<count] }
        }
    }

    private func find(_ wanted: [UInt8]) -> Int? {
        guard transcript.count - cursor >= wanted.count else { return nil }
        for start in cursor...(transcript.count - wanted.count)
        where transcript[start..<(start + wanted.count)].elementsEqual(wanted) {
            return start
        }
        return nil
    }
}

// One suite, serialized: readline is process-wide, one editor at a time.
@Suite("Readline on a pseudo-terminal", .serialized, .timeLimit(.minutes(1)))
struct LineEditorTests {
    @Test(
        "Tab completes, Enter accepts and saves history, Up recalls, printAbove keeps the typed line, Ctrl-C clears, Ctrl-D ends"
    )
    func editing() async throws {
        let terminal = try Terminal()
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

    @Test("on a terminal the runner prompts, runs commands, completes machine names, and Ctrl-D shuts down")
    func interactiveRunner() async throws {
        let terminal = try Terminal()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("carteira-runner-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let backend = FakeBackend(ledger: try Fixture.ledger())
        let runner = ConsoleRunner(
            backend: backend, interactive: true, historyPath: directory.appendingPathComponent("history").path,
            time: ConsoleTime.utc, input: terminal.slave, output: terminal.slave)
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
