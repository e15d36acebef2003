import CChainHash
public import CarteiraCore

/// Journal format version 1 (JOURNAL.md): one event a line in logfmt, fields
/// in a fixed order, each line ending in ` hash=<64 hex>` that chains it to
/// the line before.
///
/// Decoding is strict (exact field names in order, canonical integers,
/// lower-case hex) and works on UTF-8 bytes, because replay runs it on every
/// line of the journal at start-up.
public enum JournalCodec {
    /// The `hash` the genesis line chains to.
    public static let zeroHash = String(repeating: "0", count: 64)
    /// The `format=` value of the genesis line.
    public static let formatVersion = "carteira-journal/1"

    /// The line for `event` (ending in `"\n"`) and its `hash` value.
    public static func encode(_ event: Event, previousHash: String) -> (line: String, hash: String) {
        var chain = Array(previousHash.utf8)
        precondition(chain.count == hashLength, "a previous hash is 64 hex digits")
        var line: [UInt8] = []
        JournalEncoder.appendLine(event, chainHash: &chain, to: &line)
        return (String(decoding: line, as: UTF8.self), String(decoding: chain, as: UTF8.self))
    }

    /// Decodes one line (a single trailing `"\n"` is allowed) and checks that
    /// it chains to `previousHash`. Does not check `seq` against the line
    /// before or any ledger rule: that is the replay's job.
    public static func decode(_ line: Substring, previousHash: String) throws(JournalFormatError) -> (
        event: Event, hash: String
    ) {
        var bytes = Array(line.utf8)
        if bytes.last == newline { bytes.removeLast() }
        let previous = Array(previousHash.utf8)
        guard previous.count == hashLength, previous.allSatisfy(isLowerHexDigit) else {
            throw JournalFormatError("previous hash is not 64 lower-case hex digits")
        }
        let event = try bytes.withUnsafeBufferPointer { (line) throws(JournalFormatError) -> Event in
            try previous.withUnsafeBufferPointer { (previous) throws(JournalFormatError) -> Event in
                try JournalCodec.event(decodeLine(line, previousHash: previous))
            }
        }
        return (event, String(decoding: bytes.suffix(hashLength), as: UTF8.self))
    }

    // MARK: Encoding

    /// The lower-case hex SHA-256 of `previousHash + " " + text`, as 64 bytes.
    static func chainHash(previousHash: [UInt8], text: inout String) -> [UInt8] {
        precondition(previousHash.count == hashLength, "a previous hash is 64 hex digits")
        var hex = [UInt8](repeating: 0, count: hashLength)
        previousHash.withUnsafeBufferPointer { previous in
            text.withUTF8 { text in
                hex.withUnsafeMutableBufferPointer { hex in
                    guard let previous = previous.baseAddress, let out = hex.baseAddress else { return }
                    carteira_chain_hash_hex(previous, text.baseAddress ?? previous, text.count, out)
                }
            }
        }
        return hex
    }

    // MARK: Decoding

    static let hashLength = 64
    /// ` hash=` and the 64 hex digits that end every line.
    static let hashSuffixLength = 6 + hashLength

    /// Decodes `line` (without its `"\n"`) and checks its hash against
    /// `previousHash` (64 hex bytes). The line's own hash is its last 64
    /// bytes. The event's names and ids point into `line`.
    static func decodeLine(
        _ line: UnsafeBufferPointer<UInt8>, previousHash: UnsafeBufferPointer<UInt8>
    ) throws(JournalFormatError) -> EventBytes {
        if let failure = checkChain(line, previousHash: previousHash) { throw JournalFormatError(failure.reason) }
        return try decodeFields(UnsafeBufferPointer(rebasing: line[0..<(line.count - hashSuffixLength)]))
    }

    /// Why a line fails the first two checks of replay, in their order: the
    /// ` hash=<64 hex>` suffix, then the hash chain.
    enum ChainFailure: Sendable, Hashable {
        case suffix
        case hash

        var reason: String {
            switch self {
            case .suffix: "the line does not end with hash=<64 hex>"
            case .hash: "hash does not match: the line or one before it was changed"
            }
        }
    }

    /// Checks the suffix form and the hash of `line` (without its `"\n"`)
    /// against `previousHash`. Depends on nothing but the two, so lines can
    /// be checked on any thread, ahead of decoding.
    static func checkChain(_ line: UnsafeBufferPointer<UInt8>, previousHash: UnsafeBufferPointer<UInt8>)
        -> ChainFailure?
    {
        precondition(previousHash.count == hashLength, "a previous hash is 64 hex digits")
        let textCount = line.count - hashSuffixLength
        guard textCount > 0, matches(line, at: textCount, " hash="), let base = line.baseAddress,
            let previous = previousHash.baseAddress
        else { return .suffix }
        // A stored hash equal to the computed one is 64 lower-case hex
        // digits, so the suffix's digits need a look of their own only when
        // it differs, to name the first failing check.
        if carteira_chain_hash_matches(previous, base, textCount, base + (line.count - hashLength)) != 0 {
            return nil
        }
        for index in (textCount + 6)..<line.count where !isLowerHexDigit(line[index]) {
            return .suffix
        }
        return .hash
    }

