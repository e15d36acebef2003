import CarteiraCore
import CarteiraTerminal

/// A command line that cannot run: one clear line for the operator.
struct ConsoleError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// Splits a command line into words: blanks separate them, and a word in
/// double or single quotes may hold blanks (`--since "2026-11-26 19:00"`).
func consoleWords(_ line: String) throws(ConsoleError) -> [Substring] {
    var words: [Substring] = []
    var index = line.startIndex
    while index < line.endIndex {
        let character = line[index]
        if character == " " || character == "\t" {
            index = line.index(after: index)
            continue
        }
        if character == "\"" || character == "'" {
            let start = line.index(after: index)
            guard let end = line[start...].firstIndex(of: character) else {
                throw ConsoleError("a quote \(character) is not closed")
            }
            words.append(line[start..<end])
            index = line.index(after: end)
            continue
        }
        let end = line[index...].firstIndex(where: { $0 == " " || $0 == "\t" }) ?? line.endIndex
        words.append(line[index..<end])
        index = end
    }
    return words
}

/// The arguments of one command line, options taken out and checked.
struct ParsedArguments {
    var positionals: [String] = []
    var format = OutputFormat.table
    var limit: Int?
    var sort: MachineSort?
    var at: PointInTime?
    var since: Timestamp?
    var until: Timestamp?
    var from: MachineName?
    var to: MachineName?

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
            guard let option = ConsoleOption(rawValue: String(parts[0]).lowercased()),
                command.allOptions.contains(option)
            else {
                throw ConsoleError("\(command.name): unknown option \(parts[0]) (usage: \(command.usage))")
            }
            guard var value = parts.count == 2 ? String(parts[1]) : words.popFirst().map(String.init), !value.isEmpty
            else {
                throw ConsoleError("\(command.name): \(option.rawValue) needs a value (usage: \(command.usage))")
            }
            // A date, then its time as the next word.
            if option.takesTime, value.count == 10, let next = words.first, next.first?.isNumber == true,
                next.contains(":"), !next.contains("-")
            {
                value += " " + next
                words.removeFirst()
            }
            try set(option, value, for: command)
        }
    }

    private mutating func set(_ option: ConsoleOption, _ value: String, for command: ConsoleCommand)
        throws(ConsoleError)
    {
        let name = "\(command.name): \(option.rawValue)"
        switch option {
        case .format:
            guard let format = OutputFormat(rawValue: value.lowercased()) else {
                throw ConsoleError("\(name) takes table, csv or json, not \(value.prefix(40))")
            }
            self.format = format
        case .limit:
            guard let limit = Int(value), Self.limits.contains(limit) else {
                throw ConsoleError(
                    "\(name) takes a number from \(Self.limits.lowerBound) to \(Self.limits.upperBound), not \(value.prefix(40))"
                )
            }
            self.limit = limit
        case .sort:
            guard let sort = MachineSort(rawValue: value.lowercased()) else {
                throw ConsoleError("\(name) takes name, balance or last, not \(value.prefix(40))")
            }
            self.sort = sort
        case .at:
            guard let point = PointInTime(value) else {
                throw ConsoleError("\(name) takes a seq or a time, \(TerminalTime.inputForms); not \(value.prefix(40))")
            }
            at = point
        case .since, .until:
            guard let time = TerminalTime.parse(value) else {
                throw ConsoleError("\(name) takes a time, \(TerminalTime.inputForms); not \(value.prefix(40))")
            }
            if option == .since { since = time } else { until = time }
            if let since, let until, until < since {
                throw ConsoleError("\(command.name): --until is before --since")
            }
        case .from, .to:
            guard let machine = MachineName(value) else {
                throw ConsoleError("\(name): \(value.prefix(80)) is not a machine name")
            }
            if option == .from { from = machine } else { to = machine }
        }
    }
}
