import CarteiraTestSupport
import CarteiraCore
import Testing

let validKeyText = "0f8d3c1e-6b2a-4c9e-9a7d-3e5f1b2c4d6e"

@Suite("Value types")
struct ValueTests {
    @Test(
        "machine names are 1-64 of A-Z a-z 0-9 . _ -",
        arguments: [
            ("a", true), ("alice", true), ("Alice-PC.local_2", true), ("...", true), ("-", true),
            (String(repeating: "x", count: 64), true), (String(repeating: "x", count: 65), false), ("", false),
            ("al ice", false), ("a|b", false), ("a/b", false), ("ação", false), ("a\n", false), ("a\r", false),
            ("\u{FF41}", false), ("a\u{0301}", false), ("a:b", false),
        ] as [(String, Bool)])
    func machineNames(text: String, valid: Bool) {
        #expect((MachineName(text) != nil) == valid)
        #expect(MachineName(text)?.text == (valid ? text : nil))
    }

    @Test("names keep their bytes inline: equal, hashed and ordered as their text, from text, a substring or bytes")
    func machineNameStorage() throws {
        var random = SplitMix64(seed: 9)
        let alphabet = Array("ABCXYZabcxyz0189._-".utf8)
        var texts = [
            "a", "a.", "a-", "b", "aa", String(repeating: "z", count: 63) + "a", String(repeating: "z", count: 64),
        ]
        for length in 1...64 {
            for _ in 0..<4 {
                let bytes = (0..<length).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] }
                texts.append(String(decoding: bytes, as: UTF8.self))
            }
        }
        let names = texts.compactMap { text in MachineName(text).map { (text, $0) } }
        #expect(names.count == texts.count)
        for (text, name) in names {
            #expect(name.text == text)
            #expect(name.description == text)
            #expect(name.withUTF8 { Array($0) } == Array(text.utf8))
            #expect(MachineName(text.dropFirst(0)) == name)
            #expect(Array(text.utf8).withUnsafeBufferPointer { MachineName(utf8: $0) } == name)
        }
        for (leftText, left) in names.prefix(90) {
            for (rightText, right) in names.suffix(90) {
                #expect((left == right) == (leftText == rightText), "\(leftText) \(rightText)")
                #expect((left < right) == (leftText < rightText), "\(leftText) \(rightText)")
                if left == right { #expect(left.hashValue == right.hashValue) }
            }
        }
        #expect(Set(names.map(\.1)).count == Set(texts).count)
        // Bytes are checked as text is.
        for bad in ["", "a b", String(repeating: "x", count: 65), "a|b"] {
            #expect(Array(bad.utf8).withUnsafeBufferPointer { MachineName(utf8: $0) } == nil, "\(bad)")
        }
    }

    @Test(
        "payment keys are lower-case UUID version 4 with an RFC 4122 variant",
        arguments: [
            (validKeyText, true), ("00000000-0000-4000-8000-000000000000", true),
            ("ffffffff-ffff-4fff-bfff-ffffffffffff", true), ("12345678-9abc-4def-9012-3456789abcde", true),
            ("12345678-9abc-4def-a012-3456789abcde", true),
            // version nibble
            ("0f8d3c1e-6b2a-1c9e-9a7d-3e5f1b2c4d6e", false), ("0f8d3c1e-6b2a-5c9e-9a7d-3e5f1b2c4d6e", false),
            ("0f8d3c1e-6b2a-0c9e-9a7d-3e5f1b2c4d6e", false),
            // variant nibble
            ("0f8d3c1e-6b2a-4c9e-7a7d-3e5f1b2c4d6e", false), ("0f8d3c1e-6b2a-4c9e-ca7d-3e5f1b2c4d6e", false),
            ("0f8d3c1e-6b2a-4c9e-fa7d-3e5f1b2c4d6e", false),
            // shape
            ("", false), ("0f8d3c1e6b2a4c9e9a7d3e5f1b2c4d6e", false), ("0f8d3c1e-6b2a-4c9e-9a7d-3e5f1b2c4d6", false),
            ("0f8d3c1e-6b2a-4c9e-9a7d-3e5f1b2c4d6e0", false), ("0f8d3c1e-6b2a-4c9e-9a7d_3e5f1b2c4d6e", false),
            ("0f8d3c1e6-b2a-4c9e-9a7d-3e5f1b2c4d6e", false), ("0g8d3c1e-6b2a-4c9e-9a7d-3e5f1b2c4d6e", false),
            ("{0f8d3c1e-6b2a-4c9e-9a7d-3e5f1b2c4d6e}", false), (" 0f8d3c1e-6b2a-4c9e-9a7d-3e5f1b2c4d6e", false),
            ("0f8d3c1e-6b2a-4c9e-9a7d-3e5f1b2c4d6\u{FF45}", false),
        ] as [(String, Bool)])
    func paymentKeys(text: String, valid: Bool) {
        #expect(PaymentKey(text)?.text == (valid ? text : nil))
        // A key read out of a longer line, as the server's parser cuts it.
        #expect(
            PaymentKey("SEND|\(text)|1,00".split(separator: "|").dropFirst().first ?? "")?.text == (valid ? text : nil))
    }

    @Test("an upper-case key is folded to lower case and equals the lower-case key")
    func upperCaseKeyFolds() throws {
        let key = try #require(PaymentKey(validKeyText.uppercased()))
        #expect(key.text == validKeyText)
        #expect(key == PaymentKey(validKeyText))
        #expect(key.description == validKeyText)
        #expect(PaymentKey("0F8D3C1E-6B2A-4C9E-9A7D-3E5F1B2C4D6E") == key)
        #expect(PaymentKey("0f8d3c1e-6b2a-4c9e-9A7D-3e5f1b2c4d6e") == key)
    }

    @Test("key text as a client wrote it: a key in either case is that key, anything else keeps its text")
    func keyTextAsWritten() throws {
        let key = try #require(PaymentKey(validKeyText))
        for written in [validKeyText, validKeyText.uppercased()] {
            let keyText = KeyText(written)
            #expect(keyText.key == key)
            #expect(keyText == KeyText(key))
            #expect(keyText.text == validKeyText)
            let fromBytes = Array(written.utf8).withUnsafeBufferPointer { KeyText(utf8: $0) }
            #expect(fromBytes == keyText)
        }
        for other in ["", "anything", "not a key", String(validKeyText.dropLast()), validKeyText + "0"] {
            let keyText = KeyText(other)
            #expect(keyText.key == nil)
            #expect(keyText.text == other)
            #expect(Array(other.utf8).withUnsafeBufferPointer { KeyText(utf8: $0) } == keyText)
        }
        #expect(KeyText("anything") != KeyText("Anything"))
    }

    @Test("keys built from random bytes are valid version 4 keys that carry the bytes")
    func keysFromRandomBytes() throws {
        var random = SplitMix64(seed: 4)
        var seen = Set<PaymentKey>()
        let extremes: [[UInt8]] = [Array(repeating: 0, count: 16), Array(repeating: 0xFF, count: 16)]
        for bytes in extremes + (0..<500).map({ _ in random.bytes(16) }) {
            let key = PaymentKey(randomBytes: bytes)
            let reparsed = try #require(PaymentKey(key.text), "\(key.text) from \(bytes)")
            #expect(reparsed == key)
            let hex = String(key.text.filter { $0 != "-" })
            let expected = bytes.enumerated().map { index, byte in
                index == 6 ? (byte & 0x0F) | 0x40 : index == 8 ? (byte & 0x3F) | 0x80 : byte
            }
            #expect(hex == lowerHex(expected))
            seen.insert(key)
        }
        #expect(seen.count == 502)
        #expect(PaymentKey(randomBytes: Array(repeating: 0, count: 16)).text == "00000000-0000-4000-8000-000000000000")
        #expect(
            PaymentKey(randomBytes: Array(repeating: 0xFF, count: 16)).text == "ffffffff-ffff-4fff-bfff-ffffffffffff")
    }

    @Test(
        "tokens are exactly 32 lower-case hex digits",
        arguments: [
            (String(repeating: "a", count: 32), true), ("0123456789abcdef0123456789abcdef", true),
            (String(repeating: "a", count: 31), false), (String(repeating: "a", count: 33), false),
            ("0123456789ABCDEF0123456789abcdef", false), ("0123456789abcdeg0123456789abcdef", false), ("", false),
        ] as [(String, Bool)])
    func tokens(text: String, valid: Bool) {
        #expect(Token(text)?.text == (valid ? text : nil))
    }

    @Test("a token from 16 random bytes is their lower-case hex")
    func tokenFromBytes() throws {
        let bytes: [UInt8] = [0, 1, 0xAB, 0xFF, 0x10, 0x0F, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
        let token = Token(randomBytes: bytes)
        #expect(token.text == "0001abff100f02030405060708090a0b")
        #expect(Token(token.text) == token)
    }

    @Test(
        "token digests are exactly 64 lower-case hex digits",
        arguments: [
            (String(repeating: "0", count: 64), true), (String(repeating: "f", count: 64), true),
            (String(repeating: "f", count: 63), false), (String(repeating: "f", count: 65), false),
            (String(repeating: "F", count: 64), false), (String(repeating: "z", count: 64), false),
        ] as [(String, Bool)])
    func tokenDigests(text: String, valid: Bool) {
        #expect(TokenDigest(text)?.text == (valid ? text : nil))
    }

    @Test(
        "tx ids are 1-40 of A-Z a-z 0-9 -",
        arguments: [
            ("T000000000042", true), ("a", true), ("-", true), ("T-1-b", true),
            (String(repeating: "9", count: 40), true),
            (String(repeating: "9", count: 41), false), ("", false), ("T_1", false), ("T.1", false), ("T 1", false),
            ("T|1", false),
        ] as [(String, Bool)])
    func txIDs(text: String, valid: Bool) {
        #expect(TxID(text)?.text == (valid ? text : nil))
    }

    @Test("tx ids derived from a seq are T and at least 12 digits, and order like the seq")
    func txFromSeq() {
        #expect(TxID(seq: 0).text == "T000000000000")
        #expect(TxID(seq: 42).text == "T000000000042")
        #expect(TxID(seq: 999_999_999_999).text == "T999999999999")
        #expect(TxID(seq: 1_000_000_000_000).text == "T1000000000000")
        #expect(TxID(seq: 9) < TxID(seq: 10))
        #expect(TxID(TxID(seq: Int64.max).text) != nil)
        // Written digit by digit: the same text as padding `String(seq)`.
        var random = SplitMix64(seed: 20_261_206)
        for _ in 0..<10_000 {
            let seq = Int64(random.next() % 1_000_000_000_000) >> (random.next() % 40)
            let digits = String(seq)
            #expect(TxID(seq: seq).text == "T" + String(repeating: "0", count: 12 - digits.count) + digits)
        }
    }

    @Test(
        "request ids are 1-64 of A-Z a-z 0-9 _ -, but not - alone",
        arguments: [
            ("pay-1", true), ("a", true), ("_", true), ("--", true), ("A_b-9", true),
            (String(repeating: "r", count: 64), true), ("-", false), ("", false),
            (String(repeating: "r", count: 65), false), ("a.b", false), ("a b", false), ("a|b", false),
            ("pagó", false),
        ] as [(String, Bool)])
    func requestIDs(text: String, valid: Bool) {
        #expect(RequestID(text)?.text == (valid ? text : nil))
    }

    @Test("every error code has its wire name and only key and token failures are charged")
    func errorCodes() {
        #expect(ErrorCode.allCases.count == 17)
        #expect(Set(ErrorCode.allCases.map(\.rawValue)).count == ErrorCode.allCases.count)
        #expect(ErrorCode.allCases.filter(\.isCharged) == [.unknownKey, .expiredKey, .badToken])
        #expect(ErrorCode.requestIDReused.rawValue == "request_id_reused")
        #expect(Rejection(.badToken, "wrong").description == "bad_token: wrong")
    }
}
