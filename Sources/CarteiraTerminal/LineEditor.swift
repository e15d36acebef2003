// The one file that imports readline (DESIGN.md: the C edge is fenced).
import CarteiraCore
import CReadline
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A GNU readline line editor: prompt, history kept in a file across runs,
/// Tab completion from the owner's closure, Ctrl-C that clears the line
/// instead of killing the process, and `printAbove` for lines that arrive
/// while the operator types.
///
/// Readline's state is process-wide, so only one editor may be open at a
/// time. `readLine()` blocks and must always be called from the same
/// dedicated thread; `nextLine()` does that for async callers.
/// `printAbove` and `close` may be called from any thread.
public final class LineEditor: Sendable {
    /// Candidates for the word being completed: `lineBeforeWord` is the text
    /// before it, `word` the part typed so far. Called on the readline thread.
    public typealias Completer = @Sendable (_ lineBeforeWord: String, _ word: String) -> [String]

    /// Lines kept in memory and in the history file.
    public static let historyLimit: Int32 = 1000
    /// `printAbove` lines waiting for the readline thread; more are dropped.
    static let pendingLimit = 1000

    public let prompt: String
    public let historyPath: String?
    /// The terminal's descriptors: standard input and output unless given.
    public let input: Int32
    public let output: Int32
    private let wakePipe: WakePipe
    private let state = Locked(EditorState())
    private let thread = DedicatedThread(name: "carteira-readline")

    /// Lines not kept in the history (`shutdown`).
    private let keepsOutOfHistory: @Sendable (String) -> Bool

    /// Printed when Ctrl-C is pressed on an empty line.
    public let interruptReminder: String