    /// Decodes the fields byte by byte: numbers and times are decoded, names
    /// and ids are checked and left as slices of `text`.
    static func decodeFields(_ text: UnsafeBufferPointer<UInt8>) throws(JournalFormatError) -> EventBytes {
        var fields = FieldCursor(bytes: text)
        let seq = try fields.integer("seq")
        let at = try fields.timestamp("at")
        let type = try fields.next("type")
        let kind: EventBytes.Kind
        if equals(type, "transfer") {
            let tx = try fields.value(
                "tx", maximum: 40, each: { isAlphanumeric($0) || $0 == hyphen }, otherwise: "tx is not a transfer id")
            let from = try fields.machine("from")
            let to = try fields.machine("to")
            let key = try fields.key("key")
            let amount = try fields.integer("amount")
            let req = try fields.value(
                "req", maximum: 64, each: { isAlphanumeric($0) || $0 == hyphen || $0 == underscore },
                otherwise: "req is not a request id")
            let requestID = equals(req, "-") ? nil : req
            kind = .transfer(tx: tx, from: from, to: to, key: key, amount: amount, requestID: requestID)
        } else if equals(type, "registered") {
            let machine = try fields.machine("machine")
            let key = try fields.key("key")
            let expires = try fields.timestamp("expires")
            var token = DigestBits(words: (0, 0, 0, 0))
            _ = try fields.value(
                "token",
                valid: { text in
                    guard let parsed = DigestBits(text) else { return false }
                    token = parsed
                    return true
                }, otherwise: "token is not 64 lower-case hex digits")
            let balance = try fields.integer("balance")
            kind = .registered(machine: machine, key: key, expires: expires, tokenDigest: token, balance: balance)
        } else if equals(type, "key_rotated") {
            let machine = try fields.machine("machine")
            let key = try fields.key("key")
            let expires = try fields.timestamp("expires")
            let reasonText = try fields.word("reason")
            guard let reason = KeyRotationReason.allCases.first(where: { equals(reasonText, text: $0.rawValue) }) else {
                throw JournalFormatError("reason is not expired, request or admin")
            }
            kind = .keyRotated(machine: machine, key: key, expires: expires, reason: reason)
        } else if equals(type, "genesis") {
            let format = try fields.word("format")
            guard equals(format, text: formatVersion) else {
                throw JournalFormatError("unsupported format \(string(format))")
            }
            kind = .genesis
        } else {
            try fields.checkCharacters(type, "type")
            throw JournalFormatError("unknown type \(string(type))")
        }
        try fields.finish()
        return EventBytes(seq: seq, at: at, kind: kind)
    }

    /// The `Event` a decoded line holds, for callers outside replay.
    static func event(_ bytes: EventBytes) throws(JournalFormatError) -> Event {
        func value<T>(_ made: T?, _ what: String) throws(JournalFormatError) -> T {
            guard let made else { throw JournalFormatError("\(what) does not decode") }
            return made
        }
        let kind: Event.Kind
        switch bytes.kind {
        case .genesis:
            kind = .genesis
        case let .registered(machine, key, expires, tokenDigest, balance):
            kind = .registered(
                Event.Registration(
                    machine: try value(MachineName(string(machine)), "machine"), key: key.paymentKey,
                    expires: Timestamp(milliseconds: expires), tokenDigest: tokenDigest.tokenDigest,
                    balance: Centavos(balance)))
        case let .transfer(tx, from, to, key, amount, requestID):
            var request: RequestID?
            if let requestID { request = try value(RequestID(string(requestID)), "req") }
            kind = .transfer(
                Event.Transfer(
                    tx: try value(TxID(string(tx)), "tx"), from: try value(MachineName(string(from)), "from"),
                    to: try value(MachineName(string(to)), "to"), key: key.paymentKey, amount: Centavos(amount),
                    requestID: request))
        case let .keyRotated(machine, key, expires, reason):
            kind = .keyRotated(
                Event.KeyRotation(
                    machine: try value(MachineName(string(machine)), "machine"), key: key.paymentKey,
                    expires: Timestamp(milliseconds: expires), reason: reason))
        }
        return Event(seq: bytes.seq, at: Timestamp(milliseconds: bytes.at), kind: kind)
    }
}

