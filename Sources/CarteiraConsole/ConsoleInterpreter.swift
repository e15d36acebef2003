import CarteiraCore
public import CarteiraTerminal

/// What a console session remembers between commands: `\x`, `\timing`,
/// `\pager`, and a `shutdown` waiting to be confirmed.
final class ConsoleSettings: Sendable {
    struct State {
        var expanded = ExpandedMode.auto
        var timing = false
        var pager = true
        var shutdownAsked = false
    }

    let state = Locked(State())
}

/// Turns one console command line into its output, asking the backend for
/// the data. Parsing (`ConsoleArguments`) and rendering (`Rows`,
/// `LedgerRows`) are pure: the same state, the same text.
public struct ConsoleInterpreter: Sendable {
    public let backend: any ConsoleBackend
    public let time: TimeFormatter
    /// The terminal's width in columns, read before each command (nil: no
    /// limit, as on a pipe); `\x auto` turns wider tables into records.
    public let width: @Sendable () -> Int?
    /// `shutdown` asks again while sessions are open (on a terminal).
    public let confirmsShutdown: Bool
    /// Reads a monotonic clock in nanoseconds, for `\timing`.
    public let clock: @Sendable () -> UInt64
    let settings = ConsoleSettings()

    static let historyDefaultLimit = 20
    static let machineTransfersShown = 10
    static let machinesDefaultLimit = 1000

    public init(
        backend: any ConsoleBackend, time: @escaping TimeFormatter = TerminalTime.local,
        width: @escaping @Sendable () -> Int? = { nil }, confirmsShutdown: Bool = false,
        clock: @escaping @Sendable () -> UInt64 = { monotonicNanoseconds() }
    ) {
        self.backend = backend
        self.time = time
        self.width = width
        self.confirmsShutdown = confirmsShutdown
        self.clock = clock
    }

    /// `\pager`: whether long output on a terminal may go through the pager.
    public var pagerOn: Bool { settings.state.withLock { $0.pager } }

    /// True for a line that is not kept in the history (`shutdown`, `quit`):
    /// Up then Enter must never stop the server by accident.
    public static func staysOutOfHistory(_ line: String) -> Bool {
        guard let first = try? consoleWords(line).first, let command = ConsoleCommand.named(first) else {
            return false
        }
        return command.id == .shutdown || command.id == .quit
    }

    public func run(_ line: String) async -> ConsoleOutput {
        let started = clock()
        var output = await execute(line)
        if settings.state.withLock({ $0.timing }), !line.allSatisfy({ $0 == " " || $0 == "\t" }) {
            let micros = (clock() &- started) / 1000
            let timing = "Time: \(micros / 1000).\(String(micros % 1000).leftPadded(to: 3)) ms"
            output.text = output.text.isEmpty ? timing : output.text + "\n" + timing
        }
        return output
    }

    private func execute(_ line: String) async -> ConsoleOutput {
        let words: [Substring]
        do {
            words = try consoleWords(line)
        } catch {
            return .error(error.message)
        }
        guard let name = words.first else { return ConsoleOutput("") }
        guard let command = ConsoleCommand.named(name) else {
            return .error("unknown command \(name.prefix(80)); type help (or \\?) for the commands")
        }
        if command.id != .shutdown { settings.state.withLock { $0.shutdownAsked = false } }
        do {
            let arguments = try ParsedArguments(words.dropFirst(), for: command)
            return try await run(command, arguments)
        } catch {
            return .error(error.message)
        }
    }

