import CarteiraClient
import CarteiraCore
import CarteiraProtocol
import CarteiraTestSupport
import Testing

private func configuration(_ server: FakeServer, _ directory: String, timeout: Duration) throws
    -> PeerSession.Configuration
{
    var config = PeerSession.Configuration(
        server: ServerAddress(host: "127.0.0.1", port: server.port), machine: try #require(MachineName("alice")),
        tokens: TokenStore(directory: directory), mayRegister: true, connectTimeout: .seconds(1))
    config.requestTimeout = timeout
    config.initialBackoff = .milliseconds(20)
    return config
}

@Suite("Request deadlines and the again flag")
struct DeadlineTests {
    @Test(
        "a SEND the server never answers fails within the timeout as outcome unknown, naming the request id, and the connection is closed"
    )
    func sendWithoutAnswer() async throws {
        let script: FakeServer.Script = { line, connection in
            line.hasPrefix("SEND|") ? .ignore : Fixture.wellBehaved(line, connection)
        }
        try await withStateDirectory { directory in
            try await FakeServer.with(script) { server throws in
                // Long enough for a login on a loaded machine; the SEND then waits it out.
                let config = try configuration(server, directory, timeout: .milliseconds(1500))
                let started = Locked(ContinuousClock.now)
                let error = await #expect(throws: ClientError.self) {
                    try await PeerSession.withSession(config) { session in
                        // Logged in first (on a loaded machine a login may itself time
                        // out and be tried again), so the SEND is surely written; its
                        // own deadline starts after that.
                        _ = await eventually(within: 30) { (try? await session.loggedIn()) != nil }
                        started.withLock { $0 = .now }
                        return try await session.send(
                            key: try #require(PaymentKey(Fixture.bobKey)), amount: Centavos(500),
                            requestID: try #require(RequestID("pay-9")))
                    }
                }
                let elapsed = ContinuousClock.now - started.withLock { $0 }
                guard case let .paymentOutcomeUnknown(id, _) = error else {
                    Issue.record("expected paymentOutcomeUnknown, got \(String(describing: error))")
                    return
                }
                #expect(id.text == "pay-9")
                #expect(error?.message.contains("--request-id pay-9") == true)
                #expect(error?.isReachability == true)
                #expect(elapsed >= .milliseconds(1500) && elapsed < .seconds(10), "\(elapsed)")
                // The client gave up on the connection the SEND was written on:
                // the server sees it end, so it cannot carry the SEND out later from it.
                // A deadline, not a delay: under ThreadSanitizer, with every suite
                // running at once on 2 cores, seeing the close took over 3 s once.
                #expect(await eventually(within: 10) { server.closedConnections >= 1 })
                #expect(server.lines.filter { $0.line.hasPrefix("SEND|") }.count == 1)
            }
        }
    }

    @Test("a server that accepts and never answers LOGIN: a send fails within the timeout as not sent")
    func loginWithoutAnswer() async throws {
        try await withStateDirectory { directory in
            try await FakeServer.with({ _, _ in .ignore }) { server throws in
                let config = try configuration(server, directory, timeout: .milliseconds(400))
                try config.tokens.save(
                    try #require(Token(Fixture.token)), server: config.server, machine: config.machine)
                let started = ContinuousClock.now
                let error = await #expect(throws: ClientError.self) {
                    try await PeerSession.withSession(config) { session in
                        try await session.send(
                            key: try #require(PaymentKey(Fixture.bobKey)), amount: Centavos(500),
                            requestID: try #require(RequestID("pay-10")))
                    }
                }
                #expect(ContinuousClock.now - started < .seconds(10))
                guard case .paymentNotSent = error else {
                    Issue.record("expected paymentNotSent, got \(String(describing: error))")
                    return
                }
                #expect(error?.message.contains("Nothing was sent") == true)
                #expect(!server.lines.contains { $0.line.hasPrefix("SEND|") })
            }
        }
    }

    @Test("a read the server never answers times out with timedOut, saying which server and how long")
    func readWithoutAnswer() async throws {
        let script: FakeServer.Script = { line, connection in
            line == "BALANCE" ? .ignore : Fixture.wellBehaved(line, connection)
        }
        try await withStateDirectory { directory in
            try await FakeServer.with(script) { server throws in
                let config = try configuration(server, directory, timeout: .milliseconds(300))
                let error = await #expect(throws: ClientError.self) {
                    try await PeerSession.withSession(config) { try await $0.balance() }
                }
                #expect(error == .timedOut(config.server, seconds: 0.3))
                #expect(
                    error?.message
                        == "the server at 127.0.0.1:\(server.port) did not answer within 0.3 s; the connection was closed"
                )
            }
        }
    }

    @Test(
        "OK|tx|cents|again reads as already done; a plain OK as a new payment; a fourth field of another word is a violation"
    )
    func againFlag() async throws {
        let sends = Locked(0)
        let script: FakeServer.Script = { line, connection in
            guard line.hasPrefix("SEND|") else { return Fixture.wellBehaved(line, connection) }
            let count = sends.withLock { count in
                count += 1
                return count
            }
            switch count {
            case 1: return .reply("OK|T000000000042|5000\n")
            case 2: return .reply("OK|T000000000042|5000|again\n")
            default: return .reply("OK|T000000000042|5000|maybe\n")
            }
        }
        try await withStateDirectory { directory in
            try await FakeServer.with(script) { server throws in
                let config = try configuration(server, directory, timeout: .seconds(20))
                try await PeerSession.withSession(config) { session in
                    let key = try #require(PaymentKey(Fixture.bobKey))
                    let id = try #require(RequestID("pay-1"))
                    let first = try await session.send(key: key, amount: Centavos(5000), requestID: id)
                    #expect(!first.alreadyDone)
                    let second = try await session.send(key: key, amount: Centavos(5000), requestID: id)
                    #expect(second.alreadyDone)
                    #expect(second.tx == first.tx)
                    await #expect(throws: ClientError.self) {
                        try await session.send(key: key, amount: Centavos(5000), requestID: id)
                    }
                }
            }
        }
    }

    @Test("connection refused reads as a sentence with the address as HOST:PORT, no SwiftNIO text")
    func refusedMessage() async throws {
        let refusing = try RefusingPort()
        defer { withExtendedLifetime(refusing) {} }
        let port = refusing.port
        let address = ServerAddress(host: "127.0.0.1", port: port)
        let error = await #expect(throws: ClientError.self) {
            try await CarteiraConnection.connect(to: address, timeout: .milliseconds(500))
        }
        #expect(error?.message == "connection refused: is carteira-server running on 127.0.0.1:\(port)?")
        for word in ["NIO", "IPv4", "errno", "connectionErrors"] {
            #expect(error?.message.contains(word) == false)
        }
    }
}
