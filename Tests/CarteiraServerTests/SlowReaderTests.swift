import CarteiraCore
import CarteiraTestSupport
import Testing

@Suite("A client that stops reading", .timeLimit(.minutes(1)))
struct SlowReaderTests {
    @Test("is disconnected once its queue of answers is full, while other clients are served as usual")
    func slowReaderIsClosed() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let server = try await TestServer.start(
            journal: directory.path, maximumQueuedAnswers: 256, stuckConnectionTimeoutSeconds: 1)
        let alice = try await TestPeer(port: server.port)
        let bob = try await TestPeer(port: server.port)
        let aliceToken = try await alice.register("alice").token
        let bobKey = try await bob.register("bob").key
        // 400 transfers, so that each HISTORY|1000 answer is about 24 KB, and
        // 256 queued answers (6 MB) are more than the socket buffers hold.
        for _ in 0..<40 {
            try await alice.write(String(repeating: "SEND|\(bobKey)|0,01\n", count: 10))
            for _ in 0..<10 { _ = try await alice.nextAnswer() }
        }

        // A raw socket with a small receive buffer that never reads.
        let slow = try LineSocket(port: server.port, receiveBufferBytes: 4096)
        #expect(await eventually { server.server.openConnectionCount == 3 })
        slow.send("LOGIN|alice|\(aliceToken)\n" + String(repeating: "HISTORY|1000\n", count: 1000))
        // Closed by the server while the client still reads nothing. (The
        // client cannot see it yet: the close waits behind the unsent answers.)
        let closed = await eventually(within: 20) { server.server.openConnectionCount == 2 }
        #expect(closed, "the server kept a connection that stopped reading")
        #expect(server.server.openSessionCount == 2)
        // The others never waited for it.
        #expect(try await alice.request("PING") == "OK|PONG")
        #expect(try await bob.request("BALANCE") == "OK|10400")
        await alice.close()
        await bob.close()
        try await server.stop()
    }
}
