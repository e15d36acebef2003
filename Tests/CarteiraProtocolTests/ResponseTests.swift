import CarteiraCore
import CarteiraProtocol
import CarteiraTestSupport
import Testing

let paymentKey = PaymentKey(randomBytes: [
    0x0F, 0x8D, 0x3C, 0x1E, 0x6B, 0x2A, 0x4C, 0x9E, 0x9A, 0x7D, 0x3E, 0x5F, 0x1B, 0x2C, 0x4D, 0x6E,
])
let expires = Timestamp(milliseconds: 1_795_000_180_000)
let tx = TxID(seq: 42)

let responses: [(Response, String)] = [
    (.pong, "OK|PONG\n"),
    (
        .registered(
            machine: name("alice"), token: Token(randomBytes: Array(0..<16)), key: paymentKey, balance: Centavos(10_000)
        ),
        "OK|alice|000102030405060708090a0b0c0d0e0f|\(key)|10000\n"
    ),
    (.loggedIn(machine: name("alice"), key: paymentKey, balance: Centavos(5)), "OK|alice|\(key)|5\n"),
    (
        .whoami(machine: name("alice"), key: paymentKey, balance: .zero, keyExpires: expires),
        "OK|alice|\(key)|0|1795000180000\n"
    ),
    (.balance(Centavos(1_234_56)), "OK|123456\n"),
    (.key(paymentKey, expires: expires), "OK|\(key)|1795000180000\n"),
    (.rotated(paymentKey, expires: expires), "OK|\(key)|1795000180000\n"),
    (.owner(name("bob")), "OK|bob\n"),
    (.sent(tx: tx, balance: Centavos(5_000), again: false), "OK|T000000000042|5000\n"),
    (.sent(tx: tx, balance: Centavos(5_000), again: true), "OK|T000000000042|5000|again\n"),
    (.history([]), "OK|0\n"),
    (
        .history([
            HistoryEntry(
                tx: TxID(seq: 7), at: Timestamp(milliseconds: 1_000), from: name("bob"), to: name("alice"),
                amount: Centavos(1)),
            HistoryEntry(
                tx: TxID(seq: 3), at: Timestamp(milliseconds: 999), from: name("alice"), to: name("bob"),
                amount: Centavos(5_000)),
        ]), "OK|2\nTX|T000000000007|1000|bob|alice|1\nTX|T000000000003|999|alice|bob|5000\n"
    ),
    (.bye, "OK|BYE\n"),
    (
        .error(Rejection(.insufficientFunds, "balance R$ 50,00 is below R$ 60,00")),
        "ERR|insufficient_funds|balance R$ 50,00 is below R$ 60,00\n"
    ),
    (.error(Rejection(.badRequest, "a|b\nc\rd\r\ne|\u{0301}f")), "ERR|bad_request|a?b?c?d??e?\u{0301}f\n"),
]

@Suite("Response, Push and ServerLine")
struct ResponseTests {
    @Test("every response has its exact wire text", arguments: responses)
    func wire(response: Response, text: String) {
        #expect(response.wire == text)
    }

