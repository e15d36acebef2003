public import CarteiraCore

/// How a command prints its rows: `--format table|csv|json`.
public enum OutputFormat: String, Sendable, Hashable, CaseIterable {
    case table
    case csv
    case json
}

/// How rows are shown to people (psql's `\x`).
public enum ExpandedMode: String, Sendable, Hashable, CaseIterable {
    /// Every table as one record per row.
    case on
    /// Always tables.
    case off
    /// Records when a table is wider than the terminal.
    case auto
}

/// One value in a row. It knows how to show itself to people (table) and to
/// programs (CSV, JSON): money as integer centavos, times as UTC ISO 8601.
public enum Cell: Sendable, Hashable {
    case text(String)
    /// Shown as `-` in tables, empty in CSV, `null` in JSON.
    case missing
    case integer(Int64)
    /// A non-negative quantity in hundredths, shown with two decimals.
    case hundredths(Int64)
    case money(Centavos)
    case time(Timestamp)
    /// A duration: `1h 02m 05s` for people, whole seconds for programs.
    case seconds(Int64)
    /// Rows inside a row: a JSON array of objects (`machine`'s last
    /// transfers); tables and CSV print them apart.
    indirect case rows(Rows)
}

/// A column: its title for people and its field name for programs.
public struct Field: Sendable, Hashable {
    public var title: String
    /// The CSV header / JSON key; money fields end in `_cents`.
    public var name: String
    /// Numbers and money are right-aligned in tables, so the digits line up.
    public var alignment: TextTable.Alignment

    public init(_ title: String, _ name: String, alignment: TextTable.Alignment = .left) {
        self.title = title
        self.name = name
        self.alignment = alignment
    }
}

/// Rows a command prints, in any `OutputFormat`.
public struct Rows: Sendable, Hashable {
    public var fields: [Field]
    public var rows: [[Cell]]

    public init(fields: [Field], rows: [[Cell]] = []) {
        self.fields = fields
        self.rows = rows
    }

    public func render(_ format: OutputFormat, time: TimeFormatter) -> String {
        switch format {
        case .table: return renderTable(time: time)
        case .csv: return renderCSV()
        case .json: return renderJSON()
        }
    }

    /// The rows as an aligned table with a header; numbers and money right-aligned.
    public func renderTable(time: TimeFormatter) -> String {
        var table = TextTable(columns: fields.map { TextTable.Column($0.title, alignment: $0.alignment) })
        for row in rows { table.append(row.map { $0.forPeople(time: time) }) }
        return table.render()
    }

    /// One record (the first row) as `label  value` lines, labels padded.
    public func renderRecord(time: TimeFormatter) -> String {
        guard let row = rows.first else { return "" }
        let width = fields.map(\.title.count).max() ?? 0
        return zip(fields, row).map { field, cell in
            field.title + String(repeating: " ", count: width - field.title.count) + "  " + cell.forPeople(time: time)
        }.joined(separator: "\n")
    }

    /// Every row as a record (`\x`): a `-[ RECORD n ]-` rule, then
    /// `label | value` lines, as psql's expanded display.
    public func renderRecords(time: TimeFormatter) -> String {
        let width = fields.map(\.title.count).max() ?? 0
        var lines: [String] = []
        for (index, row) in rows.enumerated() {
            lines.append("-[ RECORD \(index + 1) ]" + String(repeating: "-", count: max(0, width - 9)))
            for (field, cell) in zip(fields, row) {
                let value = cell.forPeople(time: time)
                lines.append(field.title + String(repeating: " ", count: width - field.title.count) + " | " + value)
            }
        }
        return lines.map { line in
            var line = line
            while line.last == " " { line.removeLast() }
            return line
        }.joined(separator: "\n")
    }

    /// The rows for people, as psql shows them: a table with a row-count
    /// footer (`(3 rows)`), or one record per row when `expanded` says so
    /// (`.on`, or `.auto` and the table is wider than `width` columns).
    public func renderForPeople(
        expanded: ExpandedMode, width: Int?, footer: Bool = true, time: TimeFormatter
    ) -> String {
        let count = rows.count == 1 ? "(1 row)" : "(\(rows.count) rows)"
        let text = renderTable(time: time)
        let tooWide: Bool
        if expanded == .auto, let width {
            tooWide = text.split(separator: "\n").contains { $0.count > width }
        } else {
            tooWide = false
        }
        let body = (expanded == .on || tooWide) && !rows.isEmpty ? renderRecords(time: time) : text
        return footer ? body + "\n" + count : body
    }

    public func renderCSV() -> String {
        var lines = [fields.map { csvQuoted($0.name) }.joined(separator: ",")]
        for row in rows {
            lines.append(
                row.map { cell in
                    switch cell {
                    case let .text(text): return csvQuoted(text)
                    case .missing: return ""
                    default: return cell.forPrograms
                    }
                }.joined(separator: ","))
        }
        return lines.joined(separator: "\n")
    }

    /// One JSON array of objects, keys in column order.
    public func renderJSON() -> String {
        let objects = rows.map { row in
            "{"
                + zip(fields, row).map { field, cell in
                    let value: String
                    switch cell {
                    case let .text(text): value = jsonQuoted(text)
                    case .missing: value = "null"
                    case .time: value = jsonQuoted(cell.forPrograms)
                    case let .rows(nested): value = nested.renderJSON()
                    default: value = cell.forPrograms
                    }
                    return jsonQuoted(field.name) + ":" + value
                }.joined(separator: ",") + "}"
        }
        return "[" + objects.joined(separator: ",") + "]"
    }
}

extension Cell {
    func forPeople(time format: TimeFormatter) -> String {
        switch self {
        case let .text(text): return text
        case .missing: return "-"
        case let .integer(value): return String(value)
        case let .hundredths(value): return hundredthsText(value)
        case let .money(amount): return amount.brl
        case let .time(timestamp): return format(timestamp)
        case let .seconds(seconds): return TerminalTime.duration(seconds: seconds)
        case let .rows(nested): return "\(nested.rows.count) rows"
        }
    }

    var forPrograms: String {
        switch self {
        case let .text(text): return text
        case .missing: return ""
        case let .integer(value): return String(value)
        case let .hundredths(value): return hundredthsText(value)
        case let .money(amount): return String(amount.value)
        case let .time(timestamp): return timestamp.iso8601
        case let .seconds(seconds): return String(seconds)
        case let .rows(nested): return String(nested.rows.count)
        }
    }
}

private func hundredthsText(_ value: Int64) -> String {
    let magnitude = value.magnitude
    let fraction = magnitude % 100
    return (value < 0 ? "-" : "") + "\(magnitude / 100)." + (fraction < 10 ? "0" : "") + "\(fraction)"
}

/// RFC 4180: quote a field holding a comma, quote or line break; double the quotes.
func csvQuoted(_ text: String) -> String {
    guard text.unicodeScalars.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else {
        return text
    }
    var quoted = "\""
    for character in text {
        quoted.append(character)
        if character == "\"" { quoted.append("\"") }
    }
    return quoted + "\""
}

/// A JSON string literal: quotes, backslashes and control characters escaped.
public func jsonQuoted(_ text: String) -> String {
    var quoted = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": quoted += "\\\""
        case "\\": quoted += "\\\\"
        case "\n": quoted += "\\n"
        case "\r": quoted += "\\r"
        case "\t": quoted += "\\t"
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            quoted += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: quoted.unicodeScalars.append(scalar)
        }
    }
    return quoted + "\""
}
