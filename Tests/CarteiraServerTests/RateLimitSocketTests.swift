import CarteiraCore
import CarteiraServer
import CarteiraTestSupport
import Logging
import Testing

/// A clock the test moves by hand.
private final class ManualClock: Sendable {
    private let now = Locked(Timestamp(milliseconds: 1_800_000_000_000))
    var read: @Sendable () -> Timestamp { { [self] in now.withLock { $0 } } }
    func advance(milliseconds: Int64) { now.withLock { $0 = $0.adding(milliseconds: milliseconds) } }
}

private func unknown(_ index: Int) -> String {
    let hex = String(index, radix: 16)
    return "0f8d3c1e-6b2a-4c9e-9a7d-" + String(repeating: "0", count: 12 - hex.count) + hex
}

@Suite("Rate limits over real sockets, with reconnects")
struct RateLimitSocketTests {
    @Test("reconnecting from one address gets no fresh bucket; the console sees who is limited; time lifts it")
    func reconnects() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let clock = ManualClock()
        var logger = Logger(label: "rate-test")
        logger.logLevel = .warning
        let server = try await CarteiraServer.start(
            configuration: ServerConfiguration(host: "127.0.0.1", port: 0, journalDirectory: directory.path),
            logger: logger, clock: clock.read, eventLoopGroup: serverEventLoops)
        let task = Task { try await server.run() }
        defer {
            server.shutdown()
        }
        let payee = try LineSocket(port: server.port)
        let registered = try #require(payee.request("REGISTER|bob"))
        let bobKey = registered.split(separator: "|").map(String.init)[3]

        var charged = 0
        var probe = 0
        var reconnects = 0
        var last: String?
        // Each connection spends its own 30 tokens, then reconnects.
        while reconnects < 10 {
            let scanner = try LineSocket(port: server.port)
            while true {
                probe += 1
                let answer = try #require(scanner.request("CHECK|\(unknown(probe))"))
                if answer.hasPrefix("ERR|rate_limited|") {
                    last = answer
                    break
                }
                #expect(answer.hasPrefix("ERR|unknown_key|"))
                charged += 1
            }
            if last?.contains("from your address") == true {
                // Still open: the console shows it limited by its address.
                let summaries = server.sessionSummaries()
                #expect(summaries.contains { $0.rateLimited == "address" })
                break
            }
            reconnects += 1
        }
        #expect(charged == RateLimits.defaultAddressCapacity)
        #expect(reconnects == RateLimits.defaultAddressCapacity / TokenBucket.defaultCapacity)
        #expect(
            last
                == "ERR|rate_limited|too many failed key look-ups or logins from your address (127.0.0.1); wait a little"
        )

        // An honest peer from the same address is refused while it scans,
        // even with a correct key; other commands work.
        let honest = try LineSocket(port: server.port)
        #expect(honest.request("CHECK|\(bobKey)")?.hasPrefix("ERR|rate_limited|") == true)
        #expect(honest.request("PING") == "OK|PONG")
        let summary = server.rateLimitSummary()
        #expect(summary.limitedAddresses == ["127.0.0.1"])
        #expect(summary.refusals >= 2)

        // 2 s later the address has one token again.
        clock.advance(milliseconds: TokenBucket.defaultRefillMilliseconds)
        #expect(honest.request("CHECK|\(bobKey)") == "OK|bob")
        clock.advance(milliseconds: Int64(RateLimits.defaultAddressCapacity) * TokenBucket.defaultRefillMilliseconds)
        #expect(server.rateLimitSummary().limitedAddresses == [])
        #expect(server.rateLimitSummary().bucketsHeld == 0)
        server.shutdown()
        try await task.value
    }
}
