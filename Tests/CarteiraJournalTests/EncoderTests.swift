import CarteiraCore
import CarteiraTestSupport
import Testing

@testable import CarteiraJournal

/// A token digest from 32 random bytes (always of the digest form).
private func digest(_ bytes: [UInt8]) -> TokenDigest {
    guard let digest = TokenDigest(lowerHex(bytes)) else { preconditionFailure("64 hex digits are a digest") }
    return digest
}

@Suite("Journal encoder")
struct EncoderTests {
    /// Events of every type with seeded values, times across centuries and
    /// the edges of days, seconds and milliseconds.
    static func events(seed: UInt64, count: Int) -> [Event] {
        var random = SplitMix64(seed: seed)
        let times: [Int64] = [
            0, 1, 999, 1000, 59_999, 86_399_999, 951_782_400_000, 1_795_000_180_000, 253_402_296_000_000,
        ]
        let names = ["a", "alice", "bob.x_y-Z", String(repeating: "m", count: 64)].compactMap { MachineName($0) }
        let payee = names[1]
        let reasons = KeyRotationReason.allCases
        var events: [Event] = [Event(seq: 0, at: Timestamp(milliseconds: 0), kind: .genesis)]
        for index in 1..<count {
            let at = Timestamp(milliseconds: (random.pick(times) ?? 0) + Int64(random.next() % 1000))
            let machine = random.pick(names) ?? payee
            let key = PaymentKey(randomBytes: random.bytes(16))
            let seq = Int64(index) * Int64(1 + random.next() % 1_000_000)
            let kind: Event.Kind
            switch random.next() % 3 {
            case 0:
                kind = .registered(
                    Event.Registration(
                        machine: machine, key: key, expires: at.adding(seconds: 180),
                        tokenDigest: digest(random.bytes(32)), balance: Centavos(Int64(random.next() % 1_000_000_000))))
            case 1:
                kind = .transfer(
                    Event.Transfer(
                        tx: TxID(seq: seq), from: machine, to: payee, key: key,
                        amount: Centavos(1 + Int64(random.next() % 999_999_999_999)),
                        requestID: RequestID("req-\(random.next() % 99_999)").flatMap {
                            random.next() % 2 == 0 ? nil : $0
                        }))
            default:
                kind = .keyRotated(
                    Event.KeyRotation(
                        machine: machine, key: key, expires: at.adding(seconds: 3600),
                        reason: reasons[Int(random.next() % UInt64(reasons.count))]))
            }
            events.append(Event(seq: seq, at: at, kind: kind))
        }
        return events
    }

    /// JOURNAL.md's line text written the plain way, as a reference the
    /// byte encoder must match.
    static func referenceText(_ event: Event) -> String {
        let head = "seq=\(event.seq) at=\(event.at.iso8601) type="
        switch event.kind {
        case .genesis:
            return head + "genesis format=\(JournalCodec.formatVersion)"
        case let .registered(r):
            return head
                + "registered machine=\(r.machine.text) key=\(r.key.text) expires=\(r.expires.iso8601)"
                + " token=\(r.tokenDigest.text) balance=\(r.balance.value)"
        case let .transfer(t):
            return head
                + "transfer tx=\(t.tx.text) from=\(t.from.text) to=\(t.to.text) key=\(t.key.text)"
                + " amount=\(t.amount.value) req=\(t.requestID?.text ?? "-")"
        case let .keyRotated(k):
            return head
                + "key_rotated machine=\(k.machine.text) key=\(k.key.text) expires=\(k.expires.iso8601)"
                + " reason=\(k.reason.rawValue)"
        }
    }

