import CarteiraClient
import CarteiraCore
import CarteiraProtocol
import Foundation
import Testing

/// A fresh state directory, removed after `body`.
func withStateDirectory<Result>(_ body: (String) async throws -> Result) async throws -> Result {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("carteira-client-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: url) }
    return try await body(url.path)
}

private func configuration(_ server: FakeServer, _ directory: String, mayRegister: Bool) throws
    -> PeerSession.Configuration
{
    PeerSession.Configuration(
        server: ServerAddress(host: "127.0.0.1", port: server.port), machine: try #require(MachineName("alice")),
        tokens: TokenStore(directory: directory), mayRegister: mayRegister, connectTimeout: .seconds(2))
}

@Suite("PeerSession against a scripted server")
struct SessionTests {
    @Test("a machine without a token registers, saves its token, and logs in with it next time")
    func registerThenLogin() async throws {
        try await withStateDirectory { directory in
            try await FakeServer.with(Fixture.wellBehaved) { server throws in
                let config = try configuration(server, directory, mayRegister: true)
                let first = try await PeerSession.withSession(config) { try await $0.loggedIn() }
                #expect(first.registeredNow)
                #expect(try config.tokens.load(server: config.server, machine: config.machine)?.text == Fixture.token)
                let second = try await PeerSession.withSession(config) { session in
                    try await session.loggedIn()
                    return try await session.balance()
                }
                #expect(second == Centavos(10000))
                #expect(server.lines.map(\.line) == ["REGISTER|alice", "LOGIN|alice|\(Fixture.token)", "BALANCE"])
            }
        }
    }

    @Test("without a saved token and without leave to register, nothing is sent and the error says how to register")
    func notRegistered() async throws {
        try await withStateDirectory { directory in
            try await FakeServer.with(Fixture.wellBehaved) { server throws in
                let config = try configuration(server, directory, mayRegister: false)
                let error = await #expect(throws: ClientError.self) {
                    try await PeerSession.withSession(config) { try await $0.balance() }
                }
                let path = config.tokens.path(server: config.server, machine: config.machine)
                #expect(error == .notRegistered(config.machine, server: config.server, path: path))
                #expect(error?.message.contains("carteira register") == true)
                #expect(error?.message.contains(path) == true)
                // Told at once: not even a connection was opened.
                #expect(server.connections == 0)
            }
        }
    }

    @Test(
        "a SEND whose answer is lost is re-sent with the same request id after reconnecting and logging in again; made once"
    )
    func lostSendAnswer() async throws {
        let sends = Locked(0)
        let script: FakeServer.Script = { line, connection in
            guard line.hasPrefix("SEND|") else { return Fixture.wellBehaved(line, connection) }
            // The first SEND reaches the server, which drops the connection before answering.
            return sends.withLock { count in
                count += 1
                return count == 1 ? .close : .reply("OK|T000000000042|5000\n")
            }
        }
        try await withStateDirectory { directory in
            try await FakeServer.with(script) { server throws in
                let config = try configuration(server, directory, mayRegister: true)
                let (receipt, logins) = try await PeerSession.withSession(config) { session in
                    let receipt = try await session.send(
                        key: try #require(PaymentKey(Fixture.bobKey)), amount: Centavos(5000),
                        requestID: try #require(RequestID("pay-1")))
                    return (receipt, await session.logins)
                }
                #expect(receipt.tx.text == "T000000000042")
                #expect(receipt.balance == Centavos(5000))
                #expect(receipt.confirmedAfterRetry)
                #expect(logins == 2)
                let sent = server.lines.filter { $0.line.hasPrefix("SEND|") }
                #expect(sent.map(\.line) == Array(repeating: "SEND|\(Fixture.bobKey)|50,00|pay-1", count: 2))
                #expect(sent.map(\.connection) == [1, 2])
                #expect(server.lines.filter { $0.line.hasPrefix("LOGIN|alice|") }.map(\.connection) == [2])
            }
        }
    }

    @Test("a session with no server to reach fails requests with cannotConnect once the connect timeout passes")
    func unreachable() async throws {
        let refusing = try RefusingPort()
        defer { withExtendedLifetime(refusing) {} }
        let port = refusing.port
        try await withStateDirectory { directory in
            var config = PeerSession.Configuration(
                server: ServerAddress(host: "127.0.0.1", port: port), machine: try #require(MachineName("alice")),
                tokens: TokenStore(directory: directory), mayRegister: true, connectTimeout: .milliseconds(400))
            config.initialBackoff = .milliseconds(20)
            let started = ContinuousClock.now
            let error = await #expect(throws: ClientError.self) {
                try await PeerSession.withSession(config) { try await $0.balance() }
            }
            let elapsed = ContinuousClock.now - started
            guard case .cannotConnect = error else {
                Issue.record("expected cannotConnect, got \(String(describing: error))")
                return
            }
            #expect(elapsed >= .milliseconds(400))
            #expect(elapsed < .seconds(10))
        }
    }

    @Test("a refused token ends the session with a stale-token error naming the file, instead of retrying forever")
    func refusedLogin() async throws {
        try await withStateDirectory { directory in
            let script: FakeServer.Script = { _, _ in .reply("ERR|bad_token|wrong token\n") }
            try await FakeServer.with(script) { server throws in
                let config = try configuration(server, directory, mayRegister: false)
                try config.tokens.save(
                    try #require(Token(Fixture.token)), server: config.server, machine: config.machine)
                let error = await #expect(throws: ClientError.self) {
                    try await PeerSession.withSession(config) { try await $0.balance() }
                }
                let path = config.tokens.path(server: config.server, machine: config.machine)
                #expect(error == .staleToken(config.machine, server: config.server, path: path, code: "bad_token"))
                #expect(error?.message.contains(path) == true)
                #expect(error?.message.contains("delete that file") == true)
                #expect(server.connections == 1)
            }
        }
    }
}

