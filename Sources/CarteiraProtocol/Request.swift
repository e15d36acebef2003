public import CarteiraCore

/// The most lines `HISTORY` may ask for, and what it gets without a limit.
public enum HistoryLimit {
    public static let range = 1...1000
    public static let defaultValue = 20
}

/// Bytes in a line, without its ending (PROTOCOL.md, Framing).
public let maximumLineBytes = 4096

/// One request line, parsed and with every field checked for form.
public enum Request: Sendable, Hashable {
    case ping
    case register(MachineName)
    /// `token` is `nil` when the text is not of the token form: that answers
    /// `bad_token` once the machine is looked up, like a wrong token.
    case login(MachineName, token: Token?)
    case whoami
    case balance
    case key
    case rotate
    /// The key text as written; its form is checked with the key.
    case check(keyText: String)
    case send(keyText: String, amount: Centavos, requestID: RequestID?)
    case history(limit: Int)
    case quit

    /// The command word, upper case, as written on the wire.
    public var name: String {
        switch self {
        case .ping: "PING"
        case .register: "REGISTER"
        case .login: "LOGIN"
        case .whoami: "WHOAMI"
        case .balance: "BALANCE"
        case .key: "KEY"
        case .rotate: "ROTATE"
        case .check: "CHECK"
        case .send: "SEND"
        case .history: "HISTORY"
        case .quit: "QUIT"
        }
    }

    /// Whether the command needs a logged-in session.
    public var needsSession: Bool {
        switch self {
        case .ping, .register, .login, .check, .quit: false
        case .whoami, .balance, .key, .rotate, .send, .history: true
        }
    }

    /// Parses one line (without its `\n`; a trailing `\r` is dropped). An
    /// empty line is `nil`: it is not a request and gets no answer.
    public static func parse(_ line: Substring) -> Result<Request, Rejection>? {
        var line = line
        if line.utf8.last == UInt8(ascii: "\r") { line = line.dropLast() }
        if line.isEmpty { return nil }
        let fields = wireFields(line)
        // ASCII only: Unicode case mapping and canonical equivalence would let
        // `ſend` or a Kelvin sign `K` name a command.
        guard fields[0].utf8.allSatisfy({ $0 < 0x80 }) else {
            return .failure(Rejection(.unknownCommand, "unknown command \(sanitized(String(fields[0].prefix(32))))"))
        }
        let command = fields[0].uppercased()
        let arguments = fields.dropFirst()
        func count(_ allowed: ClosedRange<Int>) -> Rejection? {
            allowed.contains(arguments.count)
                ? nil
                : Rejection(.badRequest, "\(command) takes \(describe(allowed)) field(s) after the command, got \(arguments.count)")
        }
        switch command {
        case "PING", "WHOAMI", "BALANCE", "KEY", "ROTATE", "QUIT":
            if let problem = count(0...0) { return .failure(problem) }
            switch command {
            case "PING": return .success(.ping)
            case "WHOAMI": return .success(.whoami)
            case "BALANCE": return .success(.balance)
            case "KEY": return .success(.key)
            case "ROTATE": return .success(.rotate)
            default: return .success(.quit)
            }
        case "REGISTER":
            if let problem = count(1...1) { return .failure(problem) }
            guard let machine = MachineName(fields[1]) else { return .failure(badName(fields[1])) }
            return .success(.register(machine))
        case "LOGIN":
            if let problem = count(2...2) { return .failure(problem) }
            guard let machine = MachineName(fields[1]) else { return .failure(badName(fields[1])) }
            return .success(.login(machine, token: Token(fields[2])))
        case "CHECK":
            if let problem = count(1...1) { return .failure(problem) }
            return .success(.check(keyText: String(fields[1])))
        case "SEND":
            if let problem = count(2...3) { return .failure(problem) }
            guard let amount = Centavos(amount: fields[2]) else {
                return .failure(Rejection(.badAmount, "amount must be reais greater than zero, like 50, 50,5 or 50,25"))
            }
            var requestID: RequestID?
            if arguments.count == 3 {
                guard let id = RequestID(fields[3]) else {
                    return .failure(Rejection(.badRequest, "request id must be 1-64 of A-Z a-z 0-9 _ -, not - alone"))
                }
                requestID = id
            }
            return .success(.send(keyText: String(fields[1]), amount: amount, requestID: requestID))
        case "HISTORY":
            if let problem = count(0...1) { return .failure(problem) }
            guard arguments.count == 1 else { return .success(.history(limit: HistoryLimit.defaultValue)) }
            guard fields[1].utf8.count <= 4, fields[1].utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
                let limit = Int(fields[1]), HistoryLimit.range.contains(limit)
            else {
                return .failure(Rejection(.badRequest, "history limit must be a whole number from 1 to 1000"))
            }
            return .success(.history(limit: limit))
        default:
            return .failure(Rejection(.unknownCommand, "unknown command \(sanitized(String(command.prefix(32))))"))
        }
    }

    /// The request as a wire line, with its `\n`: what a client sends.
    public var line: String {
        switch self {
        case .ping, .whoami, .balance, .key, .rotate, .quit: return name + "\n"
        case let .register(machine): return "REGISTER|\(machine)\n"
        case let .login(machine, token): return "LOGIN|\(machine)|\(token?.text ?? "")\n"
        case let .check(keyText): return "CHECK|\(keyText)\n"
        case let .send(keyText, amount, requestID):
            let reais = amount.value / 100
            let cents = amount.value % 100
            let amountText = "\(reais),\(cents < 10 ? "0" : "")\(cents)"
            return "SEND|\(keyText)|\(amountText)" + (requestID.map { "|\($0)" } ?? "") + "\n"
        case let .history(limit): return "HISTORY|\(limit)\n"
        }
    }
}

private func badName(_ text: Substring) -> Rejection {
    Rejection(.badName, "machine name must be 1-64 of A-Z a-z 0-9 . _ -")
}

private func describe(_ range: ClosedRange<Int>) -> String {
    range.lowerBound == range.upperBound ? "\(range.lowerBound)" : "\(range.lowerBound)-\(range.upperBound)"
}

/// Splits a line at every `|` byte. Splitting by `Character` would miss a `|`
/// that a combining mark joins into one grapheme (`|\u{301}`), leaving it
/// inside a field.
func wireFields(_ line: Substring) -> [Substring] {
    line.utf8.split(separator: UInt8(ascii: "|"), omittingEmptySubsequences: false).map { Substring($0) }
}

/// Makes text safe for a wire field: no `|` and no line breaks.
/// Works on Unicode scalars: `\r\n` is one `Character`, and so is `|` with a
/// combining mark, so a `Character` test would let both through.
public func sanitized(_ text: String) -> String {
    var scalars = String.UnicodeScalarView()
    for scalar in text.unicodeScalars {
        scalars.append(scalar == "|" || scalar == "\n" || scalar == "\r" ? "?" : scalar)
    }
    return String(scalars)
}
