public import CarteiraCore

/// Tab completion for the console: command names first, then what the
/// command takes (machine names, keys, transfer ids, command names,
/// options and their values, `--format=json` too). Pure.
public enum ConsoleCompletion {
    /// The candidates for `word`, given the text before it on the line.
    public static func candidates(
        lineBeforeWord: String, word: String, machines: [MachineName], keys: [PaymentKey], transfers: [String] = []
    ) -> [String] {
        let before = lineBeforeWord.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard let name = before.first else {
            return matching(ConsoleCommand.all.map(\.name) + ["exit"], word)
        }
        guard let command = ConsoleCommand.named(name) else { return [] }
        let options = command.allOptions
        // `--format=js` completes to `--format=json`.
        if word.hasPrefix("--"), let equals = word.firstIndex(of: "=") {
            guard let option = ConsoleOption(rawValue: String(word[..<equals])), options.contains(option) else {
                return []
            }
            let prefix = word[...equals]
            return matching(values(of: option, machines: machines).map { prefix + $0 }, word)
        }
        if let last = before.last, let option = ConsoleOption(rawValue: String(last)), options.contains(option) {
            return matching(values(of: option, machines: machines), word)
        }
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
        let arguments: [String]
        switch (command.argument, positionals) {
        case (.machine, 0): arguments = machines.map(\.text)
        case (.machineOrKey, 0): arguments = machines.map(\.text) + keys.map(\.text)
        case (.command, 0): arguments = ConsoleCommand.all.map(\.name)
        case (.transfer, 0): arguments = transfers
        case (.toggle, 0): arguments = command.id == .expanded ? ["on", "off", "auto"] : ["on", "off"]
        default: arguments = []
        }
        return matching(word.hasPrefix("-") ? options.map(\.rawValue) : arguments, word)
    }

    private static func values(of option: ConsoleOption, machines: [MachineName]) -> [String] {
        option.takesMachine ? machines.map(\.text) : option.choices
    }

    private static func matching(_ candidates: [String], _ word: String) -> [String] {
        candidates.filter { $0.hasPrefix(word) }
    }
}
