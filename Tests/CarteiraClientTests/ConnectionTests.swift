import CarteiraClient
import CarteiraTestSupport
import CarteiraCore
import CarteiraProtocol
import Testing

private let timeout = Duration.seconds(2)

private func address(_ server: FakeServer) -> ServerAddress { ServerAddress(host: "127.0.0.1", port: server.port) }

@Suite("CarteiraConnection over a real socket")
struct ConnectionTests {
    @Test("every request kind round-trips: the line sent is the request's line and the answer decodes to its Response")
    func everyRequestKind() async throws {
        let alice = try #require(MachineName("alice"))
        let bob = try #require(MachineName("bob"))
        let aliceKey = try #require(PaymentKey(Fixture.aliceKey))
        let bobKey = try #require(PaymentKey(Fixture.bobKey))
        let token = try #require(Token(Fixture.token))
        let expires = Timestamp(milliseconds: Fixture.expires)
        let tx42 = try #require(TxID("T000000000042"))
        let tx41 = try #require(TxID("T000000000041"))
        let cases: [(Request, String, Response)] = [
            (.ping, "PING", .pong),
            (
                .register(alice), "REGISTER|alice",
                .registered(machine: alice, token: token, key: aliceKey, balance: Centavos(10000))
            ),
            (
                .login(alice, token: token), "LOGIN|alice|\(Fixture.token)",
                .loggedIn(machine: alice, key: aliceKey, balance: Centavos(10000))
            ),
            (.whoami, "WHOAMI", .whoami(machine: alice, key: aliceKey, balance: Centavos(10000), keyExpires: expires)),
            (.balance, "BALANCE", .balance(Centavos(10000))),
            (.key, "KEY", .key(aliceKey, expires: expires)),
            (.rotate, "ROTATE", .rotated(bobKey, expires: expires.adding(seconds: 180))),
            (.check(keyText: KeyText(Fixture.bobKey)), "CHECK|\(Fixture.bobKey)", .owner(bob)),
            (
                .send(keyText: KeyText(Fixture.bobKey), amount: Centavos(5000), requestID: RequestID("pay-1")),
                "SEND|\(Fixture.bobKey)|50,00|pay-1", .sent(tx: tx42, balance: Centavos(5000), again: false)
            ),
            (
                .history(limit: 2), "HISTORY|2",
                .history([
                    HistoryEntry(
                        tx: tx42, at: Timestamp(milliseconds: 1_789_000_000_000), from: alice, to: bob,
                        amount: Centavos(5000)),
                    HistoryEntry(
                        tx: tx41, at: Timestamp(milliseconds: 1_788_000_000_000), from: bob, to: alice,
                        amount: Centavos(2500)),
                ])
            ),
            (.quit, "QUIT", .bye),
        ]
        try await FakeServer.with(Fixture.wellBehaved) { server throws in
            try await CarteiraConnection.withConnection(to: address(server), timeout: timeout) { connection throws in
                for (request, _, expected) in cases {
                    #expect(try await connection.perform(request) == expected)
                }
            }
            #expect(server.lines.map(\.line) == cases.map(\.1))
        }
    }

