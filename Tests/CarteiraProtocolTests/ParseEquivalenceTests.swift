import CarteiraCore
import CarteiraTestSupport
@testable import CarteiraProtocol
import Testing

/// The parser as it was before the byte-level rewrite (split into an array,
/// upper-cased command `String`), kept as the reference the fast one must
/// match answer for answer, message included. (One rule joined both later:
/// key text may not hold a `\r`, `Request.lineBreak(in:)`.)
private func referenceParse(_ line: Substring) -> Result<Request, Rejection>? {
    var line = line
    if line.utf8.last == UInt8(ascii: "\r") { line = line.dropLast() }
    if line.isEmpty { return nil }
    let fields = line.utf8.split(separator: UInt8(ascii: "|"), omittingEmptySubsequences: false).map {
        Substring($0)
    }
    guard fields[0].utf8.allSatisfy({ $0 < 0x80 }) else {
        return .failure(Rejection(.unknownCommand, "unknown command \(sanitized(String(fields[0].prefix(32))))"))
    }
    let command = fields[0].uppercased()
    let arguments = fields.count - 1
    func count(_ allowed: ClosedRange<Int>) -> Rejection? {
        let described =
            allowed.lowerBound == allowed.upperBound
            ? "\(allowed.lowerBound)" : "\(allowed.lowerBound)-\(allowed.upperBound)"
        return allowed.contains(arguments)
            ? nil : Rejection(.badRequest, "\(command) takes \(described) field(s) after the command, got \(arguments)")
    }
    let badName = Rejection(.badName, "machine name must be 1-64 of A-Z a-z 0-9 . _ -")
    switch command {
    case "PING", "WHOAMI", "BALANCE", "KEY", "ROTATE", "QUIT":
        if let problem = count(0...0) { return .failure(problem) }
        let requests: [String: Request] = [
            "PING": .ping, "WHOAMI": .whoami, "BALANCE": .balance, "KEY": .key, "ROTATE": .rotate, "QUIT": .quit,
        ]
        return requests[command].map { .success($0) }
    case "REGISTER":
        if let problem = count(1...1) { return .failure(problem) }
        guard let machine = MachineName(fields[1]) else { return .failure(badName) }
        return .success(.register(machine))
    case "LOGIN":
        if let problem = count(2...2) { return .failure(problem) }
        guard let machine = MachineName(fields[1]) else { return .failure(badName) }
        return .success(.login(machine, token: Token(fields[2])))
    case "CHECK":
        if let problem = count(1...1) ?? Request.lineBreak(in: fields[1]) { return .failure(problem) }
        return .success(.check(keyText: KeyText(fields[1])))
    case "SEND":
        if let problem = count(2...3) ?? Request.lineBreak(in: fields[1]) { return .failure(problem) }
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
    case "HISTORY":
        if let problem = count(0...1) { return .failure(problem) }
        guard arguments == 1 else { return .success(.history(limit: HistoryLimit.defaultValue)) }
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

@Suite("Request parsing: the byte-level parser against the reference")
struct ParseEquivalenceTests {
    static let words = [
        "PING", "ping", "Ping", "REGISTER", "register", "LOGIN", "login", "WHOAMI", "BALANCE", "balance", "KEY",
        "key", "ROTATE", "CHECK", "check", "SEND", "send", "SeNd", "HISTORY", "QUIT", "quit", "", "SENDX", "SEN",
        "REGISTERS", "PINGPING", "ſend", "\u{212A}EY", "KEY\u{301}", "S\u{0}ND", "send ", " send", "ÉCHO",
        "HISTORYY", "H", "|", "\r", "a\r", "\0\0ROTATE", "\0PING", "\0\0\0\0SEND", "KEY\0", "\u{1}KEY",
    ]
    static let arguments = [
        "", "alice", "0f8d3c1e-6b2a-4c9e-9a7d-3e5f1b2c4d6e", "50", "50,5", "50.25", "0", "-1", "1000000000000",
        "pay-1", "-", String(repeating: "r", count: 65), "5be1c0c3a9f04e1d8f1b2c3d4e5f6a7b", "0005", "1001", "é",
        "\u{301}", "\r", "a b", "20", "\u{0}",
    ]

    @Test("the same answer, message included, for 60,000 generated lines")
    func sameAnswers() {
        var random = SplitMix64(seed: 20_261_201)
        for _ in 0..<60_000 {
            var line = random.pick(Self.words) ?? ""
            for _ in 0..<Int(random.next() % 6) { line += "|" + (random.pick(Self.arguments) ?? "") }
            if random.next() % 8 == 0 { line += "\r" }
            let fast = Request.parse(Substring(line))
            let reference = referenceParse(Substring(line))
            #expect(fast == reference, "\(line.debugDescription)")
            if fast != reference { return }
        }
    }

    @Test("a line's bytes get its text's answer, whether or not they take the fast reading")
    func bytesAnswerAsText() {
        var random = SplitMix64(seed: 20_261_206)
        var fastReadings = 0
        for _ in 0..<60_000 {
            // Half of them SEND as clients write it: the fast reading's lines
            // and the ones just beside them.
            var line = random.next() % 2 == 0 ? "SEND" : random.pick(Self.words) ?? ""
            for _ in 0..<Int(random.next() % 5) { line += "|" + (random.pick(Self.arguments) ?? "") }
            if random.next() % 8 == 0 { line += "\r" }
            let bytes = Array(line.utf8)
            let viaBytes = bytes.withUnsafeBytes { Request.parse(utf8: $0) }
            let viaText = Request.parse(Substring(line))
            #expect(viaBytes == viaText, "\(line.debugDescription)")
            if viaBytes != viaText { return }
            if bytes.withUnsafeBytes({ Request.parseCommon($0) }) != nil { fastReadings += 1 }
        }
        // The generator reaches the fast reading, and not only it.
        #expect(fastReadings > 1_000 && fastReadings < 30_000, "\(fastReadings) fast readings")
    }

    @Test("the lines clients write most take the fast reading")
    func commonLinesReadFast() {
        let key = "0f8d3c1e-6b2a-4c9e-9a7d-3e5f1b2c4d6e"
        let cases: [(String, Request)] = [
            ("PING", .ping), ("PING\r", .ping),
            ("SEND|\(key)|0,01", .send(keyText: KeyText(key), amount: Centavos(1), requestID: nil)),
            ("SEND|\(key)|50\r", .send(keyText: KeyText(key), amount: Centavos(5_000), requestID: nil)),
            (
                "SEND|\(key)|50.5|pay-1",
                .send(keyText: KeyText(key), amount: Centavos(5_050), requestID: RequestID("pay-1"))
            ),
            // The key's form is checked with the key, later, as for any line.
            ("SEND|not a key|1", .send(keyText: "not a key", amount: Centavos(100), requestID: nil)),
        ]
        for (line, request) in cases {
            #expect(Array(line.utf8).withUnsafeBytes { Request.parseCommon($0) } == request, "\(line.debugDescription)")
        }
        // Beside them, the general reading answers.
        for line in [
            "ping", "Send|\(key)|1", "SEND|\(key)", "SEND|\(key)|0", "SEND|\(key)|1|-", "SEND|k\r|1", "SEND|é|1",
        ] {
            #expect(Array(line.utf8).withUnsafeBytes { Request.parseCommon($0) } == nil, "\(line.debugDescription)")
        }
    }

    @Test("a line that is not UTF-8 is refused, wherever the bad byte is")
    func notUTF8() {
        let refusal = Result<Request, Rejection>.failure(Rejection(.badRequest, "the line is not valid UTF-8"))
        let lines: [[UInt8]] = [
            [0xFF], [0x50, 0x49, 0x4E, 0xC7], Array("SEND|".utf8) + [0xC3, 0x28] + Array("|1".utf8),
            Array("SEND|k|1|".utf8) + [0x80], Array("SEND|k|".utf8) + [0xE2, 0x82] + Array("|id".utf8),
        ]
        for bytes in lines {
            #expect(bytes.withUnsafeBytes { Request.parse(utf8: $0) } == refusal, "\(bytes)")
        }
    }

    @Test("every command word in any case, and the words around them")
    func everyWord() {
        let cased = Self.words + Self.words.map({ $0.lowercased() }) + Self.words.map({ $0.uppercased() })
        for word in cased {
            #expect(Request.parse(Substring(word)) == referenceParse(Substring(word)), "\(word.debugDescription)")
        }
    }
}
