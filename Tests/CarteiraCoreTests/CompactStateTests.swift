import CarteiraTestSupport
import Testing

@testable import CarteiraCore

@Suite("Ledger: the compact state")
struct CompactStateTests {
    @Test("a key's and a token digest's bits format back to exactly the text they were parsed from")
    func bitsRoundTrip() throws {
        var random = SplitMix64(seed: 11)
        for _ in 0..<500 {
            let key = PaymentKey(randomBytes: random.bytes(16))
            #expect(KeyBits(key).paymentKey == key)
            let digest = try #require(TokenDigest(lowerHex(random.bytes(32))))
            #expect(DigestBits(digest).tokenDigest == digest)
        }
    }

    @Test("key bits refuse upper case unless folding it, and anything that is not a UUID v4")
    func keyBitsParsing() throws {
        let key = PaymentKey(randomBytes: Array(repeating: 0xAB, count: 16))
        var upper = key.text.uppercased()
        var lower = key.text
        #expect(upper.withUTF8 { KeyBits($0, foldingCase: false) } == nil)
        #expect(upper.withUTF8 { KeyBits($0, foldingCase: true) } == KeyBits(key))
        #expect(lower.withUTF8 { KeyBits($0, foldingCase: false) } == KeyBits(key))
        for bad in [
            "abababab-abab-3bab-abab-abababababab", "abababab-abab-4bab-cbab-abababababab",
            "abababab-abab-4bab-abab-ababababababa", "abababab_abab-4bab-abab-abababababab",
            "abababab-abab-4bab-abab-abababababag", "\u{18}bababab-abab-4bab-abab-abababababab",
        ] {
            var text = bad
            #expect(text.withUTF8 { KeyBits($0, foldingCase: true) } == nil, "\(bad)")
            #expect(PaymentKey(bad) == nil, "\(bad)")
        }
    }

    /// `KeyBits` reads eight digits at a time in a word; this is the same
    /// rule one character at a time.
    static func referenceBits(_ text: [UInt8], foldingCase: Bool) -> KeyBits? {
        let hyphens = [8, 13, 18, 23]
        guard text.count == 36, hyphens.allSatisfy({ text[$0] == UInt8(ascii: "-") }) else { return nil }
        var digits = ""
        for (index, byte) in text.enumerated() where !hyphens.contains(index) {
            let folded = foldingCase && (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte) ? byte | 0x20 : byte
            guard
                (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(folded)
                    || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(folded)
            else { return nil }
            digits.append(Character(Unicode.Scalar(folded)))
        }
        let version = digits[digits.index(digits.startIndex, offsetBy: 12)]
        let variant = digits[digits.index(digits.startIndex, offsetBy: 16)]
        guard version == "4", "89ab".contains(variant), let high = UInt64(digits.prefix(16), radix: 16),
            let low = UInt64(digits.suffix(16), radix: 16)
        else { return nil }
        return KeyBits(high: high, low: low)
    }

    @Test("key bits agree with a one-character-at-a-time parser for every byte value at every digit position")
    func keyBitsEveryByte() {
        var random = SplitMix64(seed: 5)
        let key = PaymentKey(randomBytes: random.bytes(16))
        let digitPositions = (0..<36).filter { ![8, 13, 18, 23].contains($0) }
        for position in digitPositions {
            for value in 0...255 {
                var text = Array(key.text.utf8)
                text[position] = UInt8(value)
                for foldingCase in [false, true] {
                    let parsed = text.withUnsafeBufferPointer { KeyBits($0, foldingCase: foldingCase) }
                    #expect(
                        parsed == Self.referenceBits(text, foldingCase: foldingCase),
                        "byte \(value) at \(position), folding \(foldingCase)")
                }
            }
        }
    }

    @Test("a chunked array keeps every element across chunk edges, and a copy is unchanged by later appends")
    func chunkedArray() {
        let size = ChunkedArray<Int>.chunkSize
        var array = ChunkedArray<Int>()
        for value in 0..<(2 * size + 3) { array.append(value * 7) }
        #expect(array.count == 2 * size + 3)
        for index in [0, 1, size - 1, size, size + 1, 2 * size - 1, 2 * size, 2 * size + 2] {
            #expect(array[index] == index * 7, "element \(index)")
        }
        // A snapshot of the ledger shares the chunks; appending to one
        // side leaves the other as it was.
        let copy = array
        array.append(-1)
        for _ in 0..<size { array.append(-2) }
        #expect(copy.count == 2 * size + 3)
        #expect(copy[2 * size + 2] == (2 * size + 2) * 7)
        #expect(array.count == 3 * size + 4)
        #expect(array[2 * size + 3] == -1)
        #expect(array[3 * size + 3] == -2)
    }

    @Test("a transfer is a 48-byte record, so a million take 48 MB")
    func transferRecordSize() {
        #expect(MemoryLayout<TransferSlot>.stride == 48)
    }

    @Test("apply refuses a transfer whose tx is not the one its seq gives, and transfer(tx) finds each by its tx")
    func txIsDerivedFromSeq() throws {
        var base = try ReplayBase()
        #expect(throws: LedgerViolation.self) { try base.ledger.apply(base.transfer(tx: TxID("T000000000099"))) }
        #expect(throws: LedgerViolation.self) { try base.ledger.apply(base.transfer(tx: TxID("T00000000004"))) }
        #expect(throws: LedgerViolation.self) { try base.ledger.apply(base.transfer(tx: TxID("x"))) }
        try base.ledger.apply(base.transfer())
        for record in base.ledger.transfers {
            #expect(base.ledger.transfer(record.tx) == record)
        }
        #expect(base.ledger.transfer(try #require(TxID("T000000000001"))) == nil)
        #expect(base.ledger.transfer(try #require(TxID("T00000000003"))) == nil)
    }
}
