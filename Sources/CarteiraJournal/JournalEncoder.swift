import CChainHash
public import CarteiraCore

/// Writes journal lines as bytes, each into a buffer on the stack and then
/// appended to the batch at once: the journal thread's encoder. No `String`
/// is built per field, and no field grows an array.
public enum JournalEncoder {
    /// Room for any line format 1 writes. The longest, a transfer between
    /// two 64-byte names with a 64-byte request id, 19-digit numbers and a
    /// time past the year 9999, is under 500 bytes with its hash.
    static let lineCapacity = 1024

    /// Appends `event`'s whole line (with ` hash=…` and `"\n"`) to `bytes`
    /// and moves `chainHash` (64 hex bytes) on to this line's hash.
    public static func appendLine(_ event: Event, chainHash: inout [UInt8], to bytes: inout [UInt8]) {
        precondition(chainHash.count == JournalCodec.hashLength, "a chain hash is 64 hex digits")
        withUnsafeTemporaryAllocation(byteCount: lineCapacity, alignment: 8) { buffer in
            var line = LineWriter(buffer)
            line.text(of: event)
            let textEnd = line.end
            line.put(" hash=")
            let hash = line.reserve(JournalCodec.hashLength)
            line.put(UInt8(ascii: "\n"))
            chainHash.withUnsafeMutableBufferPointer { chain in
                let chain = chain.baseAddress.unsafelyUnwrapped
                carteira_chain_hash_hex(chain, line.start, textEnd, hash)
                UnsafeMutableRawPointer(chain).copyMemory(from: hash, byteCount: JournalCodec.hashLength)
            }
            bytes.append(contentsOf: line.written)
        }
    }

    /// The line's text up to, not including, ` hash=` (JOURNAL.md, Lines).
    public static func appendText(_ event: Event, to bytes: inout [UInt8]) {
        withUnsafeTemporaryAllocation(byteCount: lineCapacity, alignment: 8) { buffer in
            var line = LineWriter(buffer)
            line.text(of: event)
            bytes.append(contentsOf: line.written)
        }
    }

    /// `2026-11-26T19:22:09.123Z`, exactly as `Timestamp.iso8601` writes it.
    static func appendTime(_ time: Timestamp, to bytes: inout [UInt8]) {
        withUnsafeTemporaryAllocation(byteCount: 64, alignment: 8) { buffer in
            var line = LineWriter(buffer)
            line.time(time)
            bytes.append(contentsOf: line.written)
        }
    }

    /// Decimal digits of an integer, as a line holds them.
    static func appendInteger(_ value: Int64, to bytes: inout [UInt8]) {
        withUnsafeTemporaryAllocation(byteCount: 24, alignment: 8) { buffer in
            var line = LineWriter(buffer)
            line.integer(value)
            bytes.append(contentsOf: line.written)
        }
    }
}

/// A line being written into a fixed buffer, a field at a time, with one
/// bounds check a field.
private struct LineWriter {
    private let buffer: UnsafeMutableRawBufferPointer
    private(set) var end = 0

    init(_ buffer: UnsafeMutableRawBufferPointer) {
        self.buffer = buffer
    }