/// Walks `name=value` fields separated by single spaces, in a fixed order.
private struct FieldCursor {
    let bytes: UnsafeBufferPointer<UInt8>
    var position = 0

    /// The value of the next field, which must be called `name`. Its
    /// characters are not checked here: every typed reader below accepts
    /// only characters a value may hold, and on a failure calls
    /// `checkCharacters` first, so the reason is the same as if they had
    /// been checked here (one pass over the bytes instead of two).
    mutating func next(_ name: StaticString) throws(JournalFormatError) -> UnsafeBufferPointer<UInt8> {
        if position > 0 {
            guard position < bytes.count, bytes[position] == space else {
                throw JournalFormatError("missing field \(name)")
            }
            position += 1
        }
        let nameLength = name.utf8CodeUnitCount
        guard bytes.count - position > nameLength, matches(bytes, at: position, name),
            bytes[position + nameLength] == equalsSign
        else { throw JournalFormatError("expected field \(name)= here") }
        let start = position + nameLength + 1
        var end = start
        while end < bytes.count, bytes[end] != space { end += 1 }
        guard end > start else { throw JournalFormatError("\(name) is empty") }
        position = end
        return UnsafeBufferPointer(rebasing: bytes[start..<end])
    }

    /// Where the next field's value starts, when the field is called `name`
    /// (past the space before it, its name and `=`); nil otherwise.
    private func valueStart(_ name: StaticString) -> Int? {
        var start = position
        if position > 0 {
            guard position < bytes.count, bytes[position] == space else { return nil }
            start += 1
        }
        let nameLength = name.utf8CodeUnitCount
        guard matches(bytes, at: start, name), start + nameLength < bytes.count, bytes[start + nameLength] == equalsSign
        else { return nil }
        return start + nameLength + 1
    }

    /// The next field's value parsed, when the field is called `name`, its
    /// value is exactly `width` bytes and `parse` accepts them; nil
    /// otherwise, and the cursor has not moved. The fixed-width fields
    /// (times, keys) are read this way without looking for the space after
    /// them byte by byte; `parse` accepts no space, so what it accepts is
    /// the value `next` would have found. On nil the caller reads the field
    /// with `next`, which fails with the same reason as ever.
    mutating func fixed<T>(
        _ name: StaticString, width: Int, _ parse: (UnsafeBufferPointer<UInt8>) -> T?
    ) -> T? {
        guard let valueStart = valueStart(name) else { return nil }
        let valueEnd = valueStart + width
        guard valueEnd <= bytes.count, valueEnd == bytes.count || bytes[valueEnd] == space,
            let parsed = parse(UnsafeBufferPointer(rebasing: bytes[valueStart..<valueEnd]))
        else { return nil }
        position = valueEnd
        return parsed
    }

    /// The next field's value, when the field is called `name` and its value
    /// is 1 to `maximum` bytes that `each` accepts, ending at a space or the
    /// end; nil otherwise, and the cursor has not moved. One pass both finds
    /// the value's end and checks its bytes; `each` accepts no space, so the
    /// value is the one `next` would find. On nil the caller reads the field
    /// with `next`, which fails with the same reason as ever.
    mutating func scanned(_ name: StaticString, maximum: Int, _ each: (UInt8) -> Bool) -> UnsafeBufferPointer<UInt8>? {
        guard let valueStart = valueStart(name) else { return nil }
        var end = valueStart
        while end < bytes.count, each(bytes[end]) { end += 1 }
        guard end > valueStart, end - valueStart <= maximum, end == bytes.count || bytes[end] == space else {
            return nil
        }
        position = end
        return UnsafeBufferPointer(rebasing: bytes[valueStart..<end])
    }

    /// A value of 1 to `maximum` bytes, each accepted by `each`.
    mutating func value(
        _ name: StaticString, maximum: Int, each: (UInt8) -> Bool, otherwise reason: @autoclosure () -> String
    ) throws(JournalFormatError) -> UnsafeBufferPointer<UInt8> {
        if let value = scanned(name, maximum: maximum, each) { return value }
        return try value(name, valid: { $0.count <= maximum && $0.allSatisfy(each) }, otherwise: reason())
    }

    /// Throws if `value` holds a character no value may hold.
    func checkCharacters(_ value: UnsafeBufferPointer<UInt8>, _ name: StaticString) throws(JournalFormatError) {
        for byte in value {
            guard byte > space, byte < 0x7F, byte != equalsSign, byte != bar, byte != quote else {
                throw JournalFormatError("\(name) holds a character a value may not hold")
            }
        }
    }

