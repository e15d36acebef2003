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

/// Calls `body` with `text`'s UTF-8 bytes: in place when they are
/// contiguous, as native strings and their substrings are; copied out
/// otherwise.
func withUTF8Bytes<R>(of text: some StringProtocol, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
    text.utf8.withContiguousStorageIfAvailable(body) ?? Array(text.utf8).withUnsafeBufferPointer(body)
}

/// A peer's name: 1-64 of `A-Z a-z 0-9 . _ -`.
///
/// Its bytes are held inline, not in a `String`: an event names two
/// machines, and the server makes one event a transfer on the event loop
/// and drops it on the journal thread. With strings, each copy retained a
/// heap object that the other thread then released, moving its cache line
/// between the cores. Without them the server spends 4-13 % less CPU a
/// transfer (docs/benchmarks.md, 2026-12-07).
public struct MachineName: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The bytes, little-endian in eight words, zero past `count`.
    private var words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    private var count: UInt8 = 0

    public init?(_ text: some StringProtocol) {
        guard let name = withUTF8Bytes(of: text, MachineName.init(utf8:)) else { return nil }
        self = name
    }

    /// A name from bytes, checked as `init?(_:)` checks text.
    package init?(utf8 bytes: UnsafeBufferPointer<UInt8>) {
        guard (1...Self.maximumLength).contains(bytes.count), bytes.allSatisfy(Self.allowed) else { return nil }
        var name = MachineName()
        withUnsafeMutableBytes(of: &name.words) { stored in
            stored.copyMemory(from: UnsafeRawBufferPointer(bytes))
        }
        name.count = UInt8(bytes.count)
        self = name
    }

    private init() {}

    /// The most bytes a name has.
    package static let maximumLength = 64

    private static func allowed(_ byte: UInt8) -> Bool {
        isAlphanumeric(byte) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
    }

    /// Calls `body` with the name's bytes, valid during the call only.
    public func withUTF8<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try withUnsafeBytes(of: words) { stored in
            try body(UnsafeBufferPointer(rebasing: stored.bindMemory(to: UInt8.self)[..<Int(count)]))
        }
    }

    /// Stores the name's bytes at `destination` and returns how many: the
    /// journal encoder's path, with no closure to specialize across modules.
    package func writeUTF8(to destination: UnsafeMutableRawPointer) -> Int {
        withUnsafeBytes(of: words) { stored in
            destination.copyMemory(from: stored.baseAddress.unsafelyUnwrapped, byteCount: Int(count))
        }
        return Int(count)
    }

    /// The name as a `String` (made on each call).
    public var text: String { withUTF8 { String(decoding: $0, as: UTF8.self) } }

    public static func == (lhs: MachineName, rhs: MachineName) -> Bool {
        let (l, r) = (lhs.words, rhs.words)
        return lhs.count == rhs.count && l.0 == r.0 && l.1 == r.1 && l.2 == r.2 && l.3 == r.3 && l.4 == r.4
            && l.5 == r.5 && l.6 == r.6 && l.7 == r.7
    }

    public func hash(into hasher: inout Hasher) {
        withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// In byte order, which for these ASCII names is `String`'s order.
    public static func < (lhs: MachineName, rhs: MachineName) -> Bool {
        lhs.withUTF8 { left in rhs.withUTF8 { right in left.lexicographicallyPrecedes(right) } }
    }

    public var description: String { text }
}

/// A payment key: a lower-case UUID version 4, `8-4-4-4-12` hex digits.
///
/// Held as its 128 bits, not as text, for the same reason as
/// `MachineName`: an event carries one, across threads.
public struct PaymentKey: Sendable, Hashable, CustomStringConvertible {
    package let bits: KeyBits

    /// Accepts the UUID form only. Upper-case hex digits are folded to lower
    /// case, so a key pasted from a tool that upper-cases UUIDs still works.
    /// Read as `KeyBits` reads a key, eight digits at a time.
    public init?(_ text: some StringProtocol) {
        guard let bits = withUTF8Bytes(of: text, { KeyBits($0, foldingCase: true) }) else { return nil }
        self.bits = bits
    }

    package init(bits: KeyBits) {
        self.bits = bits
    }

    /// Builds a version 4 key from 16 random bytes (the caller supplies the
    /// randomness: the core draws none itself).
    public init(randomBytes: [UInt8]) {
        precondition(randomBytes.count == 16, "a payment key takes 16 random bytes")
        var bytes = randomBytes
        bytes[6] = (bytes[6] & 0x0F) | 0x40
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        let word = { (start: Int) in bytes[start..<start + 8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) } }
        self.bits = KeyBits(high: word(0), low: word(8))
    }

    /// The key as text, lower case (made on each call).
    public var text: String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(36)
        bits.appendText(to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    public var description: String { text }
}

/// A payment key as a client wrote it in `CHECK` or `SEND`: the key, when
/// the text is one (in either letter case), or else the text itself, which
/// the ledger answers as an unknown key in the protocol's order.
///
/// The server parses the key where it cuts the request line, so a `SEND`
/// builds no `String` for it (its 36 bytes are too many for a small
/// string: a heap allocation a transfer) and the ledger parses nothing.
public struct KeyText: Sendable, Hashable, CustomStringConvertible, ExpressibleByStringLiteral {
    private enum Form: Sendable, Hashable {
        case key(KeyBits)
        case other(String)
    }

    private let form: Form

    public init(_ text: some StringProtocol) {
        if let bits = withUTF8Bytes(of: text, { KeyBits($0, foldingCase: true) }) {
            form = .key(bits)
        } else {
            form = .other(String(text))
        }
    }

    public init(_ key: PaymentKey) {
        form = .key(key.bits)
    }

    /// The text from its bytes, a `String` only when it is not a key.
    package init(utf8 bytes: UnsafeBufferPointer<UInt8>) {
        if let bits = KeyBits(bytes, foldingCase: true) {
            form = .key(bits)
        } else {
            form = .other(String(decoding: bytes, as: UTF8.self))
        }
    }

    public init(stringLiteral text: String) {
        self.init(text)
    }

    /// The key it names, when the text is of a key's form.
    public var key: PaymentKey? { bits.map(PaymentKey.init(bits:)) }

    package var bits: KeyBits? {
        guard case let .key(bits) = form else { return nil }
        return bits
    }

    /// The text as written, but a key's in lower case.
    public var text: String {
        switch form {
        case let .key(bits): PaymentKey(bits: bits).text
        case let .other(text): text
        }
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