@Suite("TokenStore")
struct TokenStoreTests {
    @Test("tokens are written with mode 0600 in a 0700 directory, per server and machine, and read back")
    func roundTrip() async throws {
        try await withStateDirectory { directory in
            let store = TokenStore(directory: directory)
            let server = ServerAddress(host: "127.0.0.1", port: 7070)
            let other = ServerAddress(host: "::1", port: 7070)
            let alice = try #require(MachineName("alice"))
            let token = try #require(Token(Fixture.token))
            #expect(try store.load(server: server, machine: alice) == nil)
            try store.save(token, server: server, machine: alice)
            #expect(try store.load(server: server, machine: alice) == token)
            #expect(try store.load(server: other, machine: alice) == nil)
            #expect(try store.load(server: server, machine: try #require(MachineName("bob"))) == nil)

            let path = store.path(server: server, machine: alice)
            let fileMode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
            #expect(fileMode == 0o600)
            for folder in [directory, (path as NSString).deletingLastPathComponent] {
                let mode = try FileManager.default.attributesOfItem(atPath: folder)[.posixPermissions] as? Int
                #expect(mode == 0o700)
            }
            // Saving again replaces the token atomically and leaves no temporary file behind.
            let newer = try #require(Token(String(repeating: "a", count: 32)))
            try store.save(newer, server: server, machine: alice)
            #expect(try store.load(server: server, machine: alice) == newer)
            let files = try FileManager.default.contentsOfDirectory(
                atPath: (path as NSString).deletingLastPathComponent)
            #expect(files == ["alice.token"])
        }
    }

    @Test("a token file that does not hold a token is reported, not used")
    func malformed() async throws {
        try await withStateDirectory { directory in
            let store = TokenStore(directory: directory)
            let server = ServerAddress(host: "127.0.0.1", port: 7070)
            let alice = try #require(MachineName("alice"))
            try store.save(try #require(Token(Fixture.token)), server: server, machine: alice)
            try "not a token\n".write(
                toFile: store.path(server: server, machine: alice), atomically: false, encoding: .utf8)
            #expect(throws: TokenStore.Failure.self) { try store.load(server: server, machine: alice) }
        }
    }
}

@Suite("ServerAddress")
struct ServerAddressTests {
    @Test("HOST:PORT parses, bracketed IPv6 too; bad forms are refused; the environment overrides the default")
    func parsing() {
        #expect(ServerAddress("example.org:7070") == ServerAddress(host: "example.org", port: 7070))
        #expect(ServerAddress("[::1]:9000") == ServerAddress(host: "::1", port: 9000))
        for bad in ["example.org", ":7070", "host:", "host:0", "host:65536", "host:70a", "ho st:1"] {
            #expect(ServerAddress(bad) == nil, "\(bad)")
        }
        #expect(ServerAddress.fromEnvironment([:]) == .standard)
        #expect(
            ServerAddress.fromEnvironment(["CARTEIRA_SERVER": "10.0.0.2:8080"])
                == ServerAddress(host: "10.0.0.2", port: 8080))
        #expect(ServerAddress.fromEnvironment(["CARTEIRA_SERVER": "junk"]) == nil)
    }
}

@Suite("Token files and statements")
struct TokenAndStatementTests {
    @Test(
        "a token file that group or others may read is refused, as ssh refuses such a key, and the message says how to fix it"
    )
    func tooOpen() async throws {
        try await withStateDirectory { directory in
            let store = TokenStore(directory: directory)
            let server = ServerAddress(host: "127.0.0.1", port: 7070)
            let alice = try #require(MachineName("alice"))
            try store.save(try #require(Token(Fixture.token)), server: server, machine: alice)
            let path = store.path(server: server, machine: alice)
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
            let error = #expect(throws: TokenStore.Failure.self) { try store.load(server: server, machine: alice) }
            #expect(error == .tooOpen(path: path, mode: 0o644))
            #expect(error?.description.contains("chmod 600 \(path)") == true)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
            #expect(try store.load(server: server, machine: alice) != nil)
        }
    }

    @Test("localhost and 127.0.0.1 share one token store")
    func localhostShares() async throws {
        try await withStateDirectory { directory in
            let store = TokenStore(directory: directory)
            let alice = try #require(MachineName("alice"))
            try store.save(
                try #require(Token(Fixture.token)), server: ServerAddress(host: "127.0.0.1", port: 7070), machine: alice
            )
            #expect(
                try store.load(server: ServerAddress(host: "localhost", port: 7070), machine: alice)?.text
                    == Fixture.token)
            #expect(try store.load(server: ServerAddress(host: "localhost", port: 7071), machine: alice) == nil)
        }
    }

    @Test("a statement gives each transfer its direction, signed change and the balance right after it")
    func statement() throws {
        let alice = try #require(MachineName("alice"))
        let bob = try #require(MachineName("bob"))
        let entries = [
            HistoryEntry(tx: TxID(seq: 9), at: Timestamp(milliseconds: 3), from: alice, to: bob, amount: Centavos(500)),
            HistoryEntry(
                tx: TxID(seq: 7), at: Timestamp(milliseconds: 2), from: bob, to: alice, amount: Centavos(5000)),
        ]
        let statement = Statement(machine: alice, entries: entries, balance: Centavos(14_500))
        #expect(statement.lines.map(\.received) == [false, true])
        #expect(statement.lines.map(\.counterparty) == [bob, bob])
        #expect(statement.lines.map(\.change) == [Centavos(-500), Centavos(5000)])
        #expect(statement.lines.map(\.balanceAfter) == [Centavos(14_500), Centavos(15_000)])
    }
}
