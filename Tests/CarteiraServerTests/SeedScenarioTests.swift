import CarteiraTestSupport
import CarteiraCore
import Testing

@Suite("The original system's scenarios, over real sockets", .timeLimit(.minutes(1)))
struct SeedScenarioTests {
    @Test("A correct transfer moves R$ 50: payer 50, payee 150, and the payee's session gets the push")
    func correctTransfer() async throws {
        try await withPeers { (_, alice, bob, _, bobKey) async throws in
            #expect(try await alice.request("CHECK|\(bobKey)") == "OK|bob")
            let sent = try await fields(alice.request("SEND|\(bobKey)|50,00"))
            #expect(sent[0] == "OK" && sent[2] == "5000")
            let push = try #require(try await bob.nextPush())
            #expect(push == "EVT|received|\(sent[1])|alice|5000|15000")
            #expect(try await bob.request("BALANCE") == "OK|15000")
            #expect(try await alice.request("BALANCE") == "OK|5000")
        }
    }

    @Test("A machine that reconnects with its token gets its wallet back; a wrong token is refused")
    func reconnect() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let server = try await TestServer.start(journal: directory.path)
        let alice = try await TestPeer(port: server.port)
        let bob = try await TestPeer(port: server.port)
        let token = try await alice.register("alice").token
        let bobKey = try await bob.register("bob").key
        _ = try await alice.request("SEND|\(bobKey)|12,34")
        await alice.close()

        let again = try await TestPeer(port: server.port)
        let login = try await fields(again.request("LOGIN|alice|\(token)"))
        #expect(login[0] == "OK" && login[1] == "alice" && login[3] == "8766")

        let intruder = try await TestPeer(port: server.port)
        let wrong = String(repeating: "0", count: 32)
        #expect(try await errorCode(intruder.request("LOGIN|alice|\(wrong)")) == "bad_token")
        #expect(try await errorCode(intruder.request("LOGIN|alice|not-a-token")) == "bad_token")
        #expect(try await errorCode(intruder.request("BALANCE")) == "not_logged_in")
        await again.close()
        await intruder.close()
        await bob.close()
        try await server.stop()
    }

    @Test("An invalid key is refused and moves nothing")
    func invalidKey() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let server = try await TestServer.start(journal: directory.path)
        let alice = try await TestPeer(port: server.port)
        _ = try await alice.register("alice")
        #expect(try await errorCode(alice.request("SEND|not-a-key|10")) == "unknown_key")
        let neverIssued = "0f8d3c1e-6b2a-4c9e-9a7d-3e5f1b2c4d6e"
        #expect(try await errorCode(alice.request("SEND|\(neverIssued)|10")) == "unknown_key")
        #expect(try await errorCode(alice.request("CHECK|\(neverIssued)")) == "unknown_key")
        #expect(try await alice.request("BALANCE") == "OK|10000")
        await alice.close()
        try await server.stop()
    }

    @Test(
        "Inconsistent amounts are refused and change nothing",
        arguments: [
            ("0", "bad_amount"), ("0,00", "bad_amount"), ("-5", "bad_amount"), ("abc", "bad_amount"),
            ("10,123", "bad_amount"), ("1e3", "bad_amount"), ("100,01", "insufficient_funds"),
            ("1000000", "insufficient_funds"),
        ])
    func inconsistentAmounts(amount: String, code: String) async throws {
        try await withPeers { (_, alice, bob, _, bobKey) async throws in
            #expect(try await errorCode(alice.request("SEND|\(bobKey)|\(amount)")) == code)
            #expect(try await alice.request("BALANCE") == "OK|10000")
            #expect(try await bob.request("BALANCE") == "OK|10000")
        }
    }
}