    /// `\timing` and `\pager`: `on` or `off` (any case) sets the switch,
    /// nothing flips it; returns its new value.
    private func setSwitch(
        _ setting: WritableKeyPath<ConsoleSettings.State, Bool>, to argument: String?, named name: String
    ) throws(ConsoleError) -> Bool {
        let value = argument?.lowercased()
        guard value == nil || value == "on" || value == "off" else {
            throw ConsoleError("\(name) takes on or off, not \(value?.prefix(40) ?? "")")
        }
        return settings.state.withLock { state in
            state[keyPath: setting] = value.map { $0 == "on" } ?? !state[keyPath: setting]
            return state[keyPath: setting]
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
        let format = arguments.format

        switch command.id {
        case .help:
            return ConsoleOutput(try help(try atMostOne()))
        case .machines:
            try none()
            return ConsoleOutput(
                await machines(
                    limit: arguments.limit ?? Self.machinesDefaultLimit, sort: arguments.sort ?? .name, format: format))
        case .machine:
            return ConsoleOutput(try await machine(try exactlyOne(), format: format))
        case .balance:
            return ConsoleOutput(try await balance(try exactlyOne(), at: arguments.at, format: format))
        case .history:
            return ConsoleOutput(try await history(of: try atMostOne(), arguments))
        case .statement:
            return ConsoleOutput(try await statement(try exactlyOne(), arguments))
        case .tx:
            return ConsoleOutput(try await transfer(try exactlyOne(), format: format))
        case .sessions:
            try none()
            return ConsoleOutput(await sessions(format: format))
        case .stats:
            try none()
            return ConsoleOutput(await statistics(format: format))
        case .rotate:
            return ConsoleOutput(try await rotate(try exactlyOne()))
        case .verify:
            try none()
            switch await backend.verifyJournal() {
            case let .success(report):
                let text = format == .table ? report.text : report.rows.render(format, time: time)
                return report.passed ? ConsoleOutput(text) : ConsoleOutput(text, stream: .diagnostics)
            case let .failure(problem):
                return .error("verify failed: \(problem.message)")
            }
        case .expanded:
            let value = try atMostOne()?.lowercased()
            let mode = try settings.state.withLock { (state) throws(ConsoleError) -> ExpandedMode in
                switch value {
                case nil: state.expanded = state.expanded == .on ? .off : .on
                case let value?:
                    guard let mode = ExpandedMode(rawValue: value) else {
                        throw ConsoleError("\\x takes on, off or auto, not \(value.prefix(40))")
                    }
                    state.expanded = mode
                }
                return state.expanded
            }
            return ConsoleOutput(
                mode == .auto ? "Expanded display is used automatically." : "Expanded display is \(mode.rawValue).",
                stream: .diagnostics)
        case .timing:
            let on = try setSwitch(\.timing, to: atMostOne(), named: "\\timing")
            return ConsoleOutput("Timing is \(on ? "on" : "off").", stream: .diagnostics)
        case .pager:
            let on = try setSwitch(\.pager, to: atMostOne(), named: "\\pager")
            return ConsoleOutput(on ? "Pager is used for long output." : "Pager usage is off.", stream: .diagnostics)
        case .shutdown, .quit:
            try none()
            if confirmsShutdown && command.id == .shutdown {
                let open = await backend.sessions().count
                let confirmed = settings.state.withLock { state in
                    defer { state.shutdownAsked.toggle() }
                    return state.shutdownAsked || open == 0
                }
                if !confirmed {
                    let sessions = open == 1 ? "1 session is" : "\(open) sessions are"
                    return ConsoleOutput(
                        "\(sessions) open; type shutdown again to stop the server", stream: .diagnostics)
                }
            }
            return ConsoleOutput(
                "shutting down", action: command.id == .quit ? .quit : .shutdown, stream: .diagnostics)
        }
    }

    // MARK: Commands

    private func help(_ topic: String?) throws(ConsoleError) -> String {
        guard let topic else {
            let width = ConsoleCommand.all.map(\.usage.count).max() ?? 0
            let lines = ConsoleCommand.all.map { command in
                command.usage + String(repeating: " ", count: width - command.usage.count) + "  " + command.summary
            }
            return
                (["commands (names in any case; exit or \\q is quit, ? or \\? is help):"] + lines.map { "  " + $0 }
                + [
                    "(--format csv|json prints rows for programs: money in *_cents, times in UTC ISO 8601)",
                    "(TIME is \(TerminalTime.inputForms); quote it or write the date and the time as two words)",
                ])
                .joined(separator: "\n")
        }
        guard let command = ConsoleCommand.named(topic) else {
            throw ConsoleError("help: no command named \(topic.prefix(80)); type help for the commands")
        }
        let aliases = command.aliases.isEmpty ? "" : "\n(also: \(command.aliases.joined(separator: ", ")))"
        return "usage: \(command.usage)\n\(command.summary)\(aliases)"
    }

    private func machines(limit: Int, sort: MachineSort, format: OutputFormat) async -> String {
        let ledger = await backend.ledger()
        let openSessions = sessionCounts(await backend.sessions())
        var all = ledger.machines.values.sorted { $0.name < $1.name }
        switch sort {
        case .name: break
        case .balance: all.sort { $0.balance.value > $1.balance.value }
        case .last:
            all.sort { ($0.lastTransferAt?.milliseconds ?? .min) > ($1.lastTransferAt?.milliseconds ?? .min) }
        }
        let rows = LedgerRows.machines(Array(all.prefix(limit)), sessions: openSessions)
        guard format == .table else { return rows.render(format, time: time) }
        guard all.count > limit else { return table(rows) }
        let shown = rows.rows.count == 1 ? "1 row" : "\(rows.rows.count) rows"
        return table(rows, footer: false) + "\n(\(shown); \(all.count - limit) more machines, use --limit or --format)"
    }

    private func machine(_ nameText: String, format: OutputFormat) async throws(ConsoleError) -> String {
        let name = try machineName(nameText)
        let ledger = await backend.ledger()
        guard let record = ledger.machines[name] else { throw ConsoleError("no machine named \(name)") }
        let openSessions = sessionCounts(await backend.sessions())[name] ?? 0
        let rows = Rows(
            fields: [
                Field("machine", "machine"), Field("key", "key"), Field("key expires", "key_expires_at"),
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
        let recent = LedgerRows.transfers(ledger.history(of: name, limit: Self.machineTransfersShown))
        switch format {
        case .json:
            // The record with its last transfers as an array in one field.
            var nested = rows
            nested.fields.append(Field("last transfers", "last_transfers"))
            nested.rows[0].append(.rows(recent))
            return nested.renderJSON()
        case .csv:
            // One flat table a spreadsheet opens: the record's columns on
            // every row, then one transfer's (empty without transfers).
            var flat = Rows(fields: rows.fields + recent.fields)
            for transfer in recent.rows { flat.rows.append(rows.rows[0] + transfer) }
            if recent.rows.isEmpty {
                flat.rows.append(rows.rows[0] + Array(repeating: .missing, count: recent.fields.count))
            }
            return flat.renderCSV()
        case .table:
            let transfers =
                recent.rows.isEmpty
                ? "no transfers yet" : "last \(recent.rows.count) transfers:\n" + table(recent, footer: false)
            return rows.renderRecord(time: time) + "\n\n" + transfers
        }
    }

    private func balance(_ argument: String, at point: PointInTime?, format: OutputFormat) async throws(ConsoleError)
        -> String
    {
        let ledger: Ledger
        if let point {
            switch await backend.ledger(at: point) {
            case let .success(past): ledger = past
            case let .failure(problem): throw ConsoleError("balance: \(problem.message)")
            }
        } else {
            ledger = await backend.ledger()
        }
        let record: MachineRecord
        var replacedKey = false
        if let key = PaymentKey(argument) {
            // Any key ever issued, a replaced one too: asked as of a moment
            // before every key stopped being payable.
            guard case let .success(name) = ledger.owner(ofKey: KeyText(key), at: Timestamp(milliseconds: .min)),
                let owner = ledger.machines[name]
            else {
                throw ConsoleError("no machine has or had the key \(key)\(asOf(point))")
            }
            record = owner
            replacedKey = owner.key != key
        } else {
            let name = try machineName(argument, orKey: true)
            guard let named = ledger.machines[name] else {
                throw ConsoleError("no machine named \(name)\(asOf(point))")
            }
            record = named
        }
        let rows = Rows(
            fields: [
                Field("machine", "machine"), Field("balance", "balance_cents", alignment: .right),
                Field("as of seq", "seq"),
            ],
            rows: [[.text(record.name.text), .money(record.balance), .integer(ledger.lastSeq)]])
        guard format == .table else { return rows.render(format, time: time) }
        let note = replacedKey ? " (a replaced key; its current key is \(record.key))" : ""
        let when = point == nil ? "" : " as of seq \(ledger.lastSeq)"
        return "\(record.name): \(record.balance.brl)\(when)\(note)"
    }

    private func asOf(_ point: PointInTime?) -> String {
        switch point {
        case nil: ""
        case let .seq(seq): " as of seq \(seq)"
        case let .time(moment): " as of \(time(moment))"
        }
    }

    private func history(of nameText: String?, _ arguments: ParsedArguments) async throws(ConsoleError) -> String {
        let ledger = await backend.ledger()
        let limit = arguments.limit ?? Self.historyDefaultLimit
        for name in [arguments.from, arguments.to].compactMap({ $0 }) where ledger.machines[name] == nil {
            throw ConsoleError("no machine named \(name)")
        }
        var records: [TransferRecord]
        let (since, until, from, to) = (arguments.since, arguments.until, arguments.from, arguments.to)
        func wanted(_ record: TransferRecord) -> Bool {
            if let since, record.at < since { return false }
            if let until, record.at > until { return false }
            if let from, record.transfer.from != from { return false }
            if let to, record.transfer.to != to { return false }
            return true
        }
        let filtered = since != nil || until != nil || from != nil || to != nil
        if let nameText {
            let name = try machineName(nameText)
            guard ledger.machines[name] != nil else { throw ConsoleError("no machine named \(name)") }
            records =
                filtered
                ? Array(ledger.history(of: name, limit: .max).lazy.filter(wanted).prefix(limit))
                : ledger.history(of: name, limit: limit)
        } else {
            records =
                filtered
                ? Array(ledger.transfers.reversed().lazy.filter(wanted).prefix(limit))
                : ledger.history(limit: limit)
        }
        let rows = LedgerRows.transfers(records)
        return arguments.format == .table ? table(rows) : rows.render(arguments.format, time: time)
    }

    private func statement(_ nameText: String, _ arguments: ParsedArguments) async throws(ConsoleError) -> String {
        let name = try machineName(nameText)
        let ledger = await backend.ledger()
        guard
            let statement = MachineStatement(
                ledger: ledger, machine: name, since: arguments.since, until: arguments.until)
        else { throw ConsoleError("no machine named \(name)") }
        return statement.render(arguments.format, time: time)
    }

    private func transfer(_ text: String, format: OutputFormat) async throws(ConsoleError) -> String {
        // The full id, or its seq (`tx 42`).
        let id: TxID
        if let seq = Int64(text), seq > 0 {
            id = TxID(seq: seq)
        } else if let parsed = TxID(text.uppercased()) {
            id = parsed
        } else {
            throw ConsoleError("tx: \(text.prefix(80)) is not a transfer id (like T000000000042) or a seq (like 42)")
        }
        guard let record = await backend.ledger().transfer(id) else { throw ConsoleError("no transfer \(id)") }
        let transfer = record.transfer
        let rows = Rows(
            fields: [
                Field("tx", "tx"), Field("seq", "seq"), Field("time", "time"), Field("from", "from"),
                Field("to", "to"), Field("key", "key"), Field("amount", "amount_cents", alignment: .right),
                Field("request id", "request_id"),
            ],
            rows: [
                [
                    .text(id.text), .integer(record.seq), .time(record.at), .text(transfer.from.text),
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
        return format == .table ? table(rows) : rows.render(format, time: time)
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
                Field("last hash", "last_hash"), Field("syncs", "syncs"), Field("events synced", "events_synced"),
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
                    .integer(stats.lastSeq), .text(stats.lastHash), .integer(stats.syncs), .integer(stats.eventsSynced),
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

    // MARK: Rendering

    /// Rows for people: a table with a row-count footer, or records as `\x` says.
    private func table(_ rows: Rows, footer: Bool = true) -> String {
        rows.renderForPeople(
            expanded: settings.state.withLock { $0.expanded }, width: width(), footer: footer, time: time)
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
}

extension String {
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        String(repeating: pad, count: max(0, width - count)) + self
    }
}