    @Test("a SEND's answer, written in one pass, is the text interpolation writes, for any balance and tx")
    func sentLineMatchesInterpolation() {
        var balances: [Int64] = [0, 1, 9, 10, 99, 100, 5_000, 999_999, Int64.max, -1, -10, Int64.min]
        var random = SplitMix64(seed: 0x5E17)
        for _ in 0..<2_000 { balances.append(Int64(bitPattern: random.next()) >> (random.next() % 64)) }
        let seqs: [Int64] = [0, 42, 999_999_999_999, 1_000_000_000_000, Int64.max]
        for (index, balance) in balances.enumerated() {
            let tx = TxID(seq: seqs[index % seqs.count])
            for again in [false, true] {
                let expected = "OK|\(tx.text)|\(balance)\(again ? "|again" : "")\n"
                #expect(
                    Response.sent(tx: tx, balance: Centavos(balance), again: again).wire == expected,
                    "balance \(balance)")
                // As the server writes it, into more room than it needs.
                let written = [UInt8](unsafeUninitializedCapacity: 100) { buffer, count in
                    count = Response.writeSentLine(
                        tx: tx, balance: balance, again: again, into: UnsafeMutableRawBufferPointer(buffer))
                }
                #expect(String(decoding: written, as: UTF8.self) == expected, "balance \(balance), into a buffer")
            }
        }
    }

    @Test("every error code's message is sanitized to one line of exactly three fields")
    func errorsAreOneLine() {
        let nasty = "x|y\n\r\r\n|\u{0301}\u{2028}z"
        for code in ErrorCode.allCases {
            let wire = Response.error(Rejection(code, nasty)).wire
            #expect(wire.hasPrefix("ERR|\(code.rawValue)|"))
            #expect(wire.unicodeScalars.filter { $0 == "\n" || $0 == "\r" }.count == 1)
            #expect(wire.unicodeScalars.filter { $0 == "|" }.count == 2)
            let line = ServerLine.parse(Substring(wire.dropLast()))
            #expect(line == .error(code: code.rawValue, message: "x?y?????\u{0301}\u{2028}z"))
        }
    }

    @Test("a history entry is built from a ledger's transfer record")
    func historyEntryFromRecord() throws {
        // The ledger derives a transfer's tx from its seq (3 here).
        let tx = TxID(seq: 3)
        var ledger = Ledger()
        let digest = try #require(TokenDigest(String(repeating: "0", count: 64)))
        let payeeKey = PaymentKey(randomBytes: Array(repeating: 7, count: 16))
        let transfer = Event.Transfer(
            tx: tx, from: name("a"), to: name("b"), key: payeeKey, amount: Centavos(9), requestID: nil)
        let events: [Event.Kind] = [
            .genesis,
            .registered(
                .init(machine: name("a"), key: paymentKey, expires: expires, tokenDigest: digest, balance: Centavos(10))
            ),
            .registered(
                .init(machine: name("b"), key: payeeKey, expires: expires, tokenDigest: digest, balance: .zero)),
            .transfer(transfer),
        ]
        for (seq, kind) in events.enumerated() {
            try ledger.apply(Event(seq: Int64(seq), at: expires, kind: kind))
        }
        let record = try #require(ledger.transfer(tx))
        #expect(
            HistoryEntry(record)
                == HistoryEntry(tx: tx, at: expires, from: name("a"), to: name("b"), amount: Centavos(9)))
    }

    @Test("pushes have their exact wire text and parse back to themselves")
    func pushRoundTrip() {
        let pushes: [(Push, String)] = [
            (
                .received(tx: tx, from: name("alice"), amount: Centavos(5_000), balance: Centavos(15_000)),
                "EVT|received|T000000000042|alice|5000|15000\n"
            ),
            (.key(paymentKey, expires: expires), "EVT|key|\(key)|1795000180000\n"),
        ]
        for (push, text) in pushes {
            #expect(push.wire == text)
            #expect(Push.parse(Substring(text.dropLast())) == push)
            #expect(ServerLine.parse(Substring(text.dropLast())) == .push(push))
            #expect(ServerLine.parse(Substring(text.dropLast()) + "\r") == .push(push))
        }
    }

    @Test(
        "lines that are not well-formed pushes do not parse as pushes",
        arguments: [
            "", "EVT", "EVT|", "EVT|other|x", "EVT|received", "EVT|received|T1|alice|5", "EVT|received|T1|alice|5|6|7",
            "EVT|received|T_1|alice|5|6", "EVT|received|T1|bad name|5|6", "EVT|received|T1|alice|x|6",
            "EVT|received|T1|alice|5|", "EVT|key|\(key)", "EVT|key|not-a-key|5", "EVT|key|\(key)|soon",
            "EVT|key|\(key)|5|6", "OK|PONG", "evt|key|\(key)|5", "EVT|KEY|\(key)|5",
        ])
    func malformedPush(line: String) {
        #expect(Push.parse(Substring(line)) == nil)
    }

    @Test(
        "server lines are told apart: OK, ERR, EVT, TX and anything else",
        arguments: [
            ("OK|PONG", .ok(["PONG"])), ("OK", .ok([])), ("OK|", .ok([""])),
            ("OK|alice|\(key)|10000", .ok(["alice", key, "10000"])),
            ("OK|PONG\r", .ok(["PONG"])),
            ("ERR|bad_request|wrong number of fields", .error(code: "bad_request", message: "wrong number of fields")),
            ("ERR|unavailable", .error(code: "unavailable", message: "")),
            ("ERR|x|a|b", .error(code: "x", message: "a|b")),
            ("ERR", .unknown("ERR")),
            ("EVT|key|\(key)|5", .push(.key(paymentKey, expires: Timestamp(milliseconds: 5)))),
            ("EVT|later|x", .unknown("EVT|later|x")),
            (
                "TX|T000000000001|1000|alice|bob|500",
                .historyEntry(
                    HistoryEntry(
                        tx: TxID(seq: 1), at: Timestamp(milliseconds: 1_000), from: name("alice"), to: name("bob"),
                        amount: Centavos(500)))
            ),
            ("TX|T1|1000|alice|bob", .unknown("TX|T1|1000|alice|bob")),
            ("TX|T1|soon|alice|bob|1", .unknown("TX|T1|soon|alice|bob|1")),
            ("garbage", .unknown("garbage")), ("", .unknown("")), ("ok|PONG", .unknown("ok|PONG")),
            ("OK\u{0301}|PONG", .unknown("OK\u{0301}|PONG")),
        ] as [(String, ServerLine)])
    func serverLines(line: String, expected: ServerLine) {
        #expect(ServerLine.parse(Substring(line)) == expected)
    }
}
