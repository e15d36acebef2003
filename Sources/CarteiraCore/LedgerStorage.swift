/// The compact pieces the ledger keeps its state in: fixed-size records
/// indexed by dense `UInt32` ids, names and request ids in byte arenas, so a
/// transfer costs tens of bytes and replay makes no `String` per field.

/// The 128 bits of a payment key's UUID.
package struct KeyBits: Sendable, Hashable {
    package var high: UInt64
    package var low: UInt64

    package init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Parses the `8-4-4-4-12` UUID v4 form `PaymentKey` accepts. With
    /// `foldingCase`, upper-case hex digits count as lower case (a key a
    /// client pasted); without, only lower case is accepted (the journal).
    package init?(_ bytes: UnsafeBufferPointer<UInt8>, foldingCase: Bool) {
        guard bytes.count == 36, bytes[8] == hyphen, bytes[13] == hyphen, bytes[18] == hyphen, bytes[23] == hyphen,
            bytes[14] == UInt8(ascii: "4")
        else { return nil }
        let variant = bytes[19] | (foldingCase ? 0x20 : 0)
        guard
            variant == UInt8(ascii: "8") || variant == UInt8(ascii: "9") || variant == UInt8(ascii: "a")
                || variant == UInt8(ascii: "b"), let base = bytes.baseAddress
        else { return nil }
        // Eight hex digits at a time: the groups 8-4-4-4-12 as 8, 4+4, 4+4, 8.
        let raw = UnsafeRawPointer(base)
        func eight(_ offset: Int) -> UInt64 {
            UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        }
        func four(_ offset: Int) -> UInt64 {
            UInt64(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
        }
        guard let first = hexDigits(eight(0), foldingCase: foldingCase),
            let second = hexDigits(four(9) | four(14) << 32, foldingCase: foldingCase),
            let third = hexDigits(four(19) | four(24) << 32, foldingCase: foldingCase),
            let fourth = hexDigits(eight(28), foldingCase: foldingCase)
        else { return nil }
        self.high = first << 32 | second
        self.low = third << 32 | fourth
    }

    package init(_ key: PaymentKey) {
        self = key.bits
    }

    package var paymentKey: PaymentKey { PaymentKey(bits: self) }

    /// Appends the key's 36 bytes of text as `PaymentKey` writes it, lower
    /// case.
    package func appendText(to bytes: inout [UInt8]) {
        withUnsafeTemporaryAllocation(byteCount: Self.textLength, alignment: 8) { text in
            writeText(to: text.baseAddress.unsafelyUnwrapped)
            bytes.append(contentsOf: UnsafeRawBufferPointer(text))
        }
    }

    /// The length of a key's text.
    package static let textLength = 36

    /// Stores the key's 36 bytes of text at `text`: the journal encoder's
    /// path, eight digits at a time.
    package func writeText(to text: UnsafeMutableRawPointer) {
        let (first, second) = (Self.hexText(high >> 32), Self.hexText(high & 0xFFFF_FFFF))
        let (third, fourth) = (Self.hexText(low >> 32), Self.hexText(low & 0xFFFF_FFFF))
        // 8-4-4-4-12: each word's first digit is its lowest byte.
        text.storeBytes(of: first, toByteOffset: 0, as: UInt64.self)
        text.storeBytes(of: UInt32(truncatingIfNeeded: second), toByteOffset: 9, as: UInt32.self)
        text.storeBytes(of: UInt32(truncatingIfNeeded: second >> 32), toByteOffset: 14, as: UInt32.self)
        text.storeBytes(of: UInt32(truncatingIfNeeded: third), toByteOffset: 19, as: UInt32.self)
        text.storeBytes(of: UInt32(truncatingIfNeeded: third >> 32), toByteOffset: 24, as: UInt32.self)
        text.storeBytes(of: fourth, toByteOffset: 28, as: UInt64.self)
        for position in [8, 13, 18, 23] { text.storeBytes(of: hyphen, toByteOffset: position, as: UInt8.self) }
    }

    /// The eight lower-case hex digits of the low 32 bits of `value`, as
    /// little-endian bytes: the most significant digit in the lowest byte.
    private static func hexText(_ value: UInt64) -> UInt64 {
        // One nibble a byte, most significant in the highest byte…
        var spread = (value | value << 16) & 0x0000_FFFF_0000_FFFF
        spread = (spread | spread << 8) & 0x00FF_00FF_00FF_00FF
        spread = (spread | spread << 4) & 0x0F0F_0F0F_0F0F_0F0F
        // …then '0'-'9' or 'a'-'f' in every byte at once, first digit first.
        let letters = ((spread &+ 0x0606_0606_0606_0606) & 0x1010_1010_1010_1010) >> 4
        return (spread &+ 0x3030_3030_3030_3030 &+ letters &* 0x27).byteSwapped.littleEndian
    }
}

/// A token digest's 32 bytes.
package struct DigestBits: Sendable, Hashable {
    package var words: (UInt64, UInt64, UInt64, UInt64)

    package init(words: (UInt64, UInt64, UInt64, UInt64)) {
        self.words = words
    }

    /// Parses 64 lower-case hex digits.
    package init?(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard bytes.count == 64 else { return nil }
        var words: [UInt64] = [0, 0, 0, 0]
        for index in 0..<64 {
            let byte = bytes[index]
            let nibble: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = byte - UInt8(ascii: "a") + 10
            default: return nil
            }
            words[index / 16] = words[index / 16] << 4 | UInt64(nibble)
        }
        self.words = (words[0], words[1], words[2], words[3])
    }

    package init(_ digest: TokenDigest) {
        var text = digest.text
        let bits = text.withUTF8 { DigestBits($0) }
        guard let bits else { preconditionFailure("a TokenDigest holds 64 lower-case hex digits") }
        self = bits
    }

    package var tokenDigest: TokenDigest {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(64)
        for word in [words.0, words.1, words.2, words.3] {
            for nibble in stride(from: 60, through: 0, by: -4) {
                bytes.append(hexByte(UInt8(truncatingIfNeeded: word >> UInt64(nibble)) & 0x0F))
            }
        }
        return TokenDigest(checkedText: String(decoding: bytes, as: UTF8.self))
    }

    package static func == (lhs: DigestBits, rhs: DigestBits) -> Bool {
        lhs.words == rhs.words
    }

    package func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(words.2)
        hasher.combine(words.3)
    }
}

