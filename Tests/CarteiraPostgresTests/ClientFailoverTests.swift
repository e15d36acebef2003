#if Postgres
    import CarteiraClient
    import CarteiraCore
    import CarteiraJournal
    import CarteiraPostgres
    import CarteiraServer
    import CarteiraTestSupport
    import Foundation
    import Testing

    @Suite(
        "Clients follow the leader", .serialized,
        .enabled(if: PostgresFixture.available, Comment(rawValue: PostgresFixture.unavailableReason)))
    struct ClientFailoverTests {
        @Test("a session given both servers moves to the new leader and retries the SEND with its request id")
        func addressListFollowsLeader() async throws {
            let url = try PostgresFixture.database()
            // Once fenced, the first server steps back for longer than the
            // test takes, so the standby is the one that takes over.
            let first = RunningNode(url: url) { $0.retryDelay = .seconds(60) }
            #expect(await first.becomes(.leader))
            let second = RunningNode(url: url)
            #expect(await second.becomes(.standby))
            let payee = try #require(await register(first.port, "payee"))
            let payeeKey = try #require(PaymentKey(payee.key))

            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            let firstAddress = ServerAddress(host: "127.0.0.1", port: first.port)
            let secondAddress = ServerAddress(host: "127.0.0.1", port: second.port)
            // The standby first: the session must move past its `unavailable`.
            var configuration = PeerSession.Configuration(
                server: secondAddress, machine: try #require(MachineName("payer")),
                tokens: TokenStore(directory: directory.path), mayRegister: true, connectTimeout: .seconds(5))
            configuration.alternates = [firstAddress]
            configuration.requestTimeout = .seconds(30)
            configuration.initialBackoff = .milliseconds(50)
            configuration.maximumBackoff = .milliseconds(200)
            let requestID = try #require(RequestID("pay-once"))

            try await PeerSession.withSession(configuration) { session in
                let account = try await session.loggedIn()
                #expect(account.registeredNow)
                #expect(await session.currentServer == firstAddress)
                let warmUp = try await session.send(
                    key: payeeKey, amount: Centavos(100), requestID: try #require(RequestID("warm-up")))
                #expect(warmUp.server == firstAddress)

                // Another writer takes the next seq: the leader's write of
                // the SEND meets the primary key, so it answers `unavailable`
                // and gives up the lock.
                try await appendBehindTheLeader(url, prefix: "intruder")

                let receipt = try await session.send(key: payeeKey, amount: Centavos(250), requestID: requestID)
                #expect(receipt.server == secondAddress)
                #expect(receipt.confirmedAfterRetry)
                #expect(second.node.role == .leader)

                // Asked again, the same id answers the same transfer and moves nothing.
                let again = try await session.send(key: payeeKey, amount: Centavos(250), requestID: requestID)
                #expect(again.tx == receipt.tx)
                #expect(again.alreadyDone)
                #expect(try await session.balance() == Centavos(10_000 - 100 - 250))
            }
            #expect(
                try PostgresFixture.sql(url, "SELECT count(*) FROM carteira_journal WHERE line LIKE '% req=pay-once %'")
                    == "1")
            await second.stop()
            await first.stop()
        }

        @Test("with TLS, a standby speaks TLS too, and a TLS client moves past it to the leader")
        func standbySpeaksTLS() async throws {
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            let certificates = try TestCertificates(in: directory.path)
            let files = ServerTLS(certificatePath: certificates.serverCertificate, keyPath: certificates.serverKey)
            let url = try PostgresFixture.database()
            let first = RunningNode(url: url, configure: { $0.tls = files })
            #expect(await first.becomes(.leader))
            let second = RunningNode(url: url, configure: { $0.tls = files })
            #expect(await second.becomes(.standby))
            // A plaintext peer on the standby's port is told, as on the leader's.
            #expect(
                await ask(second.port, "PING")
                    == "ERR|bad_request|this port speaks TLS only; connect with TLS (carteira --tls)")

            var configuration = PeerSession.Configuration(
                server: ServerAddress(host: "127.0.0.1", port: second.port),
                machine: try #require(MachineName("tls-payer")),
                tokens: TokenStore(directory: directory.path + "/tokens"), mayRegister: true,
                connectTimeout: .seconds(5))
            configuration.alternates = [ServerAddress(host: "127.0.0.1", port: first.port)]
            configuration.tls = try ClientTLS(caFile: certificates.caCertificate)
            configuration.initialBackoff = .milliseconds(50)
            configuration.maximumBackoff = .milliseconds(200)
            try await PeerSession.withSession(configuration) { session in
                let account = try await session.loggedIn()
                #expect(account.registeredNow)
                #expect(await session.currentServer == ServerAddress(host: "127.0.0.1", port: first.port))
                #expect(try await session.balance() == Centavos(10_000))
            }
            await second.stop()
            await first.stop()
        }
    }
#endif
