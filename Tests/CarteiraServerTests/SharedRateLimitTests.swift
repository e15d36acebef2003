import CarteiraCore
import CarteiraProtocol
import CarteiraServer
import NIOCore
import Testing

private let start = Timestamp(milliseconds: 1_800_000_000_000)
private let token = String(repeating: "a", count: 32)
private let unknownKey = Response.error(Rejection(.unknownKey, "no machine has that key"))
private let badToken = Response.error(Rejection(.badToken, "wrong token"))

/// A random-looking key per index, so no two look-ups are alike.
private func key(_ index: Int) -> String {
    let hex = String(index, radix: 16)
    return "0f8d3c1e-6b2a-4c9e-9a7d-" + String(repeating: "0", count: 12 - hex.count) + hex
}

/// One connection's session machine, charged to `address` in `limits`.
private struct Connection {
    var session: SessionMachine
    let state = ConnectionRateState()

    init(_ limits: RateLimits, address: String, now: Timestamp) {
        session = SessionMachine(now: now)
        session.share(limits, address: address, state: state)
    }

    /// Sends `line`; when the session asks the ledger, `response` answers.
    /// Returns the refusal the session gave itself, if any.
    mutating func exchange(_ line: String, _ response: Response, now: Timestamp) -> Rejection? {
        switch session.receive(Request.parse(line[...]), serving: .serving, now: now) {
        case .ask:
            session.answered(response, now: now)
            return nil
        case let .answer(.error(rejection)):
            return rejection
        default:
            Issue.record("unexpected action for \(line)")
            return nil
        }
    }
}

@Suite("Rate limits shared by connections: per address and per machine name, with an injected clock")
struct SharedRateLimitTests {
    @Test("the shared buckets are larger than a connection's and at most ten times its size")
    func sizes() {
        for capacity in [RateLimits.defaultAddressCapacity, RateLimits.defaultMachineCapacity] {
            #expect(capacity > TokenBucket.defaultCapacity)
            #expect(capacity <= 10 * TokenBucket.defaultCapacity)
        }
    }

    @Test("a scanner that reconnects gets no fresh allowance: its address's 150 tokens are spent across connections")
    func reconnectingScanner() {
        let limits = RateLimits()
        var charged = 0
        var connections = 0
        var addressRefusal: Rejection?
        var probe = 0
        while addressRefusal == nil, connections < 20 {
            var connection = Connection(limits, address: "198.51.100.7", now: start)
            connections += 1
            while true {
                probe += 1
                if let refusal = connection.exchange("CHECK|\(key(probe))", unknownKey, now: start) {
                    #expect(refusal.code == .rateLimited)
                    if refusal.message.contains("from your address") { addressRefusal = refusal }
                    break
                }
                charged += 1
            }
        }
        #expect(charged == RateLimits.defaultAddressCapacity)
        #expect(connections == RateLimits.defaultAddressCapacity / TokenBucket.defaultCapacity + 1)
        #expect(addressRefusal?.message.contains("198.51.100.7") == true)
        // An honest peer behind the same address is refused while it scans.
        var honest = Connection(limits, address: "198.51.100.7", now: start)
        #expect(honest.exchange("CHECK|\(key(0))", .owner(MachineName("bob")!), now: start)?.code == .rateLimited)
        #expect(honest.session.machine == nil)
        #expect(honest.exchange("SEND|\(key(0))|1", unknownKey, now: start)?.code == .notLoggedIn)
        // Another address is not touched.
        var elsewhere = Connection(limits, address: "203.0.113.9", now: start)
        #expect(elsewhere.exchange("CHECK|\(key(1))", .owner(MachineName("bob")!), now: start) == nil)
        // The address earns one token every 2 s, as a connection does.
        let later = start.adding(milliseconds: 2000)
        #expect(honest.exchange("CHECK|\(key(2))", .owner(MachineName("bob")!), now: later) == nil)
        #expect(honest.exchange("CHECK|\(key(3))", .owner(MachineName("bob")!), now: later) == nil)
        #expect(limits.addresses.limited(now: later).keys == [])
        #expect(limits.refusals >= 2)
    }

    @Test("once the scanner stops, the address refills and its bucket is forgotten")
    func refillAndForget() {
        let limits = RateLimits()
        var connection = Connection(limits, address: "198.51.100.7", now: start)
        for probe in 0..<10 { _ = connection.exchange("CHECK|\(key(probe))", unknownKey, now: start) }
        #expect(limits.addresses.trackedCount == 1)
        #expect(limits.addresses.limited(now: start).tracked == 1)
        let refilled = start.adding(milliseconds: 10 * TokenBucket.defaultRefillMilliseconds)
        #expect(limits.addresses.limited(now: refilled).tracked == 0)
        #expect(limits.addresses.trackedCount == 0)
    }

