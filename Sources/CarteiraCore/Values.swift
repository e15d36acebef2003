/// Checks that every byte of `text` is ASCII and accepted by `allowed`, and
/// that the length is within `lengths`.
@inlinable
func isWellFormed(_ text: some StringProtocol, lengths: ClosedRange<Int>, allowed: (UInt8) -> Bool) -> Bool {
    var count = 0
    for byte in text.utf8 {
        guard allowed(byte) else { return false }
        count += 1
        if count > lengths.upperBound { return false }
    }
    return count >= lengths.lowerBound
}

@inlinable
func isAlphanumeric(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
        UInt8(ascii: "0")...UInt8(ascii: "9"):
        return true
    default:
        return false
    }
}

@inlinable
func isLowerHex(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "f"), UInt8(ascii: "0")...UInt8(ascii: "9"):
        return true
    default:
        return false
    }
}

/// A peer's name: 1-64 of `A-Z a-z 0-9 . _ -`.
public struct MachineName: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let text: String

    @inlinable
    public init?(_ text: some StringProtocol) {
        let valid = isWellFormed(text, lengths: 1...64) { byte in
            isAlphanumeric(byte) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
        guard valid else { return nil }
        self.text = String(text)
    }

    public static func < (lhs: MachineName, rhs: MachineName) -> Bool { lhs.text < rhs.text }
    public var description: String { text }
}

/// A payment key: a lower-case UUID version 4, `8-4-4-4-12` hex digits.
public struct PaymentKey: Sendable, Hashable, CustomStringConvertible {
    public let text: String

    /// Accepts the UUID form only. Upper-case hex digits are folded to lower
    /// case, so a key pasted from a tool that upper-cases UUIDs still works.
    /// Checked as `KeyBits` reads a key, eight digits at a time: a key
    /// already in lower case (as every key the server issues) costs no
    /// allocation beyond the stored text. `Ledger.decide` parses the key of
    /// every `SEND` under the owner's lock.
    public init?(_ text: some StringProtocol) {
        var string = String(text)
        let upperCase = string.withUTF8 { bytes -> Bool? in
            guard KeyBits(bytes, foldingCase: true) != nil else { return nil }
            return bytes.contains { $0 &- UInt8(ascii: "A") < 6 }
        }
        guard let upperCase else { return nil }
        self.text = upperCase ? string.lowercased() : string
    }

    /// A key from text already known to be a lower-case UUID v4 (the
    /// ledger's own bits formatted back), without checking it again.
    init(checkedText text: String) {
        self.text = text
    }

    /// Builds a version 4 key from 16 random bytes (the caller supplies the
    /// randomness: the core draws none itself).
    public init(randomBytes: [UInt8]) {
        precondition(randomBytes.count == 16, "a payment key takes 16 random bytes")
        var bytes = randomBytes
        bytes[6] = (bytes[6] & 0x0F) | 0x40
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        var text = ""
        text.reserveCapacity(36)
        for (index, byte) in bytes.enumerated() {
            if index == 4 || index == 6 || index == 8 || index == 10 { text.append("-") }
            text.append(hexDigits[Int(byte >> 4)])
            text.append(hexDigits[Int(byte & 0x0F)])
        }
        self.text = text
    }

    public var description: String { text }
}

let hexDigits: [Character] = Array("0123456789abcdef")

/// Lower-case hex of `bytes`.
public func lowerHex(_ bytes: some Sequence<UInt8>) -> String {
    var text = ""
    for byte in bytes {
        text.append(hexDigits[Int(byte >> 4)])
        text.append(hexDigits[Int(byte & 0x0F)])
    }
    return text
}

/// A machine's secret as issued: 32 lower-case hex digits.
public struct Token: Sendable, Hashable {
    public let text: String

    @inlinable
    public init?(_ text: some StringProtocol) {
        guard isWellFormed(text, lengths: 32...32, allowed: isLowerHex) else { return nil }
        self.text = String(text)
    }

    public init(randomBytes: [UInt8]) {
        precondition(randomBytes.count == 16, "a token takes 16 random bytes")
        self.text = lowerHex(randomBytes)
    }
}

/// The SHA-256 of a token, 64 lower-case hex digits: all the ledger keeps.
public struct TokenDigest: Sendable, Hashable, CustomStringConvertible {
    public let text: String

    /// A digest from text already known to be 64 lower-case hex digits.
    init(checkedText text: String) {
        self.text = text
    }

    @inlinable
    public init?(_ text: some StringProtocol) {
        guard isWellFormed(text, lengths: 64...64, allowed: isLowerHex) else { return nil }
        self.text = String(text)
    }

    public var description: String { text }
}

/// A transfer's id: 1-40 of `A-Z a-z 0-9 -`. Carteira derives it from the
/// journal sequence number (`T000000000042`), so it is unique for the life of
/// the journal.
public struct TxID: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let text: String

    @inlinable
    public init?(_ text: some StringProtocol) {
        let valid = isWellFormed(text, lengths: 1...40) { isAlphanumeric($0) || $0 == UInt8(ascii: "-") }
        guard valid else { return nil }
        self.text = String(text)
    }

    public init(seq: Int64) {
        // Every transfer's answer and event makes one: `T` and twelve
        // digits, written into one small string (13 bytes, no allocation).
        guard (0...999_999_999_999).contains(seq) else {
            let digits = String(seq)
            self.text = "T" + String(repeating: "0", count: max(0, 12 - digits.count)) + digits
            return
        }
        self.text = String(unsafeUninitializedCapacity: 13) { bytes in
            bytes[0] = UInt8(ascii: "T")
            _ = writeDecimal(UInt64(seq), width: 12, endingAt: 13, in: UnsafeMutableRawBufferPointer(bytes))
            return 13
        }
    }

    public static func < (lhs: TxID, rhs: TxID) -> Bool { lhs.text < rhs.text }
    public var description: String { text }
}

/// A client's id for an idempotent `SEND`: 1-64 of `A-Z a-z 0-9 _ -`, not `-`.
public struct RequestID: Sendable, Hashable, CustomStringConvertible {
    public let text: String

    @inlinable
    public init?(_ text: some StringProtocol) {
        let valid = isWellFormed(text, lengths: 1...64) {
            isAlphanumeric($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_")
        }
        guard valid, text != "-" else { return nil }
        self.text = String(text)
    }

    public var description: String { text }
}
