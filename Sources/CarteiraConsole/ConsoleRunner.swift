#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import CarteiraCore
import Synchronization

/// Runs the admin console: reads commands from the line editor (a terminal)
/// or one a line from a pipe, runs them through `ConsoleInterpreter`, and
/// prints their output.
///
/// `run()` is async; the blocking reads happen on a dedicated thread. To stop
/// the console from outside (the server shutting down for SIGTERM), cancel
/// the task running `run()`.
public final class ConsoleRunner: Sendable {
    public static let prompt = "carteira> "
    public static let interruptReminder =
        "(type quit or shutdown to stop the server, or press Ctrl-D on an empty line)"

    /// How the console ended.
    public enum Ending: Sendable, Hashable {
        /// `quit`, `shutdown` or Ctrl-D: `backend.shutdown()` was called.
        case shutdown
        /// The pipe ended: the server goes on.
        case endOfInput
        /// The task running `run()` was cancelled.
        case cancelled
        /// The terminal could not be set up (or read); the server goes on.
        case failed(String)
    }

    public let interactive: Bool
    public let historyPath: String?
    private let interpreter: ConsoleInterpreter
    private let input: Int32
    private let output: Int32
    private let diagnostics: Int32
    private let completionWords = CompletionWords()
    private let editor = Mutex<LineEditor?>(nil)

    /// - Parameters:
    ///   - interactive: true when `input` is a terminal (see `isTerminal(fd:)`):
    ///     line editing and a prompt; false reads plain lines.
    ///   - historyPath: the history file for interactive use; see `defaultHistoryPath`.
    ///   - output: where commands' output goes.
    ///   - diagnostics: on a pipe, where everything else goes (errors,
    ///     "shutting down", `printAbove`), so `output` carries only what a
    ///     script parses; on a terminal everything is printed above the prompt.
    public init(
        backend: any ConsoleBackend, interactive: Bool, historyPath: String? = ConsoleRunner.defaultHistoryPath(),
        time: @escaping TimeFormatter = ConsoleTime.local, input: Int32 = 0,
        output: Int32 = 1, diagnostics: Int32 = 2
    ) {
        let terminal = output
        let width: @Sendable () -> Int? = { interactive ? terminalColumns(terminal) : nil }
        self.interpreter = ConsoleInterpreter(
            backend: backend, time: time, width: width, confirmsShutdown: interactive)
        self.interactive = interactive
        self.historyPath = historyPath
        self.input = input
        self.output = output
        self.diagnostics = diagnostics
    }

    public static func isTerminal(fd: Int32) -> Bool { isatty(fd) == 1 }

    /// `$CARTEIRA_HISTORY`, else `~/.carteira_history`; nil without a home.
    public static func defaultHistoryPath() -> String? {
        if let path = getenv("CARTEIRA_HISTORY").map({ String(cString: $0) }), !path.isEmpty { return path }
        guard let home = getenv("HOME").map({ String(cString: $0) }), !home.isEmpty else { return nil }
        return home + "/.carteira_history"
    }

    /// The line the server prints when the console starts.
    public static func banner(listeningOn address: String) -> String {
        "carteira console on \(address): type help for the commands, quit or shutdown to stop the server"
    }

    /// Prints a line (a log line, a banner) above the prompt, or to the
    /// diagnostics stream when no prompt is shown. From any thread.
    public func printAbove(_ text: String) {
        if let editor = editor.withLock({ $0 }) {
            editor.printAbove(text)
        } else {
            writeAll(diagnostics, text + "\n")
        }
    }

    /// Reads and runs commands until `quit`/`shutdown`/Ctrl-D (then calls
    /// `backend.shutdown()`), the end of a piped input, or cancellation.
    public func run() async -> Ending {
        interactive ? await runInteractive() : await runPiped()
    }

    private func runPiped() async -> Ending {
        let reader: FileLineReader
        do {
            reader = try FileLineReader(fd: input)
        } catch {
            return .failed(error.description)
        }
        let thread = DedicatedThread(name: "carteira-console")
        return await withTaskCancellationHandler {
            while let line = await thread.run({ reader.readLine() }) {
                let print = { (text: String, stream: ConsoleOutput.Stream) in
                    writeAll(stream == .output ? self.output : self.diagnostics, text + "\n")
                }
                if let ending = await execute(line, print: print) {
                    return ending
                }
            }
            return Task.isCancelled ? .cancelled : .endOfInput
        } onCancel: {
            reader.close()
        }
    }

    private func runInteractive() async -> Ending {
        let words = completionWords
        let lineEditor: LineEditor
        do {
            lineEditor = try LineEditor(
                prompt: Self.prompt, historyPath: historyPath, interruptReminder: Self.interruptReminder,
                input: input, output: output, keepsOutOfHistory: ConsoleInterpreter.staysOutOfHistory
            ) { before, word in
                let (machines, keys, transfers) = words.current
                return ConsoleCompletion.candidates(
                    lineBeforeWord: before, word: word, machines: machines, keys: keys, transfers: transfers)
            }
        } catch {
            return .failed("cannot start the line editor: \(error)")
        }
        editor.withLock { $0 = lineEditor }
        defer {
            editor.withLock { $0 = nil }
            lineEditor.close()
        }
        await refreshCompletions()
        return await withTaskCancellationHandler {
            while let line = await lineEditor.nextLine() {
                if let ending = await execute(line, print: { text, _ in lineEditor.printAbove(text) }) {
                    return ending
                }
                await refreshCompletions()
            }
            if Task.isCancelled { return .cancelled }
            // Ctrl-D on an empty line is quit.
            await interpreter.backend.shutdown()
            return .shutdown
        } onCancel: {
            lineEditor.close()
        }
    }

    /// Runs one line and prints its output; the ending if the console ends.
    private func execute(_ line: String, print: (String, ConsoleOutput.Stream) -> Void) async -> Ending? {
        let result = await interpreter.run(line)
        if !result.text.isEmpty { print(result.text, result.stream) }
        switch result.action {
        case .continue:
            return nil
        case .quit, .shutdown:
            await interpreter.backend.shutdown()
            return .shutdown
        }
    }

    private func refreshCompletions() async {
        let ledger = await interpreter.backend.ledger()
        let machines = ledger.machines.keys.sorted()
        let keys = machines.compactMap { ledger.machines[$0]?.key }
        let transfers = ledger.history(limit: Self.transfersCompleted).map(\.tx.text)
        completionWords.update(machines: machines, keys: keys, transfers: transfers)
    }

    /// Tab offers the newest transfers' ids after `tx`.
    static let transfersCompleted = 100
}

/// The terminal's width in columns, or nil when it cannot be read.
func terminalColumns(_ fd: Int32) -> Int? {
    var size = winsize()
    guard ioctl(fd, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return nil }
    return Int(size.ws_col)
}

/// The machine names and keys Tab offers, refreshed after each command so
/// the readline thread never waits on the server.
private final class CompletionWords: Sendable {
    private let words = Mutex<([MachineName], [PaymentKey], [String])>(([], [], []))

    var current: ([MachineName], [PaymentKey], [String]) { words.withLock { $0 } }

    func update(machines: [MachineName], keys: [PaymentKey], transfers: [String]) {
        words.withLock { $0 = (machines, keys, transfers) }
    }
}
