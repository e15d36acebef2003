/// A plain-text table: a header, a rule, and rows, each column padded to its
/// widest cell. Two spaces between columns; no trailing spaces.
public struct TextTable: Sendable, Hashable {
    public enum Alignment: Sendable, Hashable {
        case left
        /// For numbers and money, so the digits line up.
        case right
    }

    public struct Column: Sendable, Hashable {
        public var title: String
        public var alignment: Alignment

        public init(_ title: String, alignment: Alignment = .left) {
            self.title = title
            self.alignment = alignment
        }
    }

    public let columns: [Column]
    public private(set) var rows: [[String]] = []

    public init(columns: [Column]) {
        precondition(!columns.isEmpty, "a table needs a column")
        self.columns = columns
    }

    /// Adds one row; it must have one cell per column.
    public mutating func append(_ row: [String]) {
        precondition(row.count == columns.count, "a row needs one cell per column")
        rows.append(row)
    }

    /// The table as lines joined by newlines, without a final newline.
    public func render() -> String {
        var widths = columns.map(\.title.count)
        for row in rows {
            for (index, cell) in row.enumerated() {
                widths[index] = max(widths[index], cell.count)
            }
        }
        func line(_ cells: [String]) -> String {
            var text = ""
            for (index, cell) in cells.enumerated() {
                let padding = String(repeating: " ", count: widths[index] - cell.count)
                if index > 0 { text += "  " }
                text += columns[index].alignment == .right ? padding + cell : cell + padding
            }
            while text.last == " " { text.removeLast() }
            return text
        }
        var lines = [line(columns.map(\.title)), line(widths.map { String(repeating: "-", count: $0) })]
        lines += rows.map(line)
        return lines.joined(separator: "\n")
    }
}