    var start: UnsafeMutablePointer<UInt8> { buffer.baseAddress.unsafelyUnwrapped.assumingMemoryBound(to: UInt8.self) }
    var written: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: buffer[..<end]) }

    /// Moves the end on by `count` bytes, which the caller then fills, and
    /// returns where they start.
    mutating func reserve(_ count: Int) -> UnsafeMutablePointer<UInt8> {
        precondition(end + count <= buffer.count, "a journal line outgrew its buffer")
        defer { end += count }
        return start + end
    }

    mutating func put(_ byte: UInt8) {
        reserve(1).pointee = byte
    }

    mutating func put(_ text: StaticString) {
        let count = text.utf8CodeUnitCount
        reserve(count).update(from: text.utf8Start, count: count)
    }

    mutating func put(_ text: String) {
        var text = text
        text.withUTF8 { utf8 in
            guard let base = utf8.baseAddress else { return }
            reserve(utf8.count).update(from: base, count: utf8.count)
        }
    }

    /// ` name=`, or `name=` for the line's first field.
    mutating func field(_ name: StaticString, first: Bool = false) {
        if !first { put(UInt8(ascii: " ")) }
        put(name)
    }

    mutating func machine(_ machine: MachineName) {
        precondition(end + MachineName.maximumLength <= buffer.count, "a journal line outgrew its buffer")
        end += machine.writeUTF8(to: UnsafeMutableRawPointer(start + end))
    }

    mutating func key(_ key: PaymentKey) {
        key.bits.writeText(to: UnsafeMutableRawPointer(reserve(KeyBits.textLength)))
    }

    /// Decimal digits of a non-negative integer, a minus sign before a
    /// negative one's.
    mutating func integer(_ value: Int64) {
        if value < 0 { put(UInt8(ascii: "-")) }
        // Int64.min's magnitude has 19 digits: 24 bytes hold any of them.
        withUnsafeTemporaryAllocation(byteCount: 24, alignment: 1) { digits in
            let first = writeDecimal(value.magnitude, endingAt: digits.count, in: digits)
            let count = digits.count - first
            UnsafeMutableRawPointer(reserve(count)).copyMemory(
                from: digits.baseAddress.unsafelyUnwrapped + first, byteCount: count)
        }
    }

    /// `2026-11-26T19:22:09.123Z`, exactly as `Timestamp.iso8601` writes it:
    /// 24 bytes for the years 0-9999.
    mutating func time(_ time: Timestamp) {
        let parts = time.civil
        // Other years (24 bytes cannot hold them, so a reader refuses the
        // line) as `iso8601` writes them.
        guard (0...9999).contains(parts.year) else { return put(time.iso8601) }
        let text = UnsafeMutableRawBufferPointer(start: reserve(24), count: 24)
        // Each field's digits, zero-padded to `width`, then the byte after it.
        var at = 0
        func field(_ value: Int64, _ width: Int, then separator: Unicode.Scalar) {
            _ = writeDecimal(UInt64(value), width: width, endingAt: at + width, in: text)
            text[at + width] = UInt8(ascii: separator)
            at += width + 1
        }
        field(parts.year, 4, then: "-")
        field(parts.month, 2, then: "-")
        field(parts.day, 2, then: "T")
        field(parts.hour, 2, then: ":")
        field(parts.minute, 2, then: ":")
        field(parts.second, 2, then: ".")
        field(parts.millisecond, 3, then: "Z")
    }

    /// The line's text up to, not including, ` hash=` (JOURNAL.md, Lines).
    mutating func text(of event: Event) {
        field("seq=", first: true)
        integer(event.seq)
        field("at=")
        time(event.at)
        field("type=")
        switch event.kind {
        case .genesis:
            put("genesis")
            field("format=")
            put(JournalCodec.formatVersion)
        case let .registered(r):
            put("registered")
            field("machine=")
            machine(r.machine)
            field("key=")
            key(r.key)
            field("expires=")
            time(r.expires)
            field("token=")
            put(r.tokenDigest.text)
            field("balance=")
            integer(r.balance.value)
        case let .transfer(t):
            put("transfer")
            field("tx=")
            put(t.tx.text)
            field("from=")
            machine(t.from)
            field("to=")
            machine(t.to)
            field("key=")
            key(t.key)
            field("amount=")
            integer(t.amount.value)
            field("req=")
            if let requestID = t.requestID { put(requestID.text) } else { put(UInt8(ascii: "-")) }
        case let .keyRotated(k):
            put("key_rotated")
            field("machine=")
            machine(k.machine)
            field("key=")
            key(k.key)
            field("expires=")
            time(k.expires)
            field("reason=")
            put(k.reason.rawValue)
        }
    }
}
