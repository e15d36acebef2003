import CChainHash
public import CarteiraCore

/// Writes journal lines as bytes, straight into the batch buffer: the
/// journal thread's encoder. No `String` is built per field.
public enum JournalEncoder {
    /// Appends `event`'s whole line (with ` hash=…` and `"\n"`) to `bytes`
    /// and moves `chainHash` (64 hex bytes) on to this line's hash.
    public static func appendLine(_ event: Event, chainHash: inout [UInt8], to bytes: inout [UInt8]) {
        precondition(chainHash.count == JournalCodec.hashLength, "a chain hash is 64 hex digits")
        let start = bytes.count
        appendText(event, to: &bytes)
        let textEnd = bytes.count
        bytes.append(contentsOf: " hash=".utf8)
        let hashStart = bytes.count
        bytes.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: JournalCodec.hashLength))
        bytes.append(UInt8(ascii: "\n"))
        bytes.withUnsafeMutableBufferPointer { all in
            chainHash.withUnsafeBufferPointer { previous in
                guard let base = all.baseAddress, let previous = previous.baseAddress else { return }
                carteira_chain_hash_hex(previous, base + start, textEnd - start, base + hashStart)
            }
        }
        for index in 0..<JournalCodec.hashLength { chainHash[index] = bytes[hashStart + index] }
    }

    /// The line's text up to, not including, ` hash=` (JOURNAL.md, Lines).
    public static func appendText(_ event: Event, to bytes: inout [UInt8]) {
        field("seq=", to: &bytes, first: true)
        appendInteger(event.seq, to: &bytes)
        field("at=", to: &bytes)
        appendTime(event.at, to: &bytes)
        field("type=", to: &bytes)
        switch event.kind {
        case .genesis:
            bytes.append(contentsOf: "genesis".utf8)
            field("format=", to: &bytes)
            bytes.append(contentsOf: JournalCodec.formatVersion.utf8)
        case let .registered(r):
            bytes.append(contentsOf: "registered".utf8)
            field("machine=", r.machine, to: &bytes)
            field("key=", r.key, to: &bytes)
            field("expires=", to: &bytes)
            appendTime(r.expires, to: &bytes)
            field("token=", r.tokenDigest.text, to: &bytes)
            field("balance=", to: &bytes)
            appendInteger(r.balance.value, to: &bytes)
        case let .transfer(t):
            bytes.append(contentsOf: "transfer".utf8)
            field("tx=", t.tx.text, to: &bytes)
            field("from=", t.from, to: &bytes)
            field("to=", t.to, to: &bytes)
            field("key=", t.key, to: &bytes)
            field("amount=", to: &bytes)
            appendInteger(t.amount.value, to: &bytes)
            field("req=", t.requestID?.text ?? "-", to: &bytes)
        case let .keyRotated(k):
            bytes.append(contentsOf: "key_rotated".utf8)
            field("machine=", k.machine, to: &bytes)
            field("key=", k.key, to: &bytes)
            field("expires=", to: &bytes)
            appendTime(k.expires, to: &bytes)
            field("reason=", k.reason.rawValue, to: &bytes)
        }
    }

    private static func field(_ name: StaticString, to bytes: inout [UInt8], first: Bool = false) {
        if !first { bytes.append(UInt8(ascii: " ")) }
        bytes.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
    }

    private static func field(_ name: StaticString, _ machine: MachineName, to bytes: inout [UInt8]) {
        field(name, to: &bytes)
        machine.appendUTF8(to: &bytes)
    }

    private static func field(_ name: StaticString, _ key: PaymentKey, to bytes: inout [UInt8]) {
        field(name, to: &bytes)
        key.bits.appendText(to: &bytes)
    }

    private static func field(_ name: StaticString, _ value: String, to bytes: inout [UInt8]) {
        field(name, to: &bytes)
        var value = value
        value.withUTF8 { bytes.append(contentsOf: $0) }
    }

    /// Decimal digits of a non-negative integer (a minus sign otherwise),
    /// written from the end of a buffer on the stack and appended at once.
    static func appendInteger(_ value: Int64, to bytes: inout [UInt8]) {
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        // Int64.min's magnitude has 19 digits: 24 bytes hold any of them.
        withUnsafeTemporaryAllocation(byteCount: 24, alignment: 1) { buffer in
            let start = writeDecimal(value.magnitude, endingAt: buffer.count, in: buffer)
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[start...]))
        }
    }

    /// `2026-11-26T19:22:09.123Z`, exactly as `Timestamp.iso8601` writes it:
    /// one append of its 24 bytes for the years 0-9999.
    static func appendTime(_ time: Timestamp, to bytes: inout [UInt8]) {
        let parts = time.civil
        // Other years (24 bytes cannot hold them, so a reader refuses the
        // line) as `iso8601` writes them.
        guard (0...9999).contains(parts.year) else { return bytes.append(contentsOf: time.iso8601.utf8) }
        withUnsafeTemporaryAllocation(byteCount: 24, alignment: 1) { text in
            // Each field's digits, zero-padded to `width`, then the byte after it.
            var end = 0
            func field(_ value: Int64, _ width: Int, then separator: Unicode.Scalar) {
                _ = writeDecimal(UInt64(value), width: width, endingAt: end + width, in: text)
                text[end + width] = UInt8(ascii: separator)
                end += width + 1
            }
            field(parts.year, 4, then: "-")
            field(parts.month, 2, then: "-")
            field(parts.day, 2, then: "T")
            field(parts.hour, 2, then: ":")
            field(parts.minute, 2, then: ":")
            field(parts.second, 2, then: ".")
            field(parts.millisecond, 3, then: "Z")
            bytes.append(contentsOf: UnsafeRawBufferPointer(text))
        }
    }
}
