#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import CarteiraCore
import Foundation

/// The program that pages long output, as a shell command.
public struct PagerCommand: Sendable, Hashable {
    /// Run as `/bin/sh -c shellCommand`.
    public var shellCommand: String
    /// Added to the pager's environment (`LESS=-FRX` for the default `less`).
    public var environment: [String: String]

    public init(_ shellCommand: String, environment: [String: String] = [:]) {
        self.shellCommand = shellCommand
        self.environment = environment
    }

    /// As psql and git choose: `$PAGER` when it is set (set but empty: no
    /// pager); otherwise `less` when it is on the `PATH`, told `-FRX` (quit
    /// when the text fits, keep colours, leave the text on the screen) unless
    /// `$LESS` says otherwise; else `more`; else nil, and text is printed as
    /// it is.
    public static func from(
        environment: [String: String], isOnPath: (String) -> Bool
    ) -> PagerCommand? {
        if let pager = environment["PAGER"] {
            return pager.allSatisfy({ $0 == " " || $0 == "\t" }) ? nil : PagerCommand(pager)
        }
        if isOnPath("less") {
            return PagerCommand("less", environment: environment["LESS"] == nil ? ["LESS": "-FRX"] : [:])
        }
        return isOnPath("more") ? PagerCommand("more") : nil
    }

    /// `from(environment:isOnPath:)` for this process.
    public static func fromEnvironment() -> PagerCommand? {
        let environment = processEnvironment()
        return from(environment: environment) { program in
            isExecutable(program, onPath: environment["PATH"] ?? "/usr/bin:/bin")
        }
    }

    /// True when `program` is an executable file in one of `path`'s folders.
    public static func isExecutable(_ program: String, onPath path: String) -> Bool {
        path.split(separator: ":").contains { folder in
            access(String(folder) + "/" + program, X_OK) == 0
        }
    }
}

/// Shows a command's output through a pager when it would not fit on the
/// terminal, as psql does: only when the output is a terminal, the text is
/// longer than the terminal is high (a line is kept for the prompt) or
/// wider than it is wide, and a pager is configured. Otherwise, and when
/// the pager cannot run, the text is printed as it is.
///
/// `print` blocks until the pager exits: call it from a thread that may
/// block (a `DedicatedThread`), between prompts.
public final class Pager: Sendable {
    /// The pager, or nil for none.
    public let command: PagerCommand?
    /// Where the text goes: the pager's standard output, too.
    public let output: Int32
    /// Where the one line that says the pager could not run goes.
    public let diagnostics: Int32
    private let outputIsTerminal: @Sendable () -> Bool
    private let size: @Sendable () -> TerminalSize?
    /// Set once the pager failed: said once, and not tried again.
    private let broken = Locked(false)

    public init(
        command: PagerCommand? = PagerCommand.fromEnvironment(), output: Int32 = 1, diagnostics: Int32 = 2,
        isTerminal: (@Sendable () -> Bool)? = nil, size: (@Sendable () -> TerminalSize?)? = nil
    ) {
        self.command = command
        self.output = output
        self.diagnostics = diagnostics
        self.outputIsTerminal = isTerminal ?? { Terminal.isTerminal(fd: output) }
        self.size = size ?? { Terminal.size(fd: output) }
    }

    /// psql's rule: page only on a terminal whose size is known, when the
    /// text has at least as many lines as the terminal has rows, or a line
    /// wider than its columns.
    public static func shouldPage(_ text: String, isTerminal: Bool, size: TerminalSize?) -> Bool {
        guard isTerminal, let size, !text.isEmpty else { return false }
        var lines = 1
        var width = 0
        for character in text {
            if character == "\n" {
                lines += 1
                width = 0
            } else {
                width += 1
                if width > size.columns { return true }
            }
        }
        return lines >= size.rows
    }

    /// Whether `print(text)` would page now.
    public func wouldPage(_ text: String) -> Bool {
        guard command != nil, !broken.withLock({ $0 }) else { return false }
        return Self.shouldPage(text, isTerminal: outputIsTerminal(), size: size())
    }