private let hyphen = UInt8(ascii: "-")

/// The value of eight hex digits, the first in the lowest byte of `word`
/// (as loaded from memory on a little-endian machine): nil unless each is
/// `0-9` or `a-f` (or `A-F`, when `foldingCase`). All eight at once, in the
/// word's bytes.
@inline(__always)
private func hexDigits(_ word: UInt64, foldingCase: Bool) -> UInt64? {
    let ones: UInt64 = 0x0101_0101_0101_0101
    let high = ones &* 0x80
    // Each comparison adds to every byte (none carries into the next while
    // the bytes are ASCII) and reads its top bit: byte + (0x80 - c) has it
    // set when byte >= c.
    guard word & high == 0 else { return nil }
    func atLeast(_ word: UInt64, _ bound: UInt8) -> UInt64 { (word &+ ones &* UInt64(0x80 - bound)) & high }
    var word = word
    if foldingCase {
        let upper = atLeast(word, UInt8(ascii: "A")) & ~atLeast(word, UInt8(ascii: "G"))
        word |= upper >> 2  // 0x80 >> 2 is the case bit, 0x20
    }
    let digit = atLeast(word, UInt8(ascii: "0")) & ~atLeast(word, UInt8(ascii: "9") + 1)
    let letter = atLeast(word, UInt8(ascii: "a")) & ~atLeast(word, UInt8(ascii: "g"))
    guard digit | letter == high else { return nil }
    // '0'-'9' is 0x30-0x39 and 'a'-'f' 0x61-0x66: the low four bits, plus 9
    // for a letter (bit 6 set).
    let nibbles = (word & (ones &* 0x0F)) &+ ((word >> 6) & ones) &* 9
    // Bytes n0 n1 … n7 (n0 lowest) to the number n0n1…n7.
    let pairs = (nibbles & 0x000F_000F_000F_000F) << 4 | (nibbles & 0x0F00_0F00_0F00_0F00) >> 8
    let quads = (pairs & 0x0000_00FF_0000_00FF) << 8 | (pairs & 0x00FF_0000_00FF_0000) >> 16
    return (quads & 0x0000_0000_0000_FFFF) << 16 | (quads & 0x0000_FFFF_0000_0000) >> 32
}

