public import CarteiraCore

/// How the off-line `journal` commands print what they found.
public enum JournalReport {
    /// `verify`'s summary: one `name  value` pair a line.
    public static func summary(_ summary: VerifySummary, directory: String) -> String {
        var rows = [
            ("journal", Journal.journalPath(in: directory)),
            ("events", "\(summary.events)"),
            ("machines", "\(summary.machines)"),
            ("transfers", "\(summary.transfers)"),
            ("total money", summary.totalMoney.brl),
            ("last seq", "\(summary.lastSeq)"),
            ("last hash", summary.lastHash),
        ]
        if summary.passedOverIncompleteLine {
            rows.append(("note", "a live server's incomplete last line was passed over"))
        }
        return table(header: nil, rows: rows.map { [$0.0, $0.1] }, rightAligned: [])
    }

    /// `replay`'s table: every machine, by name, with its balance and key.
    public static func machineTable(_ ledger: Ledger) -> String {
        let rows = sortedMachines(ledger).map { [$0.name.text, $0.balance.brl, $0.key.text] }
        return table(header: ["MACHINE", "BALANCE", "KEY"], rows: rows, rightAligned: [1])
    }

    /// `replay --format json`: an array of `machine`, `balance_cents`, `key`.
    public static func machineJSON(_ ledger: Ledger) -> String {
        let objects = sortedMachines(ledger).map { machine in
            // Names and keys are plain ASCII without quotes or backslashes.
            "  {\"machine\": \"\(machine.name.text)\", \"balance_cents\": \(machine.balance.value),"
                + " \"key\": \"\(machine.key.text)\"}"
        }
        return objects.isEmpty ? "[]\n" : "[\n" + objects.joined(separator: ",\n") + "\n]\n"
    }

    private static func sortedMachines(_ ledger: Ledger) -> [MachineRecord] {
        ledger.machines.values.sorted { $0.name < $1.name }
    }

    /// Columns padded to their widest cell, two spaces apart, no trailing
    /// blanks.
    private static func table(header: [String]?, rows: [[String]], rightAligned: Set<Int>) -> String {
        let all = (header.map { [$0] } ?? []) + rows
        guard let columns = all.first?.count else { return "" }
        let widths = (0..<columns).map { column in all.map { $0[column].count }.max() ?? 0 }
        var text = ""
        for row in all {
            var line = ""
            for (column, cell) in row.enumerated() {
                let padding = String(repeating: " ", count: widths[column] - cell.count)
                if column > 0 { line += "  " }
                line += rightAligned.contains(column) ? padding + cell : cell + padding
            }
            while line.last == " " { line.removeLast() }
            text += line + "\n"
        }
        return text
    }
}
