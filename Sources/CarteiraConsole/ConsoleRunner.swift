#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import CarteiraCore
public import CarteiraTerminal

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
    private let editor = Locked<LineEditor?>(nil)
    private let pager: Pager
    /// Lines printed while the pager shows a command's output: printed
    /// after it, so they do not garble its screen. Nil when not paging.
    private let heldWhilePaging = Locked<[String]?>(nil)
    /// `printAbove` lines held while paging; more are dropped.
    static let heldLimit = 1000

    /// - Parameters:
    ///   - interactive: true when `input` is a terminal (see `isTerminal(fd:)`):
    ///     line editing and a prompt; false reads plain lines.
    ///   - historyPath: the history file for interactive use; see `defaultHistoryPath`.
    ///   - output: where commands' output goes.
    ///   - diagnostics: on a pipe, where everything else goes (errors,
    ///     "shutting down", `printAbove`), so `output` carries only what a
    ///     script parses; on a terminal everything is printed above the prompt.
    ///   - pager: on a terminal, long output goes through it (`\pager`);
    ///     `$PAGER`, else `less`, else `more` unless given.
    public init(
        backend: any ConsoleBackend, interactive: Bool, historyPath: String? = ConsoleRunner.defaultHistoryPath(),
        time: @escaping TimeFormatter = TerminalTime.local, input: Int32 = 0,
        output: Int32 = 1, diagnostics: Int32 = 2, pager: PagerCommand? = PagerCommand.fromEnvironment()
    ) {
        let terminal = output
        let width: @Sendable () -> Int? = { interactive ? Terminal.columns(fd: terminal) : nil }
        self.pager = Pager(command: pager, output: output, diagnostics: diagnostics)
        self.interpreter = ConsoleInterpreter(
            backend: backend, time: time, width: width, confirmsShutdown: interactive)
        self.interactive = interactive
        self.historyPath = historyPath
        self.input = input
        self.output = output
        self.diagnostics = diagnostics
    }

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
        let held = heldWhilePaging.withLock { held -> Bool in
            guard held != nil else { return false }
            if held?.count ?? 0 < Self.heldLimit { held?.append(text) }
            return true
        }
        if held { return }
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
            let paging = DedicatedThread(name: "carteira-pager")
            while let line = await lineEditor.nextLine() {
                let print = { (text: String, stream: ConsoleOutput.Stream) async in
                    if stream == .output, self.interpreter.pagerOn, self.pager.wouldPage(text) {
                        await self.page(text, on: paging)
                    } else {
                        lineEditor.printAbove(text)
                    }
                }
                if let ending = await execute(line, print: print) {
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
    private func execute(_ line: String, print: (String, ConsoleOutput.Stream) async -> Void) async -> Ending? {
        let result = await interpreter.run(line)
        if !result.text.isEmpty { await print(result.text, result.stream) }
        switch result.action {
        case .continue:
            return nil
        case .quit, .shutdown:
            await interpreter.backend.shutdown()
            return .shutdown
        }
    }

    /// Shows `text` through the pager, between two prompts (readline is
    /// not reading, so the terminal is the pager's), holding lines printed
    /// meanwhile until it exits.
    private func page(_ text: String, on thread: DedicatedThread) async {
        heldWhilePaging.withLock { $0 = [] }
        await thread.run { [pager] in pager.print(text) }
        let held = heldWhilePaging.withLock { held in
            defer { held = nil }
            return held ?? []
        }
        for line in held { printAbove(line) }
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

/// The machine names and keys Tab offers, refreshed after each command so
/// the readline thread never waits on the server.
private final class CompletionWords: Sendable {
    private let words = Locked<([MachineName], [PaymentKey], [String])>(([], [], []))

    var current: ([MachineName], [PaymentKey], [String]) { words.withLock { $0 } }

    func update(machines: [MachineName], keys: [PaymentKey], transfers: [String]) {
        words.withLock { $0 = (machines, keys, transfers) }
    }
}
