import CarteiraCore

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

    /// Lines to print, without a final newline; empty prints nothing.
    public var text: String
    public var action: Action

    public init(_ text: String, action: Action = .continue) {
        self.text = text
        self.action = action
    }
}

/// A console command: its name, usage and what it shows (CONSOLE.md).
public struct ConsoleCommand: Sendable, Hashable {
    public enum ID: String, Sendable, Hashable, CaseIterable {
        case help, machines, machine, balance, history, tx, sessions, stats, rotate, verify, shutdown, quit
    }

    public var id: ID
    public var name: String { id.rawValue }
    public var usage: String
    public var summary: String
    /// Options it takes besides `--format` (which every row printer takes).
    var options: [String]
    var printsRows: Bool
    /// What its positional argument names, for Tab completion.
    var argument: Argument

    enum Argument: Sendable, Hashable {
        case none
        case machine
        case machineOrKey
        case command
        case transfer
    }

    public static let all: [ConsoleCommand] = [
        ConsoleCommand(
            id: .help, usage: "help [command]", summary: "the commands, or one command's usage",
            options: [], printsRows: false, argument: .command),
        ConsoleCommand(
            id: .machines, usage: "machines [--limit N] [--format csv|json]",
            summary: "every machine: key, balance, sessions open, registered at, last transfer at",
            options: ["--limit"], printsRows: true, argument: .none),
        ConsoleCommand(
            id: .machine, usage: "machine <name> [--format csv|json]",
            summary: "one machine in full, with its last 10 transfers", options: [], printsRows: true,
            argument: .machine),
        ConsoleCommand(
            id: .balance, usage: "balance <machine or key> [--format csv|json]", summary: "one balance",
            options: [], printsRows: true, argument: .machineOrKey),
        ConsoleCommand(
            id: .history, usage: "history [machine] [--limit N] [--format csv|json]",
            summary: "transfers, newest first (default limit 20, at most 1000)", options: ["--limit"],
            printsRows: true, argument: .machine),
        ConsoleCommand(
            id: .tx, usage: "tx <tx> [--format csv|json]", summary: "one transfer in full, with its journal seq",
            options: [], printsRows: true, argument: .transfer),
        ConsoleCommand(
            id: .sessions, usage: "sessions [--format csv|json]",
            summary: "open connections: remote address, machine, connected since, requests served", options: [],
            printsRows: true, argument: .none),
        ConsoleCommand(
            id: .stats, usage: "stats [--format csv|json]",
            summary: "machines, transfers, money, journal, syncs, requests per second, uptime", options: [],
            printsRows: true, argument: .none),
        ConsoleCommand(
            id: .rotate, usage: "rotate <machine>", summary: "rotates that machine's key now (reason=admin)",
            options: [], printsRows: false, argument: .machine),
        ConsoleCommand(
            id: .verify, usage: "verify", summary: "re-reads the journal from disk and checks it", options: [],
            printsRows: false, argument: .none),
        ConsoleCommand(
            id: .shutdown, usage: "shutdown", summary: "stops the server gracefully", options: [],
            printsRows: false, argument: .none),
        ConsoleCommand(
            id: .quit, usage: "quit", summary: "stops the server gracefully, as shutdown", options: [],
            printsRows: false, argument: .none),
    ]

    public static func named(_ name: some StringProtocol) -> ConsoleCommand? {
        all.first { $0.name == name }
    }

    init(id: ID, usage: String, summary: String, options: [String], printsRows: Bool, argument: Argument) {
        self.id = id
        self.usage = usage
        self.summary = summary
        self.options = options
        self.printsRows = printsRows
        self.argument = argument
    }
}

/// A command line that cannot run: one clear line for the operator.
struct ConsoleError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// The arguments of one command line, options taken out.
struct ParsedArguments {
    var positionals: [String] = []
    var format = OutputFormat.table
    var limit: Int?

    /// Bounds on `--limit`, for `history` and `machines`.
    static let limits = 1...1000

