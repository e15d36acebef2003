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
    /// The key as written; whether it is of a key's form is checked with
    /// the key (`KeyText`).
    case check(keyText: KeyText)
    case send(keyText: KeyText, amount: Centavos, requestID: RequestID?)
    case history(limit: Int)
    case quit

    /// Every command word, upper case, as written on the wire, in the order
    /// of `commandIndex`.
    public static let commandNames = [
        "PING", "REGISTER", "LOGIN", "WHOAMI", "BALANCE", "KEY", "ROTATE", "CHECK", "SEND", "HISTORY", "QUIT",
    ]

    /// The command's place in `commandNames`.
    public var commandIndex: Int {
        switch self {
        case .ping: 0
        case .register: 1
        case .login: 2
        case .whoami: 3
        case .balance: 4
        case .key: 5
        case .rotate: 6
        case .check: 7
        case .send: 8
        case .history: 9
        case .quit: 10
        }
    }

    /// The command word, upper case, as written on the wire.
    public var name: String { Self.commandNames[commandIndex] }

    /// Whether the command needs a logged-in session.
    public var needsSession: Bool {
        switch self {
        case .ping, .register, .login, .check, .quit: false
        case .whoami, .balance, .key, .rotate, .send, .history: true
        }
    }

    /// Key text is kept as written (its form is checked with the key, in the
    /// order of PROTOCOL.md's errors), but PROTOCOL.md lets no field hold a
    /// line break: a `\r` left after the line's one `\r\n` ending is refused,
    /// as `Request.line` could not write it back (found by fuzz-request).
    static func lineBreak(in field: Substring) -> Rejection? {
        guard field.utf8.contains(UInt8(ascii: "\r")) else { return nil }
        return Rejection(.badRequest, "a field may not hold a line break (a carriage return)")
    }

    /// Parses one line (without its `\n`; a trailing `\r` is dropped). An
    /// empty line is `nil`: it is not a request and gets no answer.
    ///
    /// Every line's reading (the server's common lines take the shortcut
    /// `parse(utf8:)`, which falls back to this one): fields are cut as
    /// `Substring`s of the line (no array), and the command word is matched
    /// on its bytes folded to upper case, packed into one integer (no
    /// `String` is made unless the line is refused).
    public static func parse(_ line: Substring) -> Result<Request, Rejection>? {
        var line = line
        if line.utf8.last == UInt8(ascii: "\r") { line = line.dropLast() }
        if line.isEmpty { return nil }
        let fields = WireFields(line)
        let word = fields[0]
        // ASCII only: Unicode case mapping and canonical equivalence would let
        // `ſend` or a Kelvin sign `K` name a command.
        guard word.utf8.allSatisfy({ $0 < 0x80 }) else {
            return .failure(Rejection(.unknownCommand, "unknown command \(sanitized(String(word.prefix(32))))"))
        }
        guard let command = CommandWord(word) else {
            return .failure(
                Rejection(.unknownCommand, "unknown command \(sanitized(String(word.uppercased().prefix(32))))"))
        }
        let arguments = fields.count - 1
        func count(_ allowed: ClosedRange<Int>) -> Rejection? {
            allowed.contains(arguments)
                ? nil
                : Rejection(
                    .badRequest,
                    "\(command.name) takes \(describe(allowed)) field(s) after the command, got \(arguments)")
        }
        switch command {
        case .ping, .whoami, .balance, .key, .rotate, .quit:
            if let problem = count(0...0) { return .failure(problem) }
            switch command {
            case .ping: return .success(.ping)
            case .whoami: return .success(.whoami)
            case .balance: return .success(.balance)
            case .key: return .success(.key)
            case .rotate: return .success(.rotate)
            default: return .success(.quit)
            }
        case .register:
            if let problem = count(1...1) { return .failure(problem) }
            guard let machine = MachineName(fields[1]) else { return .failure(badName(fields[1])) }
            return .success(.register(machine))
        case .login:
            if let problem = count(2...2) { return .failure(problem) }
            guard let machine = MachineName(fields[1]) else { return .failure(badName(fields[1])) }
            return .success(.login(machine, token: Token(fields[2])))
        case .check:
            if let problem = count(1...1) ?? lineBreak(in: fields[1]) { return .failure(problem) }
            return .success(.check(keyText: KeyText(fields[1])))
        case .send:
            if let problem = count(2...3) ?? lineBreak(in: fields[1]) { return .failure(problem) }
            guard let amount = Centavos(amount: fields[2]) else {
                return .failure(Rejection(.badAmount, "amount must be reais greater than zero, like 50, 50,5 or 50,25"))
            }
            var requestID: RequestID?
            if arguments == 3 {
                guard let id = RequestID(fields[3]) else {
                    return .failure(Rejection(.badRequest, "request id must be 1-64 of A-Z a-z 0-9 _ -, not - alone"))
                }
                requestID = id
            }
            return .success(.send(keyText: KeyText(fields[1]), amount: amount, requestID: requestID))
        case .history:
            if let problem = count(0...1) { return .failure(problem) }
            guard arguments == 1 else { return .success(.history(limit: HistoryLimit.defaultValue)) }
            guard fields[1].utf8.count <= 4, fields[1].utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
                let limit = Int(fields[1]), HistoryLimit.range.contains(limit)
            else {
                return .failure(Rejection(.badRequest, "history limit must be a whole number from 1 to 1000"))
            }
            return .success(.history(limit: limit))
        }
    }

    /// Parses one line's bytes (without its `\n`) as `parse(_:)` parses its
    /// text; a line that is not UTF-8 is refused.
    ///
    /// The lines a busy server reads most, `SEND` with its fields and
    /// `PING`, written as clients write them (command upper case, ASCII, no
    /// `\r` but the ending), are read straight from the bytes: no `String`
    /// for the line and no `Substring` per field. Every other line, and every
    /// such line that one of its fields would refuse, goes through
    /// `parse(_:)`, so each line gets the same answer either way.
    public static func parse(utf8 line: UnsafeRawBufferPointer) -> Result<Request, Rejection>? {
        if let common = parseCommon(line) { return .success(common) }
        guard let text = String(validating: line, as: UTF8.self) else {
            return .failure(Rejection(.badRequest, "the line is not valid UTF-8"))
        }
        return parse(text[...])
    }

    /// `SEND|<key>|<amount>[|<request id>]` and `PING` as clients write them,
    /// or `nil` for anything else, including any line with a field in the
    /// wrong form: `parse(_:)` then gives its answer.
    static func parseCommon(_ line: UnsafeRawBufferPointer) -> Request? {
        var count = line.count
        if count > 0, line[count - 1] == UInt8(ascii: "\r") { count -= 1 }
        if count == 4, line.starts(with: "PING".utf8) { return .ping }
        guard count > 5, line.starts(with: "SEND|".utf8) else { return nil }
        // Where the key ends and the amount starts, and where the amount
        // ends and the request id starts; ASCII with no `\r`, so any text
        // here is valid UTF-8 and has no line break.
        var bars = 0
        var keyEnd = count
        var amountEnd = count
        for index in 5..<count {
            let byte = line[index]
            guard byte < 0x80, byte != UInt8(ascii: "\r") else { return nil }
            guard byte == UInt8(ascii: "|") else { continue }
            bars += 1
            switch bars {
            case 1: keyEnd = index
            case 2: amountEnd = index
            default: return nil
            }
        }
        guard bars > 0 else { return nil }
        func text(_ range: Range<Int>) -> String {
            String(decoding: UnsafeRawBufferPointer(rebasing: line[range]), as: UTF8.self)
        }
        guard let amount = Centavos(amountUTF8: UnsafeRawBufferPointer(rebasing: line[keyEnd + 1..<amountEnd])) else {
            return nil
        }
        var requestID: RequestID?
        if bars == 2 {
            guard let id = RequestID(text(amountEnd + 1..<count)) else { return nil }
            requestID = id
        }
        let keyText = KeyText(
            utf8: UnsafeRawBufferPointer(rebasing: line[5..<keyEnd]).assumingMemoryBound(to: UInt8.self))
        return .send(keyText: keyText, amount: amount, requestID: requestID)
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

/// A request's command word, recognised from its bytes.
private enum CommandWord: UInt64, CaseIterable {
    // Each name's ASCII bytes, big-endian in one integer (`"KEY"` is
    // 0x4B4559): `init` packs the word the same way after folding a-z to
    // A-Z, so one comparison per candidate matches it. No name is longer
    // than 8 bytes.
    case ping = 0x5049_4E47
    case register = 0x5245_4749_5354_4552
    case login = 0x4C_4F47_494E
    case whoami = 0x5748_4F41_4D49
    case balance = 0x42_414C_414E_4345
    case key = 0x4B_4559
    case rotate = 0x524F_5441_5445
    case check = 0x43_4845_434B
    case send = 0x5345_4E44
    case history = 0x48_4953_544F_5259
    case quit = 0x5155_4954

    init?(_ word: Substring) {
        guard (1...8).contains(word.utf8.count) else { return nil }
        var packed: UInt64 = 0
        for byte in word.utf8 {
            let upper = byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z") ? byte - 32 : byte
            // Letters only: a NUL would pack to nothing (`"\0\0ROTATE"` is
            // ROTATE's number), and no command has another byte.
            guard upper >= UInt8(ascii: "A") && upper <= UInt8(ascii: "Z") else { return nil }
            packed = packed << 8 | UInt64(upper)
        }
        self.init(rawValue: packed)
    }

    /// The word as written on the wire, upper case.
    var name: String {
        var bytes: [UInt8] = []
        var rest = rawValue
        while rest > 0 {
            bytes.insert(UInt8(truncatingIfNeeded: rest), at: 0)
            rest >>= 8
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// The fields of a request line, cut at every `|` byte: the first four as
/// `Substring`s of the line (no request has more), and how many there are.
/// Cut by bytes, not `Character`s: a combining mark after `|` (`|\u{301}`)
/// would hide it inside a grapheme.
struct WireFields {
    private(set) var count = 0
    private var first = Substring()
    private var second = Substring()
    private var third = Substring()
    private var fourth = Substring()

    init(_ line: Substring) {
        let bytes = line.utf8
        var start = bytes.startIndex
        while true {
            let end = bytes[start...].firstIndex(of: UInt8(ascii: "|")) ?? bytes.endIndex
            switch count {
            case 0: first = Substring(bytes[start..<end])
            case 1: second = Substring(bytes[start..<end])
            case 2: third = Substring(bytes[start..<end])
            case 3: fourth = Substring(bytes[start..<end])
            default: break
            }
            count += 1
            guard end < bytes.endIndex else { return }
            start = bytes.index(after: end)
        }
    }

    /// Field `index` (0 to 3); empty past `count`.
    subscript(index: Int) -> Substring {
        switch index {
        case 0: first
        case 1: second
        case 2: third
        default: fourth
        }
    }
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
