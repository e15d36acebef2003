import CarteiraCore
import CarteiraProtocol
import Testing

let key = "0f8d3c1e-6b2a-4c9e-9a7d-3e5f1b2c4d6e"
let token = "5be1c0c3a9f04e1d8f1b2c3d4e5f6a7b"

/// What parsing one line should give.
enum Parsed: Sendable, Equatable {
    case request(Request)
    case error(ErrorCode)
    case ignored
}

func parsed(_ line: String) -> Parsed {
    switch Request.parse(Substring(line)) {
    case nil: .ignored
    case let .success(request)?: .request(request)
    case let .failure(rejection)?: .error(rejection.code)
    }
}

func name(_ text: String) -> MachineName {
    guard let name = MachineName(text) else { preconditionFailure("test name \(text) is not a machine name") }
    return name
}

func id(_ text: String) -> RequestID {
    guard let id = RequestID(text) else { preconditionFailure("test id \(text) is not a request id") }
    return id
}

let validLines: [(String, Request)] = [
    ("PING", .ping), ("ping", .ping), ("Ping", .ping), ("pInG\r", .ping),
    ("REGISTER|alice", .register(name("alice"))), ("register|alice\r", .register(name("alice"))),
    ("REGISTER|\(String(repeating: "m", count: 64))", .register(name(String(repeating: "m", count: 64)))),
    ("LOGIN|alice|\(token)", .login(name("alice"), token: Token(token))),
    ("login|alice|not-a-token", .login(name("alice"), token: nil)),
    ("LOGIN|alice|\(token.uppercased())", .login(name("alice"), token: nil)),
    ("LOGIN|alice|", .login(name("alice"), token: nil)),
    ("WHOAMI", .whoami), ("whoami", .whoami), ("BALANCE", .balance), ("Balance", .balance), ("KEY", .key),
    ("key", .key), ("ROTATE", .rotate), ("rotate", .rotate), ("QUIT", .quit), ("quit\r", .quit),
    ("CHECK|\(key)", .check(keyText: KeyText(key))), ("check|anything", .check(keyText: "anything")),
    ("CHECK|", .check(keyText: "")),
    ("SEND|\(key)|50", .send(keyText: KeyText(key), amount: Centavos(5_000), requestID: nil)),
    ("send|\(key)|50,5|pay-1", .send(keyText: KeyText(key), amount: Centavos(5_050), requestID: id("pay-1"))),
    (
        "Send|\(key)|50.25|\(String(repeating: "r", count: 64))\r",
        .send(keyText: KeyText(key), amount: Centavos(5_025), requestID: id(String(repeating: "r", count: 64)))
    ),
    ("SEND|whatever|0,01", .send(keyText: "whatever", amount: Centavos(1), requestID: nil)),
    ("HISTORY", .history(limit: 20)), ("history", .history(limit: 20)), ("HISTORY|1", .history(limit: 1)),
    ("HISTORY|1000", .history(limit: 1_000)), ("HISTORY|0005", .history(limit: 5)),
]

let failingLines: [(String, ErrorCode)] = [
    // Field counts.
    ("PING|", .badRequest), ("PING|x", .badRequest), ("WHOAMI|x", .badRequest), ("BALANCE|1", .badRequest),
    ("KEY|x", .badRequest), ("ROTATE|now", .badRequest), ("QUIT|x", .badRequest), ("REGISTER", .badRequest),
    ("REGISTER|a|b", .badRequest), ("LOGIN", .badRequest), ("LOGIN|alice", .badRequest),
    ("LOGIN|alice|\(token)|x", .badRequest), ("CHECK", .badRequest), ("CHECK|\(key)|x", .badRequest),
    ("SEND", .badRequest), ("SEND|\(key)", .badRequest), ("SEND|\(key)|1|id|x", .badRequest),
    ("HISTORY|1|2", .badRequest),
    // Request ids.
    ("SEND|\(key)|10|-", .badRequest), ("SEND|\(key)|10|", .badRequest), ("SEND|\(key)|10|a b", .badRequest),
    ("SEND|\(key)|10|a.b", .badRequest), ("SEND|\(key)|10|\(String(repeating: "r", count: 65))", .badRequest),
    ("SEND|\(key)|10|pagó", .badRequest),
    // History limits.
    ("HISTORY|0", .badRequest), ("HISTORY|1001", .badRequest), ("HISTORY|abc", .badRequest),
    ("HISTORY|-1", .badRequest),
    ("HISTORY|", .badRequest), ("HISTORY|+5", .badRequest), ("HISTORY|99999999999999999999", .badRequest),
    ("HISTORY|1\u{0663}", .badRequest), ("HISTORY| 5", .badRequest),
    // Names.
    ("REGISTER|", .badName), ("REGISTER|al ice", .badName), ("REGISTER|ação", .badName),
    ("REGISTER|\(String(repeating: "m", count: 65))", .badName), ("LOGIN|bad name|\(token)", .badName),
    ("LOGIN||\(token)", .badName),
    // Amounts.
    ("SEND|\(key)|0", .badAmount), ("SEND|\(key)|0,00", .badAmount), ("SEND|\(key)|abc", .badAmount),
    ("SEND|\(key)|-1", .badAmount), ("SEND|\(key)|1,234", .badAmount), ("SEND|\(key)||pay-1", .badAmount),
    ("SEND|\(key)|1234567890123|pay-1", .badAmount), ("SEND|\(key)|1e3", .badAmount),
    // Command names: ASCII case-insensitive only.
    ("FOO", .unknownCommand), ("|", .unknownCommand), ("|PING", .unknownCommand), (" PING", .unknownCommand),
    ("PING ", .unknownCommand), ("ſend|\(key)|1", .unknownCommand), ("pıng", .unknownCommand),
    ("\u{212A}EY", .unknownCommand), ("ＰＩＮＧ", .unknownCommand), ("PING\u{0301}", .unknownCommand),
    ("PING\r\r", .unknownCommand),
]