    init(_ words: ArraySlice<Substring>, for command: ConsoleCommand) throws(ConsoleError) {
        var words = words[...]
        while let word = words.popFirst() {
            guard word.hasPrefix("--") else {
                positionals.append(String(word))
                continue
            }
            // Both `--format json` and `--format=json`.
            let parts = word.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let option = String(parts[0])
            guard (command.printsRows && option == "--format") || command.options.contains(option) else {
                throw ConsoleError("\(command.name): unknown option \(option) (usage: \(command.usage))")
            }
            guard let value = parts.count == 2 ? parts[1] : words.popFirst(), !value.isEmpty else {
                throw ConsoleError("\(command.name): \(option) needs a value (usage: \(command.usage))")
            }
            if option == "--format" {
                guard let format = OutputFormat(rawValue: String(value)) else {
                    throw ConsoleError("\(command.name): --format takes table, csv or json, not \(value)")
                }
                self.format = format
            } else {
                guard let limit = Int(value), Self.limits.contains(limit) else {
                    throw ConsoleError(
                        "\(command.name): --limit takes a number from \(Self.limits.lowerBound) to \(Self.limits.upperBound), not \(value)"
                    )
                }
                self.limit = limit
            }
        }
    }
}

/// Turns one console command line into its output, asking the backend for
/// the data. Parsing and rendering are pure: the same state, the same text.
public struct ConsoleInterpreter: Sendable {
    public let backend: any ConsoleBackend
    public let time: TimeFormatter

    static let historyDefaultLimit = 20
    static let machineTransfersShown = 10
    static let machinesDefaultLimit = 1000

    public init(backend: any ConsoleBackend, time: @escaping TimeFormatter = ConsoleTime.local) {
        self.backend = backend
        self.time = time
    }

    public func run(_ line: String) async -> ConsoleOutput {
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard let name = words.first else { return ConsoleOutput("") }
        guard let command = ConsoleCommand.named(name) else {
            return ConsoleOutput("unknown command \(name.prefix(80)); type help for the commands")
        }
        do {
            let arguments = try ParsedArguments(words.dropFirst(), for: command)
            return try await run(command, arguments)
        } catch {
            return ConsoleOutput(error.message)
        }
    }

    private func run(_ command: ConsoleCommand, _ arguments: ParsedArguments) async throws(ConsoleError)
        -> ConsoleOutput
    {
        let positionals = arguments.positionals
        func atMostOne() throws(ConsoleError) -> String? {
            guard positionals.count <= 1 else {
                throw ConsoleError("\(command.name): unexpected argument \(positionals[1]) (usage: \(command.usage))")
            }
            return positionals.first
        }
        func exactlyOne() throws(ConsoleError) -> String {
            guard let argument = try atMostOne() else {
                throw ConsoleError("\(command.name): missing argument (usage: \(command.usage))")
            }
            return argument
        }
        func none() throws(ConsoleError) {
            if let extra = positionals.first {
                throw ConsoleError("\(command.name): unexpected argument \(extra) (usage: \(command.usage))")
            }
        }

        switch command.id {
        case .help:
            return ConsoleOutput(try help(try atMostOne()))
        case .machines:
            try none()
            return ConsoleOutput(
                await machines(limit: arguments.limit ?? Self.machinesDefaultLimit, format: arguments.format))
        case .machine:
            return ConsoleOutput(try await machine(try exactlyOne(), format: arguments.format))
        case .balance:
            return ConsoleOutput(try await balance(try exactlyOne(), format: arguments.format))
        case .history:
            let limit = arguments.limit ?? Self.historyDefaultLimit
            return ConsoleOutput(try await history(of: try atMostOne(), limit: limit, format: arguments.format))
        case .tx:
            return ConsoleOutput(try await transfer(try exactlyOne(), format: arguments.format))
        case .sessions:
            try none()
            return ConsoleOutput(await sessions(format: arguments.format))
        case .stats:
            try none()
            return ConsoleOutput(await statistics(format: arguments.format))
        case .rotate:
            return ConsoleOutput(try await rotate(try exactlyOne()))
        case .verify:
            try none()
            switch await backend.verifyJournal() {
            case let .success(summary): return ConsoleOutput(summary)
            case let .failure(problem): return ConsoleOutput("verify failed: \(problem.message)")
            }
        case .shutdown, .quit:
            try none()
            return ConsoleOutput("shutting down", action: command.id == .quit ? .quit : .shutdown)
        }
    }

    // MARK: Commands

    private func help(_ topic: String?) throws(ConsoleError) -> String {
        guard let topic else {
            let width = ConsoleCommand.all.map(\.usage.count).max() ?? 0
            let lines = ConsoleCommand.all.map { command in
                command.usage + String(repeating: " ", count: width - command.usage.count) + "  " + command.summary
            }
            return (["commands:"] + lines.map { "  " + $0 } + ["(--format csv|json prints rows for programs)"])
                .joined(separator: "\n")
        }
        guard let command = ConsoleCommand.named(topic) else {
            throw ConsoleError("help: no command named \(topic); type help for the commands")
        }
        return "usage: \(command.usage)\n\(command.summary)"
    }

