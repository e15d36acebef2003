import CarteiraTestSupport
import CarteiraCore
import Testing

@Suite("Every error code of the protocol table, over a real socket", .timeLimit(.minutes(1)))
struct ErrorCodeTests {
    @Test("bad_request: wrong field counts, bad request ids, bad history limits, invalid UTF-8")
    func badRequest() async throws {
        try await withPeers { (_, alice, _, _, bobKey) async throws in
            for line in [
                "PING|extra", "REGISTER", "REGISTER|a|b", "LOGIN|alice", "SEND|\(bobKey)", "SEND|\(bobKey)|1|id|x",
                "SEND|\(bobKey)|1|-", "SEND|\(bobKey)|1|bad id", "HISTORY|0", "HISTORY|1001", "HISTORY|abc",
                "HISTORY|1|2", "CHECK",
            ] {
                #expect(try await errorCode(alice.request(line)) == "bad_request", "\(line)")
            }
            // Raw bytes that are not UTF-8.
            #expect(try await errorCode(alice.requestBytes([0x50, 0xC3, 0x28, 0x0A])) == "bad_request")
            // A SEND as clients write it but for one byte of its request id.
            let send = Array("SEND|\(bobKey)|1|pay".utf8)
            #expect(try await errorCode(alice.requestBytes(send + [0xC3, 0x0A])) == "bad_request")
            #expect(try await alice.request("PING") == "OK|PONG")
        }
    }

    @Test("unknown_command, and command names are case-insensitive")
    func unknownCommand() async throws {
        try await withPeers { (_, alice, _, _, _) async throws in
            #expect(try await errorCode(alice.request("PAY|x|1")) == "unknown_command")
            #expect(try await alice.request("ping") == "OK|PONG")
            #expect(try await alice.request("Balance") == "OK|10000")
        }
    }

    @Test("line_too_long answers and closes; a 4096-byte line with \\r\\n is still accepted")
    func lineTooLong() async throws {
        try await withPeers { (server, alice, _, _, _) async throws in
            let longest = "CHECK|" + String(repeating: "a", count: 4096 - 6)
            #expect(try await errorCode(alice.request(longest + "\r")) == "unknown_key")
            let peer = try await TestPeer(port: server.port)
            try await peer.write("PING\n" + String(repeating: "x", count: 4097) + "\nPING\n")
            #expect(try await peer.nextLine() == "OK|PONG")
            #expect(try errorCode(#require(try await peer.nextLine())) == "line_too_long")
            #expect(try await peer.nextLine() == nil)
        }
    }