    /// Prints `text` and a newline: through the pager when `wouldPage`
    /// (and `enabled`), else straight to `output`. Blocks until the pager
    /// exits. If the pager cannot run, prints the text itself and says why
    /// once on `diagnostics`.
    public func print(_ text: String, enabled: Bool = true) {
        guard enabled, let command, wouldPage(text) else {
            writeAll(output, text + "\n")
            return
        }
        if let problem = run(command, text + "\n") {
            let first = broken.withLock { broken in
                defer { broken = true }
                return !broken
            }
            if first {
                writeAll(
                    diagnostics,
                    "the pager (\(command.shellCommand.prefix(80))) could not run: \(problem); "
                        + "printing without it (set PAGER to another program, or PAGER= for none)\n")
            }
            writeAll(output, text + "\n")
        }
    }

    /// Runs `/bin/sh -c command` with `text` on its standard input and
    /// `output` as its standard output, and waits for it. Nil when it ran;
    /// otherwise why not (the pager never showed the text).
    private func run(_ command: PagerCommand, _ text: String) -> String? {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { return "pipe: \(String(cString: strerror(errno)))" }
        let (readEnd, writeEnd) = (ends[0], ends[1])
        // Neither end stays open in the pager but as its standard input
        // (dup2 clears the flag on the copy), so it sees the end of the text.
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)

        // A pager quit early makes writes fail with EPIPE instead of killing
        // the process; Ctrl-C is the pager's while it runs. Both put back after.
        var ignore = sigaction()
        ignore.__sigaction_handler.sa_handler = SIG_IGN
        sigemptyset(&ignore.sa_mask)
        var previousPipe = sigaction()
        var previousInterrupt = sigaction()
        sigaction(SIGPIPE, &ignore, &previousPipe)
        sigaction(SIGINT, &ignore, &previousInterrupt)
        defer {
            sigaction(SIGPIPE, &previousPipe, nil)
            sigaction(SIGINT, &previousInterrupt, nil)
        }

        let pid: pid_t
        switch spawnShell(command, input: readEnd) {
        case let .success(spawned):
            pid = spawned
            closeDescriptor(readEnd)
        case let .failure(problem):
            closeDescriptor(readEnd)
            closeDescriptor(writeEnd)
            return problem.description
        }
        // Stops at EPIPE when the person quits the pager before the end.
        writeAll(writeEnd, text)
        closeDescriptor(writeEnd)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { return nil }
        }
        // The shell's "not found" (127) and "not executable" (126).
        let exited = status & 0x7f == 0
        let code = (status >> 8) & 0xff
        if exited && (code == 126 || code == 127) {
            return "/bin/sh exited with status \(code) (is the program installed?)"
        }
        return nil
    }

    private func spawnShell(_ command: PagerCommand, input: Int32) -> Result<pid_t, TerminalIOError> {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input, 0)
        if output != 1 { posix_spawn_file_actions_adddup2(&actions, output, 1) }

        // The pager gets default signal handling and an empty mask, whatever
        // this process ignores or blocks.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGTSTP, SIGTTIN, SIGTTOU, SIGCHLD, SIGWINCH] {
            sigaddset(&defaults, signal)
        }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        var environment = processEnvironment()
        for (name, value) in command.environment { environment[name] = value }
        let words: [String] = ["/bin/sh", "-c", command.shellCommand]
        let arguments: [UnsafeMutablePointer<CChar>?] = words.map { (word: String) in strdup(word) } + [nil]
        let variables: [UnsafeMutablePointer<CChar>?] =
            environment.map { (name: String, value: String) in strdup(name + "=" + value) } + [nil]
        defer {
            for argument in arguments { free(argument) }
            for variable in variables { free(variable) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, "/bin/sh", &actions, &attributes, arguments, variables)
        guard result == 0 else { return .failure(TerminalIOError("posix_spawn /bin/sh", errno: result)) }
        return .success(pid)
    }
}

/// This process's environment variables.
func processEnvironment() -> [String: String] {
    ProcessInfo.processInfo.environment
}