    private func machines(limit: Int, format: OutputFormat) async -> String {
        let ledger = await backend.ledger()
        let openSessions = sessionCounts(await backend.sessions())
        let all = ledger.machines.values.sorted { $0.name < $1.name }
        var rows = Rows(fields: [
            Field("machine", "machine"), Field("key", "key"),
            Field("balance", "balance_cents", alignment: .right),
            Field("sessions", "sessions", alignment: .right), Field("registered at", "registered_at"),
            Field("last transfer at", "last_transfer_at"),
        ])
        for record in all.prefix(limit) {
            rows.rows.append([
                .text(record.name.text), .text(record.key.text), .money(record.balance),
                .integer(Int64(openSessions[record.name] ?? 0)), .time(record.registeredAt),
                record.lastTransferAt.map(Cell.time) ?? .missing,
            ])
        }
        var text = rows.render(format, time: time)
        if format == .table && all.count > limit {
            text += "\n(\(all.count - limit) more machines; use --limit or --format)"
        }
        return text
    }

    private func machine(_ nameText: String, format: OutputFormat) async throws(ConsoleError) -> String {
        let name = try machineName(nameText)
        let ledger = await backend.ledger()
        guard let record = ledger.machines[name] else { throw ConsoleError("no machine named \(name)") }
        let openSessions = sessionCounts(await backend.sessions())[name] ?? 0
        let rows = Rows(
            fields: [
                Field("machine", "machine"), Field("key", "key"), Field("key expires", "key_expires"),
                Field("balance", "balance_cents", alignment: .right), Field("sessions", "sessions"),
                Field("registered at", "registered_at"), Field("last transfer at", "last_transfer_at"),
                Field("transfers", "transfers"),
            ],
            rows: [
                [
                    .text(name.text), .text(record.key.text), .time(record.keyExpires), .money(record.balance),
                    .integer(Int64(openSessions)), .time(record.registeredAt),
                    record.lastTransferAt.map(Cell.time) ?? .missing, .integer(Int64(record.transferCount)),
                ]
            ])
        guard format == .table else { return rows.render(format, time: time) }
        let recent = ledger.history(of: name, limit: Self.machineTransfersShown)
        let transfers =
            recent.isEmpty
            ? "no transfers yet"
            : "last \(recent.count) transfers:\n" + transferRows(recent).renderTable(time: time)
        return rows.renderRecord(time: time) + "\n\n" + transfers
    }

    private func balance(_ argument: String, format: OutputFormat) async throws(ConsoleError) -> String {
        let ledger = await backend.ledger()
        let record: MachineRecord
        if let key = PaymentKey(argument) {
            guard let owner = ledger.machines.values.first(where: { $0.key == key }) else {
                throw ConsoleError("no machine has the current key \(key)")
            }
            record = owner
        } else {
            let name = try machineName(argument, orKey: true)
            guard let named = ledger.machines[name] else { throw ConsoleError("no machine named \(name)") }
            record = named
        }
        let rows = Rows(
            fields: [Field("machine", "machine"), Field("balance", "balance_cents", alignment: .right)],
            rows: [[.text(record.name.text), .money(record.balance)]])
        guard format == .table else { return rows.render(format, time: time) }
        return "\(record.name): \(record.balance.brl)"
    }

    private func history(of nameText: String?, limit: Int, format: OutputFormat) async throws(ConsoleError)
        -> String
    {
        let ledger = await backend.ledger()
        let records: [TransferRecord]
        if let nameText {
            let name = try machineName(nameText)
            guard ledger.machines[name] != nil else { throw ConsoleError("no machine named \(name)") }
            records = ledger.history(of: name, limit: limit)
        } else {
            records = ledger.history(limit: limit)
        }
        return transferRows(records).render(format, time: time)
    }

    private func transfer(_ text: String, format: OutputFormat) async throws(ConsoleError) -> String {
        guard let tx = TxID(text) else { throw ConsoleError("tx: \(text) is not a transfer id (like T000000000042)") }
        guard let record = await backend.ledger().transfer(tx) else { throw ConsoleError("no transfer \(tx)") }
        let transfer = record.transfer
        let rows = Rows(
            fields: [
                Field("tx", "tx"), Field("seq", "seq"), Field("time", "time"), Field("from", "from"),
                Field("to", "to"), Field("key", "key"), Field("amount", "amount_cents", alignment: .right),
                Field("request id", "request_id"),
            ],
            rows: [
                [
                    .text(tx.text), .integer(record.seq), .time(record.at), .text(transfer.from.text),
                    .text(transfer.to.text), .text(transfer.key.text), .money(transfer.amount),
                    transfer.requestID.map { .text($0.text) } ?? .missing,
                ]
            ])
        return format == .table ? rows.renderRecord(time: time) : rows.render(format, time: time)
    }

