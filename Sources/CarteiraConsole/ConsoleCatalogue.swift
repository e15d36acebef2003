import CarteiraTerminal

/// What the console prints for one command line and what happens next.
public struct ConsoleOutput: Sendable, Hashable {
    public enum Action: Sendable, Hashable {
        /// Read the next command.
        case `continue`
        /// `quit`: stop the server gracefully (as `shutdown`), and the console.
        case quit
        /// `shutdown`: stop the server gracefully, and the console.
        case shutdown
    }

    /// Where the text goes. On a pipe only `.output` goes to standard
    /// output, so a script can parse it; `.diagnostics` (errors, "shutting
    /// down", timings) goes to standard error. On a terminal both are printed.
    public enum Stream: Sendable, Hashable {
        case output
        case diagnostics
    }

    /// Lines to print, without a final newline; empty prints nothing.
    public var text: String
    public var action: Action
    public var stream: Stream

    public init(_ text: String, action: Action = .continue, stream: Stream = .output) {
        self.text = text
        self.action = action
        self.stream = stream
    }

    /// An error line: one line for the operator, on standard error on a pipe.
    public static func error(_ text: String) -> ConsoleOutput {
        ConsoleOutput(text, stream: .diagnostics)
    }
}

/// A console command: its name, usage and what it shows (CONSOLE.md). The
/// catalogue: what each command takes, for parsing, help and Tab.
public struct ConsoleCommand: Sendable, Hashable {
    public enum ID: String, Sendable, Hashable, CaseIterable {
        case help, machines, machine, balance, history, statement, tx, sessions, stats, rotate, verify
        case expanded = "\\x"
        case timing = "\\timing"
        case pager = "\\pager"
        case shutdown, quit
    }

    public var id: ID
    public var name: String { id.rawValue }
    /// Other names it answers to (`exit`, `\q`, `?`).
    public var aliases: [String]
    public var usage: String
    public var summary: String
    /// Options it takes besides `--format` (which every row printer takes).
    var options: [ConsoleOption]
    var printsRows: Bool
    /// What its positional argument names, for Tab completion.
    var argument: Argument

    enum Argument: Sendable, Hashable {
        case none
        case machine
        case machineOrKey
        case command
        case transfer
        case toggle
    }

    public static let all: [ConsoleCommand] = [
        ConsoleCommand(
            id: .help, aliases: ["?", "\\?"], usage: "help [command]", summary: "the commands, or one command's usage",
            argument: .command),
        ConsoleCommand(
            id: .machines, usage: "machines [--sort name|balance|last] [--limit N] [--format csv|json]",
            summary: "every machine: key, balance, sessions open, registered at, last transfer at",
            options: [.sort, .limit], printsRows: true),
        ConsoleCommand(
            id: .machine, usage: "machine <name> [--format csv|json]",
            summary: "one machine in full, with its last 10 transfers", printsRows: true, argument: .machine),
        ConsoleCommand(
            id: .balance, usage: "balance <machine or key> [--at SEQ|TIME] [--format csv|json]",
            summary: "one balance, now or as it was at a point (a key finds its owner, also a replaced one)",
            options: [.at], printsRows: true, argument: .machineOrKey),
        ConsoleCommand(
            id: .history,
            usage:
                "history [machine] [--from M] [--to M] [--since TIME] [--until TIME] [--limit N] [--format csv|json]",
            summary: "transfers, newest first (default limit 20, at most 1000)",
            options: [.from, .to, .since, .until, .limit], printsRows: true, argument: .machine),
        ConsoleCommand(
            id: .statement, usage: "statement <machine> [--since TIME] [--until TIME] [--format csv|json]",
            summary: "opening balance, each transfer in and out with the running balance, closing balance, totals",
            options: [.since, .until], printsRows: true, argument: .machine),
        ConsoleCommand(
            id: .tx, usage: "tx <tx or seq> [--format csv|json]", summary: "one transfer in full, with its journal seq",
            printsRows: true, argument: .transfer),
        ConsoleCommand(
            id: .sessions, usage: "sessions [--format csv|json]",
            summary: "open connections: remote address, machine, connected since, requests served, rate limited",
            printsRows: true),
        ConsoleCommand(
            id: .stats, usage: "stats [--format csv|json]",
            summary: "machines, transfers, money, journal head (seq, hash), syncs, requests per second, uptime",
            printsRows: true),
        ConsoleCommand(
            id: .rotate, usage: "rotate <machine>", summary: "rotates that machine's key now (reason=admin)",
            argument: .machine),
        ConsoleCommand(
            id: .verify, usage: "verify [--format csv|json]",
            summary: "re-reads the journal from disk and checks it; prints the head to write down", printsRows: true),
        ConsoleCommand(
            id: .expanded, usage: "\\x [on|off|auto]",
            summary: "tables as one record per row (on), as tables (off), or records when too wide (auto)",
            argument: .toggle),
        ConsoleCommand(
            id: .timing, usage: "\\timing [on|off]", summary: "prints how long each command took", argument: .toggle),
        ConsoleCommand(
            id: .pager, usage: "\\pager [on|off]",
            summary: "long output on a terminal goes through $PAGER (default less -FRX), or is printed as it is",
            argument: .toggle),
        ConsoleCommand(
            id: .shutdown, usage: "shutdown",
            summary: "stops the server gracefully (asks again while sessions are open)"),
        ConsoleCommand(
            id: .quit, aliases: ["exit", "\\q"], usage: "quit", summary: "stops the server gracefully, as shutdown"),
    ]

    /// The command with this name or alias, in any case.
    public static func named(_ name: some StringProtocol) -> ConsoleCommand? {
        let lowered = name.lowercased()
        return all.first { $0.name == lowered || $0.aliases.contains(lowered) }
    }

    init(
        id: ID, aliases: [String] = [], usage: String, summary: String, options: [ConsoleOption] = [],
        printsRows: Bool = false, argument: Argument = .none
    ) {
        self.id = id
        self.aliases = aliases
        self.usage = usage
        self.summary = summary
        self.options = options
        self.printsRows = printsRows
        self.argument = argument
    }

    /// Every option it takes, `--format` first when it prints rows.
    var allOptions: [ConsoleOption] { (printsRows ? [.format] : []) + options }
}

/// An option a command takes, and what its value is.
enum ConsoleOption: String, Sendable, Hashable, CaseIterable {
    case format = "--format"
    case limit = "--limit"
    case sort = "--sort"
    case at = "--at"
    case since = "--since"
    case until = "--until"
    case from = "--from"
    case to = "--to"

    /// Its value may be a date and a time, two words (`--since 2026-11-26 19:00`).
    var takesTime: Bool { self == .at || self == .since || self == .until }
    /// Its value is a machine name (Tab offers them).
    var takesMachine: Bool { self == .from || self == .to }

    /// The values Tab offers, when there is a fixed list.
    var choices: [String] {
        switch self {
        case .format: OutputFormat.allCases.map(\.rawValue)
        case .sort: MachineSort.allCases.map(\.rawValue)
        default: []
        }
    }
}

/// `machines --sort`.
enum MachineSort: String, Sendable, Hashable, CaseIterable {
    case name
    /// Largest first.
    case balance
    /// Most recent transfer first; machines without one last.
    case last
}