    @Test("an ERR answer throws refused with the server's code and message, and the connection stays usable")
    func refusal() async throws {
        try await FakeServer.with(Fixture.wellBehaved) { server throws in
            try await CarteiraConnection.withConnection(to: address(server), timeout: timeout) { connection throws in
                let error = await #expect(throws: ClientError.self) {
                    try await connection.perform(.check(keyText: KeyText(Fixture.aliceKey)))
                }
                #expect(error == .refused(code: "unknown_key", message: "no such key"))
                #expect(error?.errorCode == .unknownKey)
                #expect(try await connection.perform(.balance) == .balance(Centavos(10000)))
            }
        }
    }

    @Test("EVT lines before, between and after answers go to pushes while answers still match their requests")
    func pushesInterleaved() async throws {
        let received = "EVT|received|T000000000007|bob|5000|15000\n"
        let rotated = "EVT|key|\(Fixture.bobKey)|\(Fixture.expires)\n"
        let script: FakeServer.Script = { line, _ in
            switch line {
            case "BALANCE": .reply(received + "OK|15000\n" + "EVT|future|thing\n" + rotated)
            case "HISTORY|20": .reply("OK|1\nTX|T000000000007|1789000000000|bob|alice|5000\n" + received)
            default: Fixture.wellBehaved(line, 1)
            }
        }
        try await FakeServer.with(script) { server throws in
            try await CarteiraConnection.withConnection(to: address(server), timeout: timeout) { connection throws in
                #expect(try await connection.perform(.balance) == .balance(Centavos(15000)))
                guard case let .history(entries) = try await connection.perform(.history(limit: 20)) else {
                    Issue.record("HISTORY did not decode")
                    return
                }
                #expect(entries.map(\.tx.text) == ["T000000000007"])
                #expect(try await connection.perform(.ping) == .pong)
                var pushes: [Push] = []
                for await push in connection.pushes {
                    pushes.append(push)
                    if pushes.count == 3 { break }
                }
                let bob = try #require(MachineName("bob"))
                let tx = try #require(TxID("T000000000007"))
                let expected: [Push] = [
                    .received(tx: tx, from: bob, amount: Centavos(5000), balance: Centavos(15000)),
                    .key(try #require(PaymentKey(Fixture.bobKey)), expires: Timestamp(milliseconds: Fixture.expires)),
                    .received(tx: tx, from: bob, amount: Centavos(5000), balance: Centavos(15000)),
                ]
                #expect(pushes == expected)
            }
        }
    }

    @Test("50 pipelined requests are all in flight at once and each gets its own answer")
    func pipelining() async throws {
        let count = 50
        let held = Locked<[String]>([])
        // Answers are held back until all 50 requests arrived: they can only
        // arrive if the client writes without waiting for answers.
        let script: FakeServer.Script = { line, _ in
            let key = line.split(separator: "|").last.map(String.init) ?? ""
            let answers = held.withLock { held -> [String] in
                held.append("OK|m\(key.suffix(4))\n")
                guard held.count == count else { return [] }
                defer { held = [] }
                return held
            }
            return .reply(answers.joined())
        }
        try await FakeServer.with(script) { server throws in
            try await CarteiraConnection.withConnection(to: address(server), timeout: timeout) { connection throws in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for index in 0..<count {
                        let suffix = String(1000 + index)
                        group.addTask {
                            let key = "00000000-0000-4000-8000-00000000" + suffix
                            let answer = try await connection.perform(.check(keyText: KeyText(key)))
                            #expect(answer == .owner(try #require(MachineName("m" + suffix))))
                        }
                    }
                    try await group.waitForAll()
                }
            }
            #expect(server.lines.count == count)
        }
    }

    @Test("malformed server lines fail the request with protocolViolation, close the connection and crash nothing")
    func malformedLines() async throws {
        let script: FakeServer.Script = { line, _ in
            switch line {
            case "BALANCE": .reply("OK|ten reais\n")
            case "KEY": .reply("OK|not-a-key|123\n")
            case "HISTORY|20": .reply("OK|2\nTX|T1|1|alice|bob|5\nGARBAGE\n")
            case "WHOAMI": .reply("HELLO THERE\n")
            default: .reply("OK\n")
            }
        }
        for (request, closes) in [
            (Request.balance, false), (.key, false), (.history(limit: 20), true), (.whoami, true),
        ] {
            try await FakeServer.with(script) { server throws in
                try await CarteiraConnection.withConnection(to: address(server), timeout: timeout) {
                    connection throws in
                    let error = await #expect(throws: ClientError.self) { try await connection.perform(request) }
                    guard case .protocolViolation = error else {
                        Issue.record("expected protocolViolation for \(request.name), got \(String(describing: error))")
                        return
                    }
                    if closes {
                        #expect(await eventually { connection.isClosed })
                        await #expect(throws: ClientError.self) { try await connection.perform(.ping) }
                    }
                }
            }
        }
        // An answer nobody asked for also ends the connection without a crash.
        try await FakeServer.with({ _, _ in .reply("OK|PONG\nOK|extra\n") }) { server throws in
            try await CarteiraConnection.withConnection(to: address(server), timeout: timeout) { connection throws in
                #expect(try await connection.perform(.ping) == .pong)
                #expect(await eventually { connection.isClosed })
            }
        }
    }

    @Test("connecting to a port nobody listens on fails with cannotConnect")
    func cannotConnect() async throws {
        let refusing = try RefusingPort()
        defer { withExtendedLifetime(refusing) {} }
        let port = refusing.port
        let started = ContinuousClock.now
        await #expect {
            try await CarteiraConnection.connect(
                to: ServerAddress(host: "127.0.0.1", port: port), timeout: .milliseconds(300))
        } throws: { error in
            guard case .cannotConnect = error as? ClientError else { return false }
            return true
        }
        #expect(ContinuousClock.now - started < .seconds(3))
    }
}
