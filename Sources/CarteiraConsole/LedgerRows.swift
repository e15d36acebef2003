public import CarteiraCore
public import CarteiraTerminal

/// The rows the console and the off-line `journal` tools print, built in one
/// place so both show the same columns, in the same order, with the same
/// field names.
public enum LedgerRows {
    /// Every machine, by name: machine, key, balance, (sessions open,)
    /// registered at, last transfer at.
    public static func machines(_ records: [MachineRecord], sessions: [MachineName: Int]? = nil) -> Rows {
        var fields = [
            Field("machine", "machine"), Field("key", "key"), Field("balance", "balance_cents", alignment: .right),
        ]
        if sessions != nil { fields.append(Field("sessions", "sessions", alignment: .right)) }
        fields += [Field("registered at", "registered_at"), Field("last transfer at", "last_transfer_at")]
        var rows = Rows(fields: fields)
        for record in records {
            var row: [Cell] = [.text(record.name.text), .text(record.key.text), .money(record.balance)]
            if let sessions { row.append(.integer(Int64(sessions[record.name] ?? 0))) }
            row += [.time(record.registeredAt), record.lastTransferAt.map(Cell.time) ?? .missing]
            rows.rows.append(row)
        }
        return rows
    }

    /// Transfers as `history` lists them: tx, time, from, to, amount.
    public static func transfers(_ records: [TransferRecord]) -> Rows {
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

/// A machine's statement between two moments: the opening balance, every
/// transfer in and out with its running balance, the closing balance and
/// the totals. Built from the ledger's own records, walking back from the
/// balance it holds now, so it needs no second replay.
public struct MachineStatement: Sendable, Hashable {
    public struct Line: Sendable, Hashable {
        public var record: TransferRecord
        public var incoming: Bool
        public var counterparty: MachineName
        /// The machine's balance right after this transfer.
        public var balance: Centavos
    }

    public var machine: MachineName
    public var since: Timestamp?
    public var until: Timestamp?
    public var opening: Centavos
    public var lines: [Line]
    public var closing: Centavos
    public var totalIn: Centavos
    public var totalOut: Centavos

    /// Nil when `ledger` has no machine `machine`. Transfers at or after
    /// `since` and not later than `until` are listed.
    public init?(ledger: Ledger, machine: MachineName, since: Timestamp? = nil, until: Timestamp? = nil) {
        guard let record = ledger.machines[machine] else { return nil }
        self.machine = machine
        self.since = since
        self.until = until
        // Newest first; the balance after each is the one after the newer
        // one, less what the newer one moved.
        let newestFirst = ledger.history(of: machine, limit: Int.max)
        var after = record.balance.value
        var all: [Line] = []
        all.reserveCapacity(newestFirst.count)
        for transfer in newestFirst {
            let incoming = transfer.transfer.to == machine
            // A machine paying itself cannot happen (the ledger refuses it).
            all.append(
                Line(
                    record: transfer, incoming: incoming,
                    counterparty: incoming ? transfer.transfer.from : transfer.transfer.to,
                    balance: Centavos(after)))
            after += incoming ? -transfer.transfer.amount.value : transfer.transfer.amount.value
        }
        all.reverse()
        // `after` is now the balance before the oldest transfer.
        var balance = after
        var opening: Int64?
        var lines: [Line] = []
        var totalIn: Int64 = 0
        var totalOut: Int64 = 0
        for line in all {
            if let until, line.record.at > until { break }
            if let since, line.record.at < since {
                balance = line.balance.value
                continue
            }
            if opening == nil { opening = balance }
            lines.append(line)
            if line.incoming {
                totalIn += line.record.transfer.amount.value
            } else {
                totalOut += line.record.transfer.amount.value
            }
            balance = line.balance.value
        }
        self.opening = Centavos(opening ?? balance)
        self.lines = lines
        self.closing = Centavos(balance)
        self.totalIn = Centavos(totalIn)
        self.totalOut = Centavos(totalOut)
    }

    /// The lines: seq, tx, time, direction, counterparty, amount, balance.
    public var lineRows: Rows {
        Rows(
            fields: [
                Field("seq", "seq", alignment: .right), Field("tx", "tx"), Field("time", "time"),
                Field("direction", "direction"), Field("counterparty", "counterparty"),
                Field("amount", "amount_cents", alignment: .right),
                Field("balance", "balance_cents", alignment: .right),
            ],
            rows: lines.map { line in
                [
                    .integer(line.record.seq), .text(line.record.tx.text), .time(line.record.at),
                    .text(line.incoming ? "in" : "out"), .text(line.counterparty.text),
                    .money(line.record.transfer.amount), .money(line.balance),
                ]
            })
    }

    public func render(_ format: OutputFormat, time: TimeFormatter) -> String {
        let transfersIn = lines.filter(\.incoming).count
        let transfersOut = lines.count - transfersIn
        switch format {
        case .json:
            let summary = Rows(
                fields: [
                    Field("machine", "machine"), Field("since", "since_at"), Field("until", "until_at"),
                    Field("opening balance", "opening_balance_cents"),
                    Field("closing balance", "closing_balance_cents"),
                    Field("total in", "total_in_cents"), Field("total out", "total_out_cents"),
                    Field("transfers in", "transfers_in"), Field("transfers out", "transfers_out"),
                    Field("lines", "lines"),
                ],
                rows: [
                    [
                        .text(machine.text), since.map(Cell.time) ?? .missing, until.map(Cell.time) ?? .missing,
                        .money(opening), .money(closing), .money(totalIn), .money(totalOut),
                        .integer(Int64(transfersIn)), .integer(Int64(transfersOut)), .rows(lineRows),
                    ]
                ])
            return summary.renderJSON()
        case .csv:
            // One table a spreadsheet opens as it is: the opening balance
            // first, the closing balance and the totals last, in the same
            // columns as the transfers.
            var rows = lineRows
            let width = rows.fields.count
            func row(_ direction: String, amount: Cell, balance: Cell) -> [Cell] {
                var cells = [Cell](repeating: .missing, count: width)
                cells[3] = .text(direction)
                cells[5] = amount
                cells[6] = balance
                return cells
            }
            rows.rows.insert(row("opening", amount: .missing, balance: .money(opening)), at: 0)
            rows.rows.append(row("closing", amount: .missing, balance: .money(closing)))
            rows.rows.append(row("total in", amount: .money(totalIn), balance: .missing))
            rows.rows.append(row("total out", amount: .money(totalOut), balance: .missing))
            return rows.renderCSV()
        case .table:
            let from = since.map { "from \(time($0))" } ?? "from its registration"
            let to = until.map { " to \(time($0))" } ?? ""
            let body = lines.isEmpty ? "no transfers in this period" : lineRows.renderTable(time: time)
            return """
                statement of \(machine) \(from)\(to)
                opening balance  \(opening.brl)
                \(body)
                closing balance  \(closing.brl)
                total in         \(totalIn.brl) (\(transfersIn) \(transfersIn == 1 ? "transfer" : "transfers"))
                total out        \(totalOut.brl) (\(transfersOut) \(transfersOut == 1 ? "transfer" : "transfers"))
                """
        }
    }
}
