import CarteiraCore
import Crypto
import Foundation
import Testing

@testable import CarteiraJournal

@Suite("Journal line codec")
struct CodecTests {
    static func sampleEvents() -> [Event] {
        var driver = LedgerDriver(ledger: Ledger())
        driver.run(.genesis)
        driver.register("alice")
        driver.register("bob")
        driver.pay("alice", "bob", 5000, request: "req-1")
        driver.pay("bob", "alice", 1, request: nil)
        driver.rotate("alice", reason: .expired)
        driver.rotate("bob", reason: .request)
        driver.rotate("alice", reason: .admin)
        return driver.events
    }

    @Test("every event type survives encode then decode, and the hash is what decode reports")
    func roundTrip() throws {
        var previous = JournalCodec.zeroHash
        let events = Self.sampleEvents()
        #expect(events.count == 8)
        for event in events {
            let (line, hash) = JournalCodec.encode(event, previousHash: previous)
            #expect(line.hasSuffix(" hash=\(hash)\n"))
            let decoded = try JournalCodec.decode(Substring(line), previousHash: previous)
            #expect(decoded.event == event)
            #expect(decoded.hash == hash)
            previous = hash
        }
    }

    @Test("each type writes its fields in the spec's fixed order")
    func fieldOrder() throws {
        var previous = JournalCodec.zeroHash
        for event in Self.sampleEvents() {
            let (line, hash) = JournalCodec.encode(event, previousHash: previous)
            previous = hash
            let names = line.dropLast().split(separator: " ").map { String($0.split(separator: "=")[0]) }
            switch event.kind {
            case .genesis:
                #expect(names == ["seq", "at", "type", "format", "hash"])
                #expect(line.contains(" type=genesis format=carteira-journal/1 "))
            case .registered:
                #expect(names == ["seq", "at", "type", "machine", "key", "expires", "token", "balance", "hash"])
            case let .transfer(transfer):
                #expect(names == ["seq", "at", "type", "tx", "from", "to", "key", "amount", "req", "hash"])
                #expect(line.contains(" req=\(transfer.requestID?.text ?? "-") "))
            case .keyRotated:
                #expect(names == ["seq", "at", "type", "machine", "key", "expires", "reason", "hash"])
            }
        }
    }

    /// Re-hashes `text` onto `previous` the way the spec says, without the codec.
    static func line(_ text: String, previous: String) -> String {
        let digest = SHA256.hash(data: Data((previous + " " + text).utf8))
        return text + " hash=" + digest.map { String(format: "%02x", $0) }.joined()
    }

    @Test(
        "decoding refuses non-canonical or misplaced fields even when the hash matches",
        arguments: [
            ("seq=01 at=2026-11-26T19:22:09.123Z type=genesis format=carteira-journal/1", "seq"),
            ("seq=+1 at=2026-11-26T19:22:09.123Z type=genesis format=carteira-journal/1", "seq"),
            ("seq=0 at=2026-11-26T19:22:09Z type=genesis format=carteira-journal/1", "at"),
            ("seq=0 at=2026-11-26T19:22:09.123Z type=genesis format=carteira-journal/2", "format"),
            ("seq=0 at=2026-11-26T19:22:09.123Z type=genesis format=carteira-journal/1 extra=1", "after the last"),
            ("seq=0 at=2026-11-26T19:22:09.123Z type=genesis  format=carteira-journal/1", "format"),
            ("at=2026-11-26T19:22:09.123Z seq=0 type=genesis format=carteira-journal/1", "seq"),
            ("seq=0 at=2026-11-26T19:22:09.123Z type=merged format=x", "unknown type merged"),
            (
                "seq=3 at=2026-11-26T19:22:09.123Z type=transfer tx=T000000000003 from=a to=b key=0B5E6A1C-1D2E-4F00-8A00-000000000001 amount=5 req=-",
                "key"
            ),
            (
                "seq=3 at=2026-11-26T19:22:09.123Z type=transfer tx=T000000000003 from=a to=b key=0b5e6a1c-1d2e-4f00-8a00-000000000001 amount=007 req=-",
                "amount"
            ),
            (
                "seq=3 at=2026-11-26T19:22:09.123Z type=key_rotated machine=a key=0b5e6a1c-1d2e-4f00-8a00-000000000001 expires=2026-11-26T19:22:09.123Z reason=bored",
                "reason"
            ),
        ])
    func strictDecoding(text: String, mentions: String) {
        #expect(Self.decodingFailure(text)?.contains(mentions) == true)
    }

