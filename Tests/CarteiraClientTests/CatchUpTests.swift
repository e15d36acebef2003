import CarteiraClient
import CarteiraCore
import CarteiraProtocol
import CarteiraTestSupport
import Synchronization
import Testing

@Suite("Reconnecting sessions catch up on missed payments")
struct CatchUpTests {
    @Test(
        "after a reconnect the session reports the transfers received meanwhile, oldest first, before live pushes, and never twice"
    )
    func missedTransfers() async throws {
        let alice = Fixture.aliceKey
        // Connection 1: baseline T1, then a live push of T2, then the server goes away.
        // Connection 2: T3 (alice paid bob) and T4, T5 (received) happened meanwhile; T5
        // is also pushed live on the new connection and must not show twice.
        let script: FakeServer.Script = { line, connection in
            switch (connection, line) {
            case (1, "HISTORY|1"):
                return .reply("OK|1\nTX|T000000000001|1000|bob|alice|100\nEVT|received|T000000000002|bob|200|10300\n")
            case (1, "BALANCE"):
                return .close
            case (_, "HISTORY|1000"):
                return .reply(
                    "EVT|received|T000000000005|carol|500|10500\n"
                        + "OK|5\nTX|T000000000005|5000|carol|alice|500\nTX|T000000000004|4000|bob|alice|400\n"
                        + "TX|T000000000003|3000|alice|bob|300\nTX|T000000000002|2000|bob|alice|200\n"
                        + "TX|T000000000001|1000|bob|alice|100\n"
                        + "EVT|key|\(alice)|1790000000000\n")
            default:
                return Fixture.wellBehaved(line, connection)
            }
        }
        try await withStateDirectory { directory in
            try await FakeServer.with(script) { server throws in
                var config = PeerSession.Configuration(
                    server: ServerAddress(host: "127.0.0.1", port: server.port),
                    machine: try #require(MachineName("alice")),
                    tokens: TokenStore(directory: directory), mayRegister: true, connectTimeout: .seconds(2))
                config.catchUp = true
                config.initialBackoff = .milliseconds(20)
                let events = try await PeerSession.withSession(config) { session in
                    try await session.loggedIn()
                    var seen: [SessionEvent] = []
                    var iterator = session.events.makeAsyncIterator()
                    // The live push of T2 first; then drop connection 1.
                    if let first = await iterator.next() { seen.append(first) }
                    // Connection 1 drops on BALANCE; the read is retried on connection 2.
                    #expect(try await session.balance() == Centavos(10000))
                    while seen.count < 6, let event = await iterator.next() { seen.append(event) }
                    return seen
                }
                let bob = try #require(MachineName("bob"))
                let carol = try #require(MachineName("carol"))
                let me = try #require(MachineName("alice"))
                let t2 = try #require(TxID("T000000000002"))
                #expect(
                    events.first == .push(.received(tx: t2, from: bob, amount: Centavos(200), balance: Centavos(10300)))
                )
                // Then: reconnecting, reconnected, T4 and T5 (oldest first; T3 was a payment
                // alice made, T1 and T2 were accounted for), then the live key push.
                let rest = Array(events.dropFirst())
                let expected: [SessionEvent] = [
                    .reconnecting, .reconnected,
                    .missed(
                        HistoryEntry(
                            tx: try #require(TxID("T000000000004")), at: Timestamp(milliseconds: 4000), from: bob,
                            to: me, amount: Centavos(400))),
                    .missed(
                        HistoryEntry(
                            tx: try #require(TxID("T000000000005")), at: Timestamp(milliseconds: 5000), from: carol,
                            to: me, amount: Centavos(500))),
                    .push(.key(try #require(PaymentKey(alice)), expires: Timestamp(milliseconds: 1_790_000_000_000))),
                ]
                #expect(rest == expected)
            }
        }
    }
}