    @Test("writes exactly JOURNAL.md's line, hash chain included, for 2,000 seeded events")
    func sameBytesAsReference() {
        var chain = Array(JournalCodec.zeroHash.utf8)
        var previous = Array(JournalCodec.zeroHash.utf8)
        for event in Self.events(seed: 20_261_201, count: 2000) {
            var bytes: [UInt8] = []
            JournalEncoder.appendLine(event, chainHash: &chain, to: &bytes)
            var text = Self.referenceText(event)
            let hash = JournalCodec.chainHash(previousHash: previous, text: &text)
            #expect(
                bytes == Array((text + " hash=" + String(decoding: hash, as: UTF8.self) + "\n").utf8),
                "seq \(event.seq)")
            #expect(chain == hash)
            previous = hash
        }
    }

    @Test("lines it writes decode back to the same events")
    func roundTrip() throws {
        var chain = Array(JournalCodec.zeroHash.utf8)
        for event in Self.events(seed: 7, count: 500) {
            let previous = String(decoding: chain, as: UTF8.self)
            var bytes: [UInt8] = []
            JournalEncoder.appendLine(event, chainHash: &chain, to: &bytes)
            let decoded = try JournalCodec.decode(
                Substring(String(decoding: bytes, as: UTF8.self)), previousHash: previous)
            #expect(decoded.event == event)
        }
    }

    @Test("writes times as Timestamp.iso8601 does, across years, days and milliseconds, past 9999 and before 1970")
    func timesAsISO8601() {
        var random = SplitMix64(seed: 20_261_206)
        var times: [Int64] = [
            0, -1, -1000, -86_400_000, -62_167_219_200_000, -62_167_219_200_001, 253_402_300_799_999,
            253_402_300_800_000, 4_102_444_800_000, 951_868_800_000,
        ]
        for _ in 0..<5_000 { times.append(Int64(bitPattern: random.next()) % 400_000_000_000_000) }
        for milliseconds in times {
            let time = Timestamp(milliseconds: milliseconds)
            var bytes: [UInt8] = []
            JournalEncoder.appendTime(time, to: &bytes)
            #expect(String(decoding: bytes, as: UTF8.self) == time.iso8601, "\(milliseconds)")
        }
    }

    /// Regression (fuzz-journal-line under ASan): integers of more than 16
    /// digits overran the encoder's digit buffer on the stack.
    @Test("writes integers of every length, Int64.min and Int64.max included")
    func integersOfEveryLength() {
        var values: [Int64] = [0, Int64.max, Int64.min, Int64.min + 1]
        var power: Int64 = 1
        for _ in 0..<19 {
            values += [power, power - 1, -power, -(power - 1)]
            if power <= Int64.max / 10 { power *= 10 }
        }
        for value in values {
            var bytes: [UInt8] = []
            JournalEncoder.appendInteger(value, to: &bytes)
            #expect(String(decoding: bytes, as: UTF8.self) == String(value))
        }
    }

    @Test("a balance and an amount of 19 digits encode as the reference does")
    func nineteenDigitFields() {
        guard let alice = MachineName("alice"), let bob = MachineName("bob"),
            let token = TokenDigest(String(repeating: "a", count: 64))
        else { preconditionFailure("valid fixtures") }
        let at = Timestamp(milliseconds: 1_795_000_180_000)
        let key = PaymentKey(randomBytes: Array(repeating: 7, count: 16))
        let events = [
            Event(
                seq: Int64.max, at: at,
                kind: .registered(
                    Event.Registration(
                        machine: alice, key: key, expires: at, tokenDigest: token, balance: Centavos(Int64.max)))),
            Event(
                seq: 9_000_000_000_000_000_000, at: at,
                kind: .transfer(
                    Event.Transfer(
                        tx: TxID(seq: 9_000_000_000_000_000_000), from: alice, to: bob, key: key,
                        amount: Centavos(Int64.max), requestID: nil))),
        ]
        for event in events {
            var bytes: [UInt8] = []
            JournalEncoder.appendText(event, to: &bytes)
            #expect(String(decoding: bytes, as: UTF8.self) == Self.referenceText(event))
        }
    }

    @Test("the longest line it can write: two 64-byte names, a 64-byte request id, 19 digits, a time of 30 bytes")
    func longestLine() {
        guard let payer = MachineName(String(repeating: "p", count: 64)),
            let payee = MachineName(String(repeating: "q", count: 64)),
            let requestID = RequestID(String(repeating: "r", count: 64))
        else { preconditionFailure("valid fixtures") }
        let key = PaymentKey(randomBytes: Array(repeating: 0xEE, count: 16))
        for milliseconds in [Int64.min, Int64.max] {
            let event = Event(
                seq: Int64.max, at: Timestamp(milliseconds: milliseconds),
                kind: .transfer(
                    Event.Transfer(
                        tx: TxID(seq: Int64.max), from: payer, to: payee, key: key, amount: Centavos(Int64.max),
                        requestID: requestID)))
            var chain = Array(JournalCodec.zeroHash.utf8)
            var bytes: [UInt8] = []
            JournalEncoder.appendLine(event, chainHash: &chain, to: &bytes)
            var text = Self.referenceText(event)
            let hash = JournalCodec.chainHash(previousHash: Array(JournalCodec.zeroHash.utf8), text: &text)
            #expect(bytes == Array((text + " hash=" + String(decoding: hash, as: UTF8.self) + "\n").utf8))
            #expect(bytes.count < JournalEncoder.lineCapacity / 2, "\(bytes.count) bytes")
        }
    }
}