    public init(
        prompt: String, historyPath: String?, interruptReminder: String = "(type quit to leave)",
        input: Int32 = 0, output: Int32 = 1, keepsOutOfHistory: @escaping @Sendable (String) -> Bool = { _ in false },
        completer: @escaping Completer
    ) throws(LineEditorError) {
        self.keepsOutOfHistory = keepsOutOfHistory
        let claimed = shared.withLock { shared -> Bool in
            guard !shared.editorOpen else { return false }
            shared.editorOpen = true
            shared.completer = completer
            return true
        }
        guard claimed else { throw LineEditorError.alreadyOpen }
        do throws(TerminalIOError) {
            wakePipe = try WakePipe()
            guard carteira_rl_use_descriptors(input, output) == 0 else {
                wakePipe.close()
                throw TerminalIOError("fdopen", errno: errno)
            }
        } catch {
            shared.withLock { $0 = SharedState() }
            throw LineEditorError.system(error)
        }
        self.prompt = prompt
        self.historyPath = historyPath
        self.input = input
        self.output = output
        self.interruptReminder = interruptReminder

        carteira_rl_set_readline_name("carteira")
        // Readline must not install its own SIGINT handler: ours clears the line.
        carteira_rl_set_catch_signals(0)
        carteira_rl_set_attempted_completion_function(attemptCompletion)
        using_history()
        stifle_history(Self.historyLimit)
        if let historyPath {
            // append_history does not create the file, so make sure it exists.
            let fd = open(historyPath, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
            if fd >= 0 { closeDescriptor(fd) }
            _ = read_history(historyPath)
        }
        _ = carteira_install_sigint_pipe(wakePipe.writeEnd)
    }

    deinit {
        close()
        wakePipe.close()
    }

    // MARK: Reading

    /// What `readInput` read.
    public enum Input: Sendable, Hashable {
        case line(String)
        /// Ctrl-C: the line being typed was dropped.
        case interrupted
        /// Ctrl-D on an empty line, end of input, or the editor closed.
        case end
    }

    /// Reads one line with editing, showing `prompt` (the editor's own by
    /// default). `nil` on Ctrl-D on an empty line, at end of input, or once
    /// the editor is closed. Ctrl-C clears the line and keeps reading.
    /// Blocks the calling thread.
    public func readLine(prompt: String? = nil) -> String? {
        if case let .line(line) = read(prompt: prompt, returnOnInterrupt: false) { line } else { nil }
    }

    /// Like `readLine`, but Ctrl-C ends the read with `.interrupted`, for a
    /// caller that cancels what the line was for.
    public func readInput(prompt: String? = nil) -> Input {
        read(prompt: prompt, returnOnInterrupt: true)
    }

    /// `readInput(prompt:)` on the editor's own thread.
    public func nextInput(prompt: String? = nil) async -> Input {
        await thread.run { [self] in readInput(prompt: prompt) }
    }

    private func read(prompt: String?, returnOnInterrupt: Bool) -> Input {
        // A Ctrl-C pressed while no line was being edited is stale. Drained
        // before `reading` is set, so no wake-up for a queued line is lost.
        _ = wakePipe.drain()
        let started = state.withLock { state -> Bool in
            guard !state.closed else { return false }
            state.reading = true
            return true
        }
        guard started else { return .end }
        shared.withLock { $0.accepted = nil }
        rl_callback_handler_install(prompt ?? self.prompt, acceptLine)
        defer {
            // The line handler removes itself; remove it here on any other way out.
            if shared.withLock({ $0.accepted == nil }) { rl_callback_handler_remove() }
            let (drained, closed) = state.withLock { state in
                state.reading = false
                defer { state.pending.removeAll() }
                return (state.pending, state.closed)
            }
            for text in drained { writeOut(text + "\n") }
            if closed { releaseReadline() }
        }
        while true {
            switch waitForInput(input, or: wakePipe) {
            case .failed:
                return .end
            case .woken:
                let reasons = wakePipe.drain()
                let (texts, closed) = state.withLock { state in
                    defer { state.pending.removeAll() }
                    return (state.pending, state.closed)
                }
                if !texts.isEmpty { printAboveNow(texts) }
                if closed {
                    writeOut("\n")
                    return .end
                }
                if reasons.contains(UInt8(ascii: "i")) {
                    if returnOnInterrupt {
                        dropLine()
                        return .interrupted
                    }
                    interrupt()
                }
            case .input:
                rl_callback_read_char()
                if let accepted = shared.withLock({ $0.accepted }) {
                    guard let line = accepted else {
                        // Ctrl-D: end the prompt's line.
                        writeOut("\n")
                        return .end
                    }
                    if !keepsOutOfHistory(line) { remember(line) }
                    return .line(line)
                }
            }
        }
    }

    /// `readLine(prompt:)` on the editor's own thread.
    public func nextLine(prompt: String? = nil) async -> String? {
        await thread.run { [self] in readLine(prompt: prompt) }
    }

    // MARK: Printing

    /// Prints `text` as a line above the prompt without garbling what is
    /// being typed. From any thread.
    public func printAbove(_ text: String) {
        state.withLock { state in
            guard state.reading, !state.closed else {
                // No prompt on screen: print straight away (under the lock,
                // so a prompt cannot appear half-way through).
                writeOut(text + "\n")
                return
            }
            if state.pending.count < Self.pendingLimit { state.pending.append(text) }
            wakePipe.wake(UInt8(ascii: "p"))
        }
    }

    /// Ends a blocked `readLine()` (it returns `nil`) and every later one,
    /// puts SIGINT back as it was, and lets another editor open.
    public func close() {
        let wasReading = state.withLock { state -> Bool in
            state.closed = true
            return state.reading
        }
        // A reading thread releases readline itself once it is out of it.
        if wasReading { wakePipe.wake(UInt8(ascii: "c")) } else { releaseReadline() }
    }

    // MARK: Writing and, below, work on the readline thread

    /// After readline's own buffered output, so the two stay in order.
    private func writeOut(_ text: String) {
        carteira_rl_flush_output()
        writeAll(output, text)
    }

    private func printAboveNow(_ texts: [String]) {
        let savedPoint = carteira_rl_point()
        let savedLine = rl_copy_text(0, carteira_rl_end())
        rl_save_prompt()
        rl_replace_line("", 0)
        rl_redisplay()
        for text in texts { writeOut(text + "\n") }
        rl_restore_prompt()
        if let savedLine { rl_replace_line(savedLine, 0) } else { rl_replace_line("", 0) }
        carteira_rl_set_point(savedPoint)
        rl_redisplay()
        free(savedLine)
    }

    /// Ctrl-C: drop the line being typed (on an empty line, say how to
    /// leave) and start a fresh prompt, as psql does.
    private func interrupt() {
        let wasEmpty = carteira_rl_end() == 0
        dropLine()
        if wasEmpty { writeOut(interruptReminder + "\n") }
        rl_on_new_line()
        rl_redisplay()
    }

    /// Forgets the line being typed and ends it on the screen with `^C`.
    private func dropLine() {
        rl_free_line_state()
        rl_callback_sigcleanup()
        rl_replace_line("", 0)
        writeOut("^C\n")
    }

    private func remember(_ line: String) {
        guard !line.allSatisfy({ $0 == " " || $0 == "\t" }) else { return }
        if let last = carteira_history_last_line(), String(cString: last) == line { return }
        add_history(line)
        if let historyPath {
            _ = append_history(1, historyPath)
            _ = history_truncate_file(historyPath, Self.historyLimit)
        }
    }

    /// Gives readline back to the process: the next editor may open. Once.
    private func releaseReadline() {
        let first = state.withLock { state -> Bool in
            defer { state.released = true }
            return !state.released
        }
        guard first else { return }
        carteira_restore_sigint()
        carteira_rl_set_attempted_completion_function(nil)
        carteira_rl_release_descriptors()
        shared.withLock { $0 = SharedState() }
    }
}

/// Why a `LineEditor` could not open.
public enum LineEditorError: Error, Sendable, Hashable {
    /// Readline is process-wide: one editor at a time.
    case alreadyOpen
    case system(TerminalIOError)
}

private struct EditorState: Sendable {
    var reading = false
    var closed = false
    var released = false
    var pending: [String] = []
}

/// What readline's C callbacks reach: they cannot capture context.
private struct SharedState: Sendable {
    var editorOpen = false
    var completer: LineEditor.Completer?
    /// Set by the line handler: `.some(nil)` is end of input.
    var accepted: String??
    var matches: [String] = []
    var nextMatch = 0
}

private let shared = Locked(SharedState())

private func acceptLine(_ pointer: UnsafeMutablePointer<CChar>?) {
    let line = pointer.map { String(cString: $0) }
    free(pointer)
    shared.withLock { $0.accepted = .some(line) }
    // Otherwise readline prints the prompt again at once.
    rl_callback_handler_remove()
}

private func attemptCompletion(
    _ text: UnsafePointer<CChar>?, _ start: Int32, _ end: Int32
) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? {
    // No file-name completion when we have nothing to offer.
    carteira_rl_set_attempted_completion_over(1)
    let word = text.map { String(cString: $0) } ?? ""
    var before = ""
    if let buffer = carteira_rl_line_buffer(), start > 0 {
        let bytes = UnsafeRawPointer(buffer).assumingMemoryBound(to: UInt8.self)
        before = String(decoding: UnsafeBufferPointer(start: bytes, count: Int(start)), as: UTF8.self)
    }
    let completer = shared.withLock { $0.completer }
    let candidates = completer?(before, word).filter { $0.hasPrefix(word) } ?? []
    shared.withLock {
        $0.matches = candidates
        $0.nextMatch = 0
    }
    return rl_completion_matches(text, nextCompletion)
}

private func nextCompletion(_ text: UnsafePointer<CChar>?, _ state: Int32) -> UnsafeMutablePointer<CChar>? {
    let match = shared.withLock { shared -> String? in
        guard shared.nextMatch < shared.matches.count else { return nil }
        defer { shared.nextMatch += 1 }
        return shared.matches[shared.nextMatch]
    }
    return match.flatMap { strdup($0) }
}