@inline(__always)
private func hexByte(_ nibble: UInt8) -> UInt8 {
    nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
}

/// SipHash (Aumasson and Bernstein), the keyed hash Swift's `Hasher` uses,
/// written out for the ledger's byte tables: `Hasher` spent as long setting
/// itself up, buffering and finishing as hashing, for keys of 10-30 bytes
/// hashed on every transfer replayed or sent.
struct SipHash: Sendable {
    let key: (UInt64, UInt64)
    /// Message rounds per word and finishing rounds: 1 and 3 as `Hasher`;
    /// the test checks 2 and 4 against the reference vectors.
    let compressionRounds: Int
    let finalizationRounds: Int

    init(key: (UInt64, UInt64), compressionRounds: Int = 1, finalizationRounds: Int = 3) {
        self.key = key
        self.compressionRounds = compressionRounds
        self.finalizationRounds = finalizationRounds
    }

    /// SipHash-1-3 under a key drawn once per process from `Hasher`, so it
    /// is as secret, and as fixed under `SWIFT_DETERMINISTIC_HASHING`, as
    /// `Hasher`'s own: the core draws no randomness of its own.
    static let processKey: SipHash = {
        func draw(_ label: UInt64) -> UInt64 {
            var hasher = Hasher()
            hasher.combine(label)
            return UInt64(UInt(bitPattern: hasher.finalize()))
        }
        return SipHash(key: (draw(0x6361_7274_6569_7261), draw(0x6b65_795f_7461_626c)))
    }()

    /// The hash of `bytes`, after the 8 bytes of `prefix` when given.
    func hash(_ bytes: UnsafeRawBufferPointer, prefix: UInt64? = nil) -> UInt64 {
        var state = State(key: key)
        var length = bytes.count
        if let prefix {
            state.compress(prefix, rounds: compressionRounds)
            length += 8
        }
        var offset = 0
        while bytes.count - offset >= 8 {
            state.compress(
                UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)),
                rounds: compressionRounds)
            offset += 8
        }
        // The last 0-7 bytes, little-endian, under the length's low byte.
        var last = UInt64(truncatingIfNeeded: length) << 56
        for index in offset..<bytes.count {
            last |= UInt64(bytes[index]) << UInt64(8 * (index - offset))
        }
        state.compress(last, rounds: compressionRounds)
        return state.finish(rounds: finalizationRounds)
    }

    private struct State {
        var v0: UInt64
        var v1: UInt64
        var v2: UInt64
        var v3: UInt64

        init(key: (UInt64, UInt64)) {
            v0 = key.0 ^ 0x736f_6d65_7073_6575
            v1 = key.1 ^ 0x646f_7261_6e64_6f6d
            v2 = key.0 ^ 0x6c79_6765_6e65_7261
            v3 = key.1 ^ 0x7465_6462_7974_6573
        }

        @inline(__always)
        mutating func round() {
            v0 &+= v1
            v1 = v1.rotatedLeft(13) ^ v0
            v0 = v0.rotatedLeft(32)
            v2 &+= v3
            v3 = v3.rotatedLeft(16) ^ v2
            v0 &+= v3
            v3 = v3.rotatedLeft(21) ^ v0
            v2 &+= v1
            v1 = v1.rotatedLeft(17) ^ v2
            v2 = v2.rotatedLeft(32)
        }

        @inline(__always)
        mutating func compress(_ word: UInt64, rounds: Int) {
            v3 ^= word
            for _ in 0..<rounds { round() }
            v0 ^= word
        }

        mutating func finish(rounds: Int) -> UInt64 {
            v2 ^= 0xFF
            for _ in 0..<rounds { round() }
            return v0 ^ v1 ^ v2 ^ v3
        }
    }
}

extension UInt64 {
    @inline(__always)
    fileprivate func rotatedLeft(_ count: UInt64) -> UInt64 {
        self << count | self >> (64 - count)
    }
}

