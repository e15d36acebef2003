import CarteiraCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What reading a journal file found.
struct JournalScan {
    var ledger: Ledger
    /// The last good line's `hash`, as 64 hex bytes (zeros when there is none).
    var lastHash: [UInt8]
    /// Where the whole, checked lines end: the append position.
    var goodEnd: Int64
    /// The bytes from `goodEnd` to the end are a torn tail.
    var torn: Bool
    /// A live writer's incomplete last line was passed over.
    var passedOverIncompleteLine: Bool
    var fileExisted: Bool
    var fileSize: Int64

    var lastHashText: String { String(decoding: lastHash, as: UTF8.self) }
}

/// Reads a journal once from start to end in large chunks, checking every
/// line's form, `seq`, hash chain and ledger rules (JOURNAL.md, Replay).
///
/// A torn tail is what a crash mid-append leaves: the first line that does
/// not check is torn when it has no final `"\n"` (part of a line) or holds a
/// NUL byte (space the file system allocated but never wrote); everything
/// from its start is cut. A whole, NUL-free line that does not check is
/// damage, never a crash, and is refused with its line number even when
/// later bytes look torn: cutting there could drop acknowledged lines.
enum JournalScanner {
    /// Longer than any line format 1 writes (about 300 bytes); a longer run
    /// without `"\n"` is not a line.
    static let maxLineBytes = 4096
    static let chunkBytes = 1 << 20

    static func scan(
        path: String, policy: KeyPolicy, passOverIncompleteLine: Bool, chunkBytes: Int = chunkBytes
    ) throws(JournalError) -> JournalScan {
        var scan = JournalScan(
            ledger: Ledger(policy: policy), lastHash: Array(JournalCodec.zeroHash.utf8), goodEnd: 0, torn: false,
            passedOverIncompleteLine: false, fileExisted: false, fileSize: 0)
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        if descriptor < 0 {
            if errno == ENOENT { return scan }
            throw Posix.error("open", path)
        }
        defer { close(descriptor) }
        scan.fileExisted = true
        // Read no further than the size now: a live server may be appending.
        scan.fileSize = try Posix.size(descriptor, what: path)

        let capacity = chunkBytes + maxLineBytes
        let base = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
        defer { base.deallocate() }
        var start = 0  // first unread byte of the buffer
        var end = 0  // end of the valid bytes in the buffer
        var bufferOffset: Int64 = 0  // file offset of base[0]
        var lineNumber = 0
        var atEnd = false

        while true {
            while let found = memchr(base + start, Int32(newline), end - start) {
                let newlineIndex = UnsafeRawPointer(found) - UnsafeRawPointer(base)
                lineNumber += 1
                let line = UnsafeBufferPointer(start: base + start, count: newlineIndex - start)
                if let reason = check(line, into: &scan) {
                    guard memchr(base + start, 0, line.count) != nil else {
                        throw .corrupt(line: lineNumber, reason: reason)
                    }
                    scan.torn = true
                    return scan
                }
                start = newlineIndex + 1
                scan.goodEnd = bufferOffset + Int64(start)
            }
            let rest = end - start
            if atEnd {
                guard rest > 0 else { return scan }
                // The last bytes have no "\n": part of a line.
                let hasNUL = memchr(base + start, 0, rest) != nil
                if passOverIncompleteLine && !hasNUL {
                    scan.passedOverIncompleteLine = true
                } else {
                    scan.torn = true
                }
                return scan
            }
            if rest >= maxLineBytes {
                guard memchr(base + start, 0, rest) != nil else {
                    throw .corrupt(line: lineNumber + 1, reason: "no end of line within \(maxLineBytes) bytes")
                }
                scan.torn = true
                return scan
            }
            // Keep the unfinished line and read the next chunk behind it.
            if start > 0 {
                memmove(base, base + start, rest)
                bufferOffset += Int64(start)
                start = 0
                end = rest
            }
            let wanted = Int(min(Int64(capacity - end), scan.fileSize - (bufferOffset + Int64(end))))
            var count = 0
            if wanted > 0 {
                count = try Posix.read(
                    descriptor, into: base + end, count: wanted, at: bufferOffset + Int64(end), what: path)
            }
            if count == 0 { atEnd = true }
            end += count
        }
    }

    /// Checks one line against the state so far and applies it; the reason
    /// it fails otherwise.
    private static func check(_ line: UnsafeBufferPointer<UInt8>, into scan: inout JournalScan) -> String? {
        let event: Event
        do {
            event = try scan.lastHash.withUnsafeBufferPointer { (previous) throws(JournalFormatError) -> Event in
                try JournalCodec.decodeLine(line, previousHash: previous)
            }
        } catch {
            return error.reason
        }
        guard event.seq == scan.ledger.lastSeq + 1 else {
            return "seq \(event.seq) does not follow \(scan.ledger.lastSeq)"
        }
        do {
            try scan.ledger.apply(event)
        } catch {
            return "ledger rule broken: \(error.message)"
        }
        scan.lastHash.withUnsafeMutableBufferPointer { hash in
            for index in 0..<JournalCodec.hashLength {
                hash[index] = line[line.count - JournalCodec.hashLength + index]
            }
        }
        return nil
    }
}