@Suite("Request.parse")
struct RequestTests {
    @Test("every command parses, with case-insensitive names and an optional \\r ending", arguments: validLines)
    func valid(line: String, request: Request) {
        #expect(parsed(line) == .request(request))
    }

    @Test("each malformed line is answered with the first failing check's error code", arguments: failingLines)
    func invalid(line: String, code: ErrorCode) {
        #expect(parsed(line) == .error(code))
    }

    @Test("an empty line, with or without \\r, is not a request")
    func emptyLine() {
        #expect(parsed("") == .ignored)
        #expect(parsed("\r") == .ignored)
    }

    @Test("a | joined to a combining mark still separates fields, so no field can hold a |")
    func pipeWithCombiningMark() {
        #expect(parsed("CHECK|\(key)|\u{0301}x") == .error(.badRequest))
        #expect(parsed("PING|\u{0301}") == .error(.badRequest))
        #expect(parsed("REGISTER|\u{0301}alice") == .error(.badName))
        #expect(parsed("CHECK|x\u{0301}") == .request(.check(keyText: "x\u{0301}")))
    }

    @Test("across many lines mixing | with other characters, no parsed field ever contains a |")
    func noPipeInFields() {
        let fragments = ["|", "|\u{0301}", "\u{0301}|", "a", "1", ",", "-", "\u{200D}", "é", "\u{FE0F}", "||", key]
        let commands = ["CHECK|", "SEND|", "SEND|\(key)|1|", "REGISTER|", "LOGIN|alice|", "LOGIN|", "HISTORY|"]
        var lines = 0
        for command in commands {
            for first in fragments {
                for second in fragments {
                    for third in fragments {
                        let line = command + first + second + third
                        lines += 1
                        guard case let .request(request) = parsed(line) else { continue }
                        for field in textFields(of: request) {
                            #expect(!field.unicodeScalars.contains("|"), "line \(line) gave field \(field)")
                        }
                    }
                }
            }
        }
        #expect(lines == commands.count * fragments.count * fragments.count * fragments.count)
    }

    @Test("every request's wire line parses back to the same request", arguments: validLines.map(\.1))
    func lineRoundTrip(request: Request) throws {
        let line = request.line
        #expect(line.hasSuffix("\n"))
        #expect(line.utf8.filter { $0 == UInt8(ascii: "\n") }.count == 1)
        let parsedBack = Request.parse(Substring(line.dropLast()))
        if case .login(_, token: nil) = request {
            // A token not of the token form is not kept, so it goes back as an empty field.
            #expect(line.hasSuffix("|\n"))
        }
        #expect(try #require(parsedBack).get() == request)
    }

    @Test("send lines write the amount as reais with two decimals")
    func sendLineAmount() {
        #expect(Request.send(keyText: KeyText(key), amount: Centavos(5), requestID: nil).line == "SEND|\(key)|0,05\n")
        #expect(
            Request.send(keyText: KeyText(key), amount: Centavos(123_456), requestID: id("x")).line
                == "SEND|\(key)|1234,56|x\n")
    }

    @Test("names and session needs match the protocol's table")
    func namesAndSessions() {
        let all: [Request] = [
            .ping, .register(name("a")), .login(name("a"), token: nil), .whoami, .balance, .key, .rotate,
            .check(keyText: KeyText(key)), .send(keyText: KeyText(key), amount: Centavos(1), requestID: nil),
            .history(limit: 1), .quit,
        ]
        #expect(
            all.map(\.name) == [
                "PING", "REGISTER", "LOGIN", "WHOAMI", "BALANCE", "KEY", "ROTATE", "CHECK", "SEND", "HISTORY", "QUIT",
            ])
        #expect(all.filter(\.needsSession).map(\.name) == ["WHOAMI", "BALANCE", "KEY", "ROTATE", "SEND", "HISTORY"])
        #expect(HistoryLimit.range == 1...1_000)
        #expect(HistoryLimit.defaultValue == 20)
        #expect(maximumLineBytes == 4_096)
    }

    @Test("an unknown command's message names it, cut short and without | or line breaks")
    func unknownCommandMessage() throws {
        let long = String(repeating: "X", count: 100)
        guard case let .failure(rejection)? = Request.parse(Substring(long + "|a")) else {
            Issue.record("expected a failure")
            return
        }
        #expect(rejection.code == .unknownCommand)
        #expect(rejection.message.contains(String(repeating: "X", count: 32)))
        #expect(!rejection.message.contains(String(repeating: "X", count: 33)))
        guard case let .failure(unicode)? = Request.parse("ſ\u{0301}\r\nend") else {
            Issue.record("expected a failure")
            return
        }
        #expect(!unicode.message.unicodeScalars.contains { $0 == "\n" || $0 == "\r" || $0 == "|" })
    }
}

/// The free-text fields a parsed request carries.
func textFields(of request: Request) -> [String] {
    switch request {
    case let .register(machine): [machine.text]
    case let .login(machine, token): [machine.text, token?.text ?? ""]
    case let .check(keyText): [keyText.text]
    case let .send(keyText, _, requestID): [keyText.text, requestID?.text ?? ""]
    case .ping, .whoami, .balance, .key, .rotate, .history, .quit: []
    }
}