/// Byte strings stored back to back in one arena, each with a `UInt32`
/// value, found again by their bytes through an open-addressing table: a
/// map from names (or request ids) to dense indices with no `String` and
/// one arena instead of one allocation per entry.
///
/// The hash is SipHash-1-3 under a per-process secret key (`SipHash`), as
/// Swift's `Hasher`, so a client choosing names or request ids cannot force
/// collisions; `seed` lets one table hold entries of several owners (a
/// request id is only unique per machine).
struct ByteTable: Sendable, Hashable {
    private struct Entry: Sendable, Hashable {
        /// Where its bytes start in `bytes`; they end where the next
        /// entry's start (or at the end of `bytes`).
        var start: UInt32
        var value: UInt32
    }

    private var bytes: [UInt8] = []
    private var entries: [Entry] = []
    /// Per slot, 0 when empty, else the entry's hash in the high 32 bits and
    /// its index + 1 in the low 32: a probe compares hashes without touching
    /// the entries. A power of two, at most half full.
    private var slots: [UInt64] = Array(repeating: 0, count: 16)

    var count: Int { entries.count }

    static func hash(_ key: UnsafeRawBufferPointer, seed: UInt32) -> UInt32 {
        UInt32(truncatingIfNeeded: SipHash.processKey.hash(key, prefix: UInt64(seed)))
    }

    /// The value of the first entry with these bytes and hash for which
    /// `matches(value)` holds.
    func find(
        _ key: UnsafeRawBufferPointer, hash: UInt32, where matches: (UInt32) -> Bool = { _ in true }
    ) -> UInt32? {
        slots.withUnsafeBufferPointer { slots in
            let mask = slots.count - 1
            var slot = Int(hash) & mask
            while true {
                let stored = slots[slot]
                if stored == 0 { return nil }
                if UInt32(truncatingIfNeeded: stored >> 32) == hash {
                    let entry = Int(UInt32(truncatingIfNeeded: stored)) - 1
                    if entryEquals(entry, key), matches(entries[entry].value) { return entries[entry].value }
                }
                slot = (slot + 1) & mask
            }
        }
    }

    /// The slot `find` looks at first for `hash`: loading it is what
    /// `Ledger.prefetch` does.
    func slot(hash: UInt32) -> UInt64 {
        slots.withUnsafeBufferPointer { $0[Int(hash) & ($0.count - 1)] }
    }

    /// The value of the first entry with this hash, without comparing its
    /// bytes: a guess, for `Ledger.prefetch` only.
    func firstValue(hash: UInt32) -> UInt32? {
        slots.withUnsafeBufferPointer { slots in
            let mask = slots.count - 1
            var slot = Int(hash) & mask
            while slots[slot] != 0 {
                if UInt32(truncatingIfNeeded: slots[slot] >> 32) == hash {
                    return entries[Int(UInt32(truncatingIfNeeded: slots[slot])) - 1].value
                }
                slot = (slot + 1) & mask
            }
            return nil
        }
    }

    /// Adds an entry; the caller has checked it is not there yet.
    mutating func insert(_ key: UnsafeRawBufferPointer, hash: UInt32, value: UInt32) {
        precondition(bytes.count + key.count < Int(UInt32.max), "the byte table outgrew 4 GiB")
        if (entries.count + 1) * 2 > slots.count { grow() }
        let entry = entries.count
        entries.append(Entry(start: UInt32(bytes.count), value: value))
        bytes.append(contentsOf: key)
        place(UInt64(hash) << 32 | UInt64(entry + 1))
    }

    /// The bytes of entry `index`.
    func withEntry<R>(_ index: Int, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        let (start, end) = bounds(index)
        return bytes.withUnsafeBufferPointer { body(UnsafeBufferPointer(rebasing: $0[start..<end])) }
    }

    func string(_ index: Int) -> String {
        withEntry(index) { String(decoding: $0, as: UTF8.self) }
    }

    private func bounds(_ index: Int) -> (Int, Int) {
        let start = Int(entries[index].start)
        let end = index + 1 < entries.count ? Int(entries[index + 1].start) : bytes.count
        return (start, end)
    }