    /// Why `text`, chained to the zero hash, does not decode; nil if it does.
    static func decodingFailure(_ text: String) -> String? {
        do {
            _ = try JournalCodec.decode(
                Substring(line(text, previous: JournalCodec.zeroHash)), previousHash: JournalCodec.zeroHash)
            return nil
        } catch {
            return error.reason
        }
    }

    @Test(
        "the chain hash (OpenSSL's SHA-256) is swift-crypto's SHA-256 of the previous hash, a space and the text, at every length across SHA-256's block edges"
    )
    func chainHashAgreesWithSwiftCrypto() {
        var previous = Array(JournalCodec.zeroHash.utf8)
        for length in 0...300 {
            let letters = (0..<length).map { UInt8(ascii: "a") + UInt8(($0 * 7 + length) % 26) }
            var text = String(decoding: letters, as: UTF8.self)
            let expected = SHA256.hash(data: Data(previous + [UInt8(ascii: " ")] + letters))
                .map { String(format: "%02x", $0) }.joined()
            let hash = JournalCodec.chainHash(previousHash: previous, text: &text)
            #expect(String(decoding: hash, as: UTF8.self) == expected, "text of \(length) bytes")
            previous = hash
        }
    }

    @Test("the genesis line's hash is the one Python's hashlib gives (tools/bench-replay/make-journal.py)")
    func knownGenesisHash() throws {
        let event = Event(seq: 0, at: try #require(Timestamp(iso8601: "2026-11-26T00:00:00.000Z")), kind: .genesis)
        let (line, hash) = JournalCodec.encode(event, previousHash: JournalCodec.zeroHash)
        #expect(hash == "ac1cb32848455cc94b8eb87352881858bfacec8a423abd75ba26a9d89c6881f8")
        #expect(line.hasSuffix(" hash=\(hash)\n"))
    }

    /// Times and keys are read without looking for the space after them
    /// when they have their fixed width; a value that is not one is read
    /// the general way, so its reason is the same as ever.
    @Test(
        "a time or key of the right width that does not parse fails with the reason a scan for the space gives",
        arguments: [
            (
                "seq=0 at=2026-11-26 19:22:09.123Z type=genesis format=carteira-journal/1",
                "at is not a UTC time with milliseconds"
            ),
            (
                "seq=0 at=2026-11-26T19:22:09.123Z+type=genesis format=carteira-journal/1",
                "at holds a character a value may not hold"
            ),
            (
                "seq=3 at=2026-11-26T19:22:09.123Z type=transfer tx=T000000000003 from=a to=b key=0b5e6a1c-1d2e-4f00-8a00 000000000001 amount=5 req=-",
                "key is not a lower-case UUID v4"
            ),
            (
                "seq=3 at=2026-11-26T19:22:09.123Z type=transfer tx=T000000000003 from=a to=b key=0b5e6a1c-1d2e-4f00-8a00-00000000000= amount=5 req=-",
                "key holds a character a value may not hold"
            ),
            (
                "seq=3 at=2026-11-26T19:22:09.123Z type=transfer tx=T000000000003 from=a to=b kex=0b5e6a1c-1d2e-4f00-8a00-000000000001 amount=5 req=-",
                "expected field key= here"
            ),
        ])
    func fixedWidthFieldsFailAsBefore(text: String, reason: String) {
        #expect(Self.decodingFailure(text) == reason)
    }

    @Test("a line chained to another hash, or with its hash edited, does not decode")
    func brokenChain() throws {
        let (line, _) = JournalCodec.encode(
            Event(seq: 0, at: startTime, kind: .genesis), previousHash: JournalCodec.zeroHash)
        let other = String(repeating: "1", count: 64)
        #expect(throws: JournalFormatError.self) { try JournalCodec.decode(Substring(line), previousHash: other) }
        let edited = line.replacingOccurrences(of: "seq=0 ", with: "seq=0  ")
        #expect(throws: JournalFormatError.self) {
            try JournalCodec.decode(Substring(edited), previousHash: JournalCodec.zeroHash)
        }
    }
}