    @Test("failed logins as one machine from many addresses share its bucket; other names and CHECK still pass")
    func machineBucket() {
        let limits = RateLimits()
        var failures = 0
        var machineRefusal: Rejection?
        for address in 0..<100 where machineRefusal == nil {
            var connection = Connection(limits, address: "10.0.\(address / 256).\(address % 256)", now: start)
            for _ in 0..<10 {
                if let refusal = connection.exchange("LOGIN|alice|\(token)", badToken, now: start) {
                    machineRefusal = refusal
                    break
                }
                failures += 1
            }
        }
        #expect(failures == RateLimits.defaultMachineCapacity)
        #expect(machineRefusal?.code == .rateLimited)
        #expect(machineRefusal?.message.contains("as alice from anywhere") == true)
        var fresh = Connection(limits, address: "192.0.2.1", now: start)
        #expect(fresh.exchange("LOGIN|alice|\(token)", badToken, now: start)?.code == .rateLimited)
        #expect(fresh.exchange("LOGIN|bob|\(token)", badToken, now: start) == nil)
        #expect(fresh.exchange("CHECK|\(key(1))", unknownKey, now: start) == nil)
        #expect(limits.machines.limited(now: start).keys == [MachineName("alice")!])
    }

    @Test("unknown_machine and refusals that are not charged cost no shared token")
    func notCharged() {
        let limits = RateLimits()
        var connection = Connection(limits, address: "192.0.2.1", now: start)
        for _ in 0..<200 {
            #expect(
                connection.exchange(
                    "LOGIN|nobody|\(token)", .error(Rejection(.unknownMachine, "no such machine")), now: start) == nil)
        }
        #expect(limits.addresses.trackedCount == 0)
        #expect(limits.machines.trackedCount == 0)
    }

    @Test("a connection's own empty bucket shows for the console until its next token")
    func connectionStateForConsole() {
        let limits = RateLimits()
        var connection = Connection(limits, address: "192.0.2.1", now: start)
        for probe in 0..<TokenBucket.defaultCapacity {
            _ = connection.exchange("CHECK|\(key(probe))", unknownKey, now: start)
        }
        #expect(connection.state.isLimited(now: start))
        #expect(!connection.state.isLimited(now: start.adding(milliseconds: TokenBucket.defaultRefillMilliseconds)))
    }

    @Test("memory stays bounded: at most maximumKeys buckets, the rest share one overflow bucket")
    func bounded() {
        let buckets = SharedBuckets<String>(capacity: 3, refillMilliseconds: 1000, maximumKeys: 100)
        for index in 0..<10_000 { buckets.charge("k\(index)", now: start) }
        #expect(buckets.trackedCount == 101)
        // The overflow bucket takes every key past the bound: 3 charges empty it.
        #expect(buckets.isEmpty("k9999", now: start))
        #expect(!buckets.isEmpty("k0", now: start))
        // Refilled buckets are forgotten when the map would grow again.
        let later = start.adding(milliseconds: 10_000)
        buckets.charge("fresh", now: later)
        #expect(buckets.trackedCount == 1)
    }

    @Test("refilled buckets are swept as new keys arrive: a slow scan over many addresses holds few")
    func sweep() {
        let buckets = SharedBuckets<String>(capacity: 30, refillMilliseconds: 2000)
        var now = start
        var most = 0
        // One failure from each of 100,000 addresses, 10 a second: each
        // bucket refills within 2 s, so few are ever held at once.
        for index in 0..<100_000 {
            buckets.charge("a\(index)", now: now)
            now = now.adding(milliseconds: 100)
            most = max(most, buckets.trackedCount)
        }
        #expect(most <= 2048)
    }

    @Test("IPv4 addresses are keyed as is, also when mapped into IPv6; IPv6 by its /64")
    func addressKeys() throws {
        #expect(RateLimits.addressKey(try SocketAddress(ipAddress: "198.51.100.7", port: 4000)) == "198.51.100.7")
        #expect(
            RateLimits.addressKey(try SocketAddress(ipAddress: "::ffff:198.51.100.7", port: 4000)) == "198.51.100.7")
        let one = RateLimits.addressKey(try SocketAddress(ipAddress: "2001:db8:1:2:aaaa::1", port: 1))
        let two = RateLimits.addressKey(try SocketAddress(ipAddress: "2001:db8:1:2:bbbb::9", port: 2))
        #expect(one == "2001:db8:1:2::/64")
        #expect(one == two)
        #expect(RateLimits.addressKey(try SocketAddress(ipAddress: "2001:db8:1:3::1", port: 1)) != one)
        #expect(RateLimits.addressKey(nil) == "local")
    }
}