    /// True when entry `entry` holds exactly these bytes.
    func entryEquals(_ entry: Int, _ key: UnsafeRawBufferPointer) -> Bool {
        let (start, end) = bounds(entry)
        guard end - start == key.count else { return false }
        return bytes.withUnsafeBytes { arena in
            for index in 0..<key.count where arena[start + index] != key[index] { return false }
            return true
        }
    }

    private mutating func place(_ stored: UInt64) {
        let mask = slots.count - 1
        var slot = Int(stored >> 32) & mask
        while slots[slot] != 0 { slot = (slot + 1) & mask }
        slots[slot] = stored
    }

    private mutating func grow() {
        let old = slots
        slots = Array(repeating: 0, count: old.count * 2)
        for stored in old where stored != 0 { place(stored) }
    }

    static func == (lhs: ByteTable, rhs: ByteTable) -> Bool {
        lhs.bytes == rhs.bytes && lhs.entries == rhs.entries
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(bytes)
        hasher.combine(entries)
    }
}

/// One machine, by its dense index.
struct MachineSlot: Sendable, Hashable {
    var name: MachineName
    /// Index of its current key in `Ledger.keySlots`.
    var key: UInt32
    var keyExpires: Int64
    var tokenDigest: DigestBits
    var balance: Int64
    var registeredAt: Int64
    /// `Int64.min` when it has had no transfer.
    var lastTransferAt: Int64
    /// Its newest transfer (index into the ledger's transfers), or -1; the
    /// older ones chain back through `TransferSlot.previous`.
    var newestTransfer: Int32
    var transferCount: Int32
}

/// Where `Ledger.keysByBits` points: a key's index in `Ledger.keySlots`
/// and its owner's machine index.
struct KeyRef: Sendable, Hashable {
    var index: UInt32
    var owner: UInt32
}

/// One key ever issued.
struct KeySlot: Sendable, Hashable {
    var bits: KeyBits
    var owner: UInt32
    var expires: Int64
    /// When it stopped being current; `Int64.max` while it is.
    var replacedAt: Int64

    /// The moment the key stopped (or will stop) being current: its expiry,
    /// or the rotation if that came earlier.
    var stoppedAt: Int64 { min(replacedAt, expires) }
}

/// One transfer in 48 bytes. Its tx is `TxID(seq:)`, so it is not stored.
struct TransferSlot: Sendable, Hashable {
    var seq: Int64
    var at: Int64
    var amount: Int64
    var from: UInt32
    var to: UInt32
    /// Index of the payee key the payer used in `Ledger.keySlots`.
    var key: UInt32
    /// Entry in `Ledger.transfersByRequest`, or `TransferSlot.noRequest`.
    var request: UInt32
    /// The payer's and the payee's transfer before this one, or -1: each
    /// machine's transfers are a chain through the transfers themselves,
    /// newest first, so a machine holds no list of its own.
    var previousOfPayer: Int32
    var previousOfPayee: Int32

    static let noRequest = UInt32.max

    /// The transfer before this one of `machine`, one of its two parties.
    func previous(of machine: UInt32) -> Int32 {
        machine == from ? previousOfPayer : previousOfPayee
    }
}

/// An append-only array kept in chunks of `chunkSize` elements. Appending
/// never moves what is stored: a flat array copies every element at each
/// doubling (a 100 MB copy at two million transfers, which stalls the
/// owner's lock for tens of milliseconds) and touches twice the memory it
/// keeps. A copy of the ledger (a snapshot) shares every chunk but the one
/// being filled.
struct ChunkedArray<Element: Sendable>: Sendable {
    static var chunkShift: Int { 16 }
    static var chunkSize: Int { 1 << chunkShift }

    private var chunks: [[Element]] = []
    private(set) var count = 0

    /// Traps out of range, as an array does (the chunks' own bounds checks).
    subscript(index: Int) -> Element {
        chunks[index >> Self.chunkShift][index & (Self.chunkSize - 1)]
    }

    mutating func append(_ element: Element) {
        if count & (Self.chunkSize - 1) == 0 {
            var chunk: [Element] = []
            chunk.reserveCapacity(Self.chunkSize)
            chunks.append(chunk)
        }
        // In place: the last chunk is this array's own unless a snapshot
        // shares it.
        chunks[chunks.count - 1].append(element)
        count += 1
    }
}