    @Test("bad_name, machine_exists, unknown_machine, already_logged_in, not_logged_in")
    func sessionErrors() async throws {
        try await withPeers { (server, alice, _, _, _) async throws in
            let peer = try await TestPeer(port: server.port)
            #expect(try await errorCode(peer.request("REGISTER|bad name")) == "bad_name")
            #expect(try await errorCode(peer.request("REGISTER|" + String(repeating: "a", count: 65))) == "bad_name")
            #expect(try await errorCode(peer.request("LOGIN|a/b|" + String(repeating: "0", count: 32))) == "bad_name")
            #expect(try await errorCode(peer.request("REGISTER|alice")) == "machine_exists")
            #expect(
                try await errorCode(peer.request("LOGIN|carol|" + String(repeating: "0", count: 32)))
                    == "unknown_machine")
            for line in ["WHOAMI", "BALANCE", "KEY", "ROTATE", "HISTORY", "SEND|x|1"] {
                #expect(try await errorCode(peer.request(line)) == "not_logged_in", "\(line)")
            }
            #expect(try await errorCode(alice.request("REGISTER|carol")) == "already_logged_in")
            #expect(
                try await errorCode(alice.request("LOGIN|bob|" + String(repeating: "0", count: 32)))
                    == "already_logged_in")
            // Field forms come before the session check.
            #expect(try await errorCode(peer.request("SEND|x|0")) == "bad_amount")
            await peer.close()
        }
    }

    @Test("self_transfer, insufficient_funds, bad_amount, and an exact-balance transfer is allowed")
    func transferErrors() async throws {
        try await withPeers { (_, alice, bob, aliceKey, bobKey) async throws in
            #expect(try await errorCode(alice.request("SEND|\(aliceKey)|1")) == "self_transfer")
            #expect(try await errorCode(alice.request("SEND|\(bobKey)|100,01")) == "insufficient_funds")
            #expect(try await errorCode(alice.request("SEND|\(bobKey)|1234567890123")) == "bad_amount")
            #expect(try await fields(alice.request("SEND|\(bobKey)|100")).last == "0")
            #expect(try await errorCode(alice.request("SEND|\(bobKey)|0,01")) == "insufficient_funds")
            #expect(try await bob.request("BALANCE") == "OK|20000")
        }
    }

    @Test("request_id_reused for another transfer under the same id; ids are scoped per machine")
    func requestIDReused() async throws {
        try await withPeers { (_, alice, bob, aliceKey, bobKey) async throws in
            let first = try await fields(alice.request("SEND|\(bobKey)|10|pay-1"))
            #expect(first[0] == "OK")
            #expect(try await alice.request("SEND|\(bobKey)|10,00|pay-1") == "OK|\(first[1])|9000|again")
            #expect(try await errorCode(alice.request("SEND|\(bobKey)|11|pay-1")) == "request_id_reused")
            #expect(try await fields(bob.request("SEND|\(aliceKey)|5|pay-1"))[0] == "OK")
            #expect(try await alice.request("BALANCE") == "OK|9500")
        }
    }

    @Test("rate_limited after 30 failed look-ups, even for a correct token, while other commands work")
    func rateLimited() async throws {
        try await withPeers { (server, _, _, aliceKey, _) async throws in
            let token = try await TestPeer(port: server.port)
            let carolToken = try await token.register("carol").token
            await token.close()
            let scraper = try await TestPeer(port: server.port)
            for index in 0..<30 {
                let key = "0f8d3c1e-6b2a-4c9e-9a7d-\(String(format: "%012d", index))"
                #expect(try await errorCode(scraper.request("CHECK|\(key)")) == "unknown_key")
            }
            #expect(try await errorCode(scraper.request("CHECK|\(aliceKey)")) == "rate_limited")
            #expect(try await errorCode(scraper.request("LOGIN|carol|\(carolToken)")) == "rate_limited")
            #expect(try await scraper.request("PING") == "OK|PONG")
            // Another connection has its own bucket.
            let other = try await TestPeer(port: server.port)
            #expect(try await fields(other.request("LOGIN|carol|\(carolToken)"))[0] == "OK")
            await scraper.close()
            await other.close()
        }
    }

    @Test("unavailable for a connection over --max-clients, which is then closed")
    func tooManyClients() async throws {
        try await withPeers(maximumConnections: 2) { (server, _, _, _, _) async throws in
            let third = try await TestPeer(port: server.port)
            #expect(try errorCode(#require(try await third.nextLine())) == "unavailable")
            #expect(try await third.nextLine() == nil)
        }
    }

    @Test("50 requests in one write are answered in order")
    func pipelining() async throws {
        try await withPeers { (_, alice, bob, _, bobKey) async throws in
            var batch = ""
            for index in 0..<50 {
                batch += index % 2 == 0 ? "SEND|\(bobKey)|1|p\(index)\n" : "BALANCE\n"
            }
            try await alice.write(batch)
            var balance: Int64 = 10_000
            for index in 0..<50 {
                let answer = try fields(#require(try await alice.nextAnswer()))
                if index % 2 == 0 {
                    balance -= 100
                    #expect(answer.count == 3 && answer[0] == "OK" && answer[2] == "\(balance)", "\(index)")
                } else {
                    #expect(answer == ["OK", "\(balance)"], "\(index)")
                }
            }
            #expect(try await bob.request("BALANCE") == "OK|12500")
        }
    }

    @Test("HISTORY lists the session's transfers newest first, with the count and the limit")
    func history() async throws {
        try await withPeers { (_, alice, bob, aliceKey, bobKey) async throws in
            _ = try await alice.request("SEND|\(bobKey)|1")
            _ = try await bob.request("SEND|\(aliceKey)|2")
            _ = try await alice.request("SEND|\(bobKey)|3")
            #expect(try await alice.request("HISTORY|2") == "OK|2")
            let newest = try fields(#require(try await alice.nextLine()))
            let older = try fields(#require(try await alice.nextLine()))
            #expect(newest[0] == "TX" && newest[3] == "alice" && newest[4] == "bob" && newest[5] == "300")
            #expect(older[3] == "bob" && older[4] == "alice" && older[5] == "200")
            #expect(try await alice.request("PING") == "OK|PONG")
        }
    }

    @Test("WHOAMI, KEY and ROTATE answer the machine's key, and ROTATE pushes to its other sessions")
    func keyCommands() async throws {
        try await withPeers { (server, alice, _, aliceKey, _) async throws in
            let who = try await fields(alice.request("WHOAMI"))
            #expect(who[0] == "OK" && who[1] == "alice" && who[2] == aliceKey && who[3] == "10000")
            #expect(try await fields(alice.request("KEY"))[1] == aliceKey)
            let first = try await TestPeer(port: server.port)
            let second = try await TestPeer(port: server.port)
            let dave = try await first.register("dave")
            #expect(try await fields(second.request("LOGIN|dave|\(dave.token)"))[0] == "OK")
            let rotated = try await fields(first.request("ROTATE"))
            #expect(rotated[0] == "OK" && rotated[1] != dave.key)
            #expect(try await second.nextPush() == "EVT|key|\(rotated[1])|\(rotated[2])")
            #expect(try await fields(first.request("KEY"))[1] == rotated[1])
            #expect(first.pushes.isEmpty)
            // The replaced key is still payable within the grace period.
            #expect(try await alice.request("CHECK|\(dave.key)") == "OK|dave")
            await first.close()
            await second.close()
        }
    }

    @Test("QUIT answers OK|BYE and closes the connection")
    func quit() async throws {
        try await withPeers { (_, alice, _, _, _) async throws in
            #expect(try await alice.request("QUIT") == "OK|BYE")
            #expect(try await alice.nextLine() == nil)
        }
    }
}

extension TestPeer {
    /// Sends raw bytes and returns the next answer.
    func requestBytes(_ bytes: [UInt8]) async throws -> String {
        try await writeBytes(bytes)
        return try #require(try await nextAnswer())
    }
}