    private func sessions(format: OutputFormat) async -> String {
        let rows = Rows(
            fields: [
                Field("remote address", "remote_address"), Field("machine", "machine"),
                Field("connected since", "connected_at"),
                Field("requests served", "requests_served", alignment: .right),
                Field("rate limited", "rate_limited"),
            ],
            rows: await backend.sessions().map { session in
                [
                    .text(session.remoteAddress), session.machine.map { .text($0.text) } ?? .missing,
                    .time(session.connectedAt), .integer(Int64(session.requestsServed)),
                    session.rateLimited.map { .text($0) } ?? .missing,
                ]
            })
        return rows.render(format, time: time)
    }

    private func statistics(format: OutputFormat) async -> String {
        let ledger = await backend.ledger()
        let stats = await backend.statistics()
        let eventsPerSync = stats.syncs > 0 ? stats.eventsSynced * 100 / stats.syncs : 0
        let rows = Rows(
            fields: [
                Field("machines", "machines"), Field("transfers", "transfers"),
                Field("money in circulation", "total_money_cents"), Field("journal", "journal_path"),
                Field("journal size (bytes)", "journal_size_bytes"), Field("last seq", "last_seq"),
                Field("syncs", "syncs"), Field("events synced", "events_synced"),
                Field("events per sync", "events_per_sync"), Field("requests last minute", "requests_last_minute"),
                Field("requests per second", "requests_per_second"), Field("uptime", "uptime_seconds"),
                Field("started at", "started_at"),
                Field("rate-limited refusals", "rate_limited_refusals"),
                Field("limited connections", "limited_connections"),
                Field("limited addresses", "limited_addresses"), Field("limited machines", "limited_machines"),
            ],
            rows: [
                [
                    .integer(Int64(ledger.machines.count)), .integer(Int64(ledger.transfers.count)),
                    .money(ledger.totalMoney), .text(stats.journalPath), .integer(stats.journalSizeBytes),
                    .integer(stats.lastSeq), .integer(stats.syncs), .integer(stats.eventsSynced),
                    .hundredths(eventsPerSync), .integer(stats.requestsLastMinute),
                    .hundredths(stats.requestsLastMinute * 100 / 60), .seconds(stats.uptimeSeconds),
                    .time(stats.startedAt), .integer(stats.rateLimitedRefusals),
                    .integer(Int64(stats.limitedConnections)),
                    stats.limitedAddresses.isEmpty ? .missing : .text(stats.limitedAddresses.joined(separator: " ")),
                    stats.limitedMachines.isEmpty ? .missing : .text(stats.limitedMachines.joined(separator: " ")),
                ]
            ])
        return format == .table ? rows.renderRecord(time: time) : rows.render(format, time: time)
    }

    private func rotate(_ nameText: String) async throws(ConsoleError) -> String {
        let name = try machineName(nameText)
        switch await backend.rotateKey(of: name) {
        case let .success((key, expires)):
            return "rotated \(name)'s key: \(key) (expires \(time(expires)))"
        case let .failure(rejection):
            throw ConsoleError("rotate: \(rejection.message)")
        }
    }

    // MARK: Helpers

    private func machineName(_ text: String, orKey: Bool = false) throws(ConsoleError) -> MachineName {
        guard let name = MachineName(text) else {
            let what = orKey ? "a machine name or a key" : "a machine name"
            throw ConsoleError("\(text.prefix(80)) is not \(what)")
        }
        return name
    }

    private func sessionCounts(_ sessions: [ConsoleSession]) -> [MachineName: Int] {
        var counts: [MachineName: Int] = [:]
        for session in sessions {
            if let machine = session.machine { counts[machine, default: 0] += 1 }
        }
        return counts
    }

    private func transferRows(_ records: [TransferRecord]) -> Rows {
        Rows(
            fields: [
                Field("tx", "tx"), Field("time", "time"), Field("from", "from"), Field("to", "to"),
                Field("amount", "amount_cents", alignment: .right),
            ],
            rows: records.map { record in
                [
                    .text(record.tx.text), .time(record.at), .text(record.transfer.from.text),
                    .text(record.transfer.to.text), .money(record.transfer.amount),
                ]
            })
    }
}
