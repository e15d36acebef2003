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

    @Test("SipHash gives the reference vectors (2-4) and CPython's hash of bytes (1-3), with and without a prefix")
    func sipHash() {
        // The reference implementation's vectors: key 00 01 … 0f, message
        // 00 01 … of each length.
        let reference = SipHash(
            key: (0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908), compressionRounds: 2, finalizationRounds: 4)
        let vectors: [UInt64] = [
            0x726f_db47_dd0e_0e31, 0x74f8_39c5_93dc_67fd, 0x0d6c_8009_d9a9_4f5a, 0x8567_6696_d7fb_7e2d,
            0xcf27_94e0_2771_87b7, 0x1876_5564_cd99_a68d, 0xcbc9_466e_58fe_e3ce, 0xab02_00f5_8b01_d137,
            0x93f5_f579_9a93_2462, 0x9e00_82df_0ba9_e4b0,
        ]
        for (length, expected) in vectors.enumerated() {
            let message = (0..<length).map { UInt8($0) }
            #expect(message.withUnsafeBytes { reference.hash($0) } == expected, "length \(length)")
        }
        // CPython hashes bytes with SipHash-1-3, keyed with zeros under
        // PYTHONHASHSEED=0: `hash(b"a") & (2**64 - 1)` and so on.
        let zero = SipHash(key: (0, 0))
        let python: [(String, UInt64)] = [
            ("a", 0x4074_48d2_b89b_1813), ("abcdefg", 0x6db1_2aae_9070_f506), ("abcdefgh", 0x3f7b_849c_0b8e_35ea),
            ("lg4473edbc7a-999", 0x97c0_27e6_b0d0_cd78),
        ]
        for (text, expected) in python {
            #expect(Array(text.utf8).withUnsafeBytes { zero.hash($0) } == expected, "\(text)")
        }
        #expect((0..<63).map { UInt8($0) }.withUnsafeBytes { zero.hash($0) } == 0x385d_3e39_e5f3_7359)
        // A prefix hashes as its 8 little-endian bytes before the message.
        let prefix: UInt64 = 0x1122_3344_5566_7788
        let joined = withUnsafeBytes(of: prefix.littleEndian) { Array($0) } + Array("request-7".utf8)
        #expect(
            Array("request-7".utf8).withUnsafeBytes { zero.hash($0, prefix: prefix) }
                == joined.withUnsafeBytes { zero.hash($0) })
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