    /// A value that must be one of a few words (`type`, `format`, `reason`).
    mutating func word(_ name: StaticString) throws(JournalFormatError) -> UnsafeBufferPointer<UInt8> {
        let value = try next(name)
        try checkCharacters(value, name)
        return value
    }

    /// A value checked by `valid`, which accepts a subset of the characters
    /// a value may hold.
    mutating func value(
        _ name: StaticString, valid: (UnsafeBufferPointer<UInt8>) -> Bool, otherwise reason: @autoclosure () -> String
    ) throws(JournalFormatError) -> UnsafeBufferPointer<UInt8> {
        let value = try next(name)
        guard valid(value) else {
            try checkCharacters(value, name)
            throw JournalFormatError(reason())
        }
        return value
    }

    mutating func finish() throws(JournalFormatError) {
        guard position == bytes.count else { throw JournalFormatError("unexpected text after the last field") }
    }

    mutating func timestamp(_ name: StaticString) throws(JournalFormatError) -> Int64 {
        if let milliseconds = fixed(name, width: 24, { Timestamp(iso8601Bytes: $0)?.milliseconds }) {
            return milliseconds
        }
        var milliseconds: Int64 = 0
        _ = try value(
            name,
            valid: { text in
                guard let time = Timestamp(iso8601Bytes: text) else { return false }
                milliseconds = time.milliseconds
                return true
            }, otherwise: "\(name) is not a UTC time with milliseconds")
        return milliseconds
    }

    /// 1-64 of `A-Z a-z 0-9 . _ -`, as `MachineName` accepts.
    mutating func machine(_ name: StaticString) throws(JournalFormatError) -> UnsafeBufferPointer<UInt8> {
        try value(
            name, maximum: 64,
            each: { isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == underscore || $0 == hyphen },
            otherwise: "\(name) is not a machine name")
    }

    mutating func key(_ name: StaticString) throws(JournalFormatError) -> KeyBits {
        // The journal only ever holds lower case.
        if let bits = fixed(name, width: 36, { KeyBits($0, foldingCase: false) }) { return bits }
        var bits = KeyBits(high: 0, low: 0)
        _ = try value(
            name,
            valid: { text in
                guard let parsed = KeyBits(text, foldingCase: false) else { return false }
                bits = parsed
                return true
            }, otherwise: "\(name) is not a lower-case UUID v4")
        return bits
    }

    mutating func integer(_ name: StaticString) throws(JournalFormatError) -> Int64 {
        let before = position
        if let digits = scanned(name, maximum: 19, { $0 &- UInt8(ascii: "0") < 10 }) {
            if let number = canonicalInteger(digits) { return number }
            position = before
        }
        var number: Int64 = 0
        _ = try value(
            name,
            valid: { text in
                guard let parsed = canonicalInteger(text) else { return false }
                number = parsed
                return true
            }, otherwise: "\(name) is not a canonical non-negative integer")
        return number
    }
}

private let space = UInt8(ascii: " ")
private let equalsSign = UInt8(ascii: "=")
private let bar = UInt8(ascii: "|")
private let quote = UInt8(ascii: "\"")
private let hyphen = UInt8(ascii: "-")
private let underscore = UInt8(ascii: "_")
let newline = UInt8(ascii: "\n")

@inline(__always)
private func isAlphanumeric(_ byte: UInt8) -> Bool {
    (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
        || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
}

func isLowerHexDigit(_ byte: UInt8) -> Bool {
    (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
}

private func string(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
    String(decoding: bytes, as: UTF8.self)
}

private func matches(_ bytes: UnsafeBufferPointer<UInt8>, at offset: Int, _ literal: StaticString) -> Bool {
    let count = literal.utf8CodeUnitCount
    guard offset >= 0, bytes.count - offset >= count else { return false }
    for index in 0..<count where bytes[offset + index] != literal.utf8Start[index] {
        return false
    }
    return true
}

private func equals(_ bytes: UnsafeBufferPointer<UInt8>, _ literal: StaticString) -> Bool {
    bytes.count == literal.utf8CodeUnitCount && matches(bytes, at: 0, literal)
}

private func equals(_ bytes: UnsafeBufferPointer<UInt8>, text: String) -> Bool {
    bytes.elementsEqual(text.utf8)
}

/// Digits only, no sign, no leading zero (except `0` itself), fits `Int64`.
private func canonicalInteger(_ bytes: UnsafeBufferPointer<UInt8>) -> Int64? {
    guard !bytes.isEmpty, bytes.count <= 19, bytes[0] != UInt8(ascii: "0") || bytes.count == 1 else { return nil }
    return decimalValue(bytes)
}
