public import CarteiraCore

/// Tab completion for the console: command names first, then what the
/// command takes (machine names, keys, command names, options). Pure.
public enum ConsoleCompletion {
    /// The candidates for `word`, given the text before it on the line.
    public static func candidates(
        lineBeforeWord: String, word: String, machines: [MachineName], keys: [PaymentKey]
    ) -> [String] {
        let before = lineBeforeWord.split(whereSeparator: { $0 == " " || $0 == "\t" })
        let options: [String]
        let arguments: [String]
        if let name = before.first {
            guard let command = ConsoleCommand.named(name) else { return [] }
            if before.last == "--format" {
                return matching(OutputFormat.allCases.map(\.rawValue), word)
            }
            if before.last == "--limit" { return [] }
            options = (command.printsRows ? ["--format"] : []) + command.options
            // Positionals are the words before this one that are not options or their values.
            var positionals = 0
            var skipValue = false
            for earlier in before.dropFirst() {
                if skipValue {
                    skipValue = false
                } else if earlier.hasPrefix("--") {
                    skipValue = !earlier.contains("=")
                } else {
                    positionals += 1
                }
            }
            switch (command.argument, positionals) {
            case (.machine, 0): arguments = machines.map(\.text)
            case (.machineOrKey, 0): arguments = machines.map(\.text) + keys.map(\.text)
            case (.command, 0): arguments = ConsoleCommand.all.map(\.name)
            default: arguments = []
            }
        } else {
            options = []
            arguments = ConsoleCommand.all.map(\.name)
        }
        return matching(word.hasPrefix("-") ? options : arguments, word)
    }

    private static func matching(_ candidates: [String], _ word: String) -> [String] {
        candidates.filter { $0.hasPrefix(word) }
    }
}
