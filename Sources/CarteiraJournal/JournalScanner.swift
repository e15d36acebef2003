import CarteiraCore
import Dispatch
import Synchronization

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
/// Per line the checks run in this order, and the first that fails names
/// the line: the ` hash=<64 hex>` suffix, the hash, the fields, the `seq`,
/// the ledger rules (`Ledger.apply`). A line's hash depends only on the text
/// of the line before it, so the first two checks run ahead on every core,
/// a chunk at a time (each chunk knows the hash of the line before it); the
/// rest runs in order on the calling thread, which only looks at a chunk's
/// chain result once its earlier lines have passed. So the first bad line
/// and its reason are those of a one-line-at-a-time scan, whatever the chunk
/// size.
///
/// A torn tail is what a crash mid-append leaves: the first line that does
/// not check is torn when it has no final `"\n"` (part of a line) or holds a
/// NUL byte (space the file system allocated but never wrote); everything
/// from its start is cut. A whole, NUL-free line that does not check is
/// damage, never a crash, and is refused with its line number even when
/// later bytes look torn: cutting there could drop acknowledged lines. A
/// line with no `"\n"` in its first `maxLineBytes` bytes is not a line:
/// torn if those bytes hold a NUL, corrupt otherwise.
enum JournalScanner {
    /// Longer than any line format 1 writes (about 300 bytes); a longer run
    /// without `"\n"` is not a line.
    static let maxLineBytes = 4096
    static let chunkBytes = 1 << 20
    /// Chunks read ahead of the one being applied: enough to keep both
    /// cores hashing while the calling thread applies.
    static let chunksInFlight = 6

    /// - Parameters:
    ///   - chunkBytes: bytes read at a time (tests use tiny chunks to put
    ///     damage at chunk edges).
    ///   - parallel: check the hash chain on other threads ahead of
    ///     applying; false checks it on the calling thread, chunk by chunk.
    static func scan(
        path: String, policy: KeyPolicy, passOverIncompleteLine: Bool, chunkBytes: Int = chunkBytes,
        parallel: Bool = true
    ) throws(JournalError) -> JournalScan {
        precondition(chunkBytes > 0, "chunks hold at least one byte")
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
        // Transfer lines are about 200-250 bytes; room reserved beyond what
        // is used is never touched, so it costs no resident memory.
        scan.ledger.reserveCapacity(transfers: Int(scan.fileSize / 128))

        var reader = ChunkReader(
            descriptor: descriptor, path: path, fileSize: scan.fileSize, chunkBytes: chunkBytes)
        var applier = LineApplier(scan: scan, passOverIncompleteLine: passOverIncompleteLine)
        var pending: [ChainCheck] = []
        var spare: [[UInt8]] = []
        var readerDone = false
        while true {
            while !readerDone && pending.count < (parallel ? chunksInFlight : 1) {
                let chunk = try reader.next(buffer: spare.popLast())
                readerDone = chunk.last
                let check = ChainCheck(chunk: chunk)
                if parallel {
                    DispatchQueue.global().async { check.run() }
                } else {
                    check.run()
                }
                pending.append(check)
            }
            guard !pending.isEmpty else { break }
            let check = pending.removeFirst()
            check.done.wait()
            let finished = try check.withResult { (chunk, failure) throws(JournalError) -> Bool in
                try applier.apply(chunk, chainFailure: failure)
            }
            if finished {
                // Let the chain checks still running finish before the
                // buffers they read go away.
                for other in pending { other.done.wait() }
                break
            }
            if let buffer = check.takeBuffer() { spare.append(buffer) }
        }
        return applier.scan
    }
}

/// A run of whole lines read from the journal, plus what follows them.
struct Chunk: Sendable {
    /// `bytes[0..<linesEnd]` are whole lines, each ending in `"\n"`.
    var bytes: [UInt8]
    var linesEnd: Int
    /// The valid bytes in `bytes`: after `linesEnd` they start the next line.
    var count: Int
    /// File offset of `bytes[0]`.
    var offset: Int64
    /// The `hash` of the line before `bytes[0]` (64 hex bytes; zeros before
    /// the first line; meaningless when that line was malformed, which the
    /// applier reports before it looks here).
    var previousHash: [UInt8]
    /// No chunk follows: `bytes[linesEnd..<count]` is the file's tail (an
    /// incomplete last line), or a run of at least `maxLineBytes` bytes
    /// with no `"\n"`, where reading stopped.
    var last: Bool
}

/// Reads the file into chunks of whole lines, carrying the start of a line
/// that a chunk cuts to the next chunk.
struct ChunkReader {
    let descriptor: Int32
    let path: String
    let fileSize: Int64
    let chunkBytes: Int
    private var carry: [UInt8] = []
    private var position: Int64 = 0
    private var previousHash = Array(JournalCodec.zeroHash.utf8)

    init(descriptor: Int32, path: String, fileSize: Int64, chunkBytes: Int) {
        self.descriptor = descriptor
        self.path = path
        self.fileSize = fileSize
        self.chunkBytes = chunkBytes
    }

    mutating func next(buffer: [UInt8]?) throws(JournalError) -> Chunk {
        // The carry is shorter than a line may be, so it and a chunk fit.
        let capacity = chunkBytes + JournalScanner.maxLineBytes
        var bytes = buffer ?? []
        if bytes.count != capacity { bytes = [UInt8](repeating: 0, count: capacity) }
        let offset = position - Int64(carry.count)
        let carried = carry.count
        let wanted = Int(min(Int64(chunkBytes), fileSize - position))
        let read = try bytes.withUnsafeMutableBufferPointer { (buffer) throws(JournalError) -> Int in
            guard let base = buffer.baseAddress else { return 0 }
            carry.withUnsafeBufferPointer { carried in
                if let source = carried.baseAddress { base.update(from: source, count: carried.count) }
            }
            var total = 0
            while total < wanted {
                let count = try Posix.read(
                    descriptor, into: base + carried + total, count: wanted - total, at: position + Int64(total),
                    what: path)
                if count == 0 { break }
                total += count
            }
            return total
        }
        position += Int64(read)
        let count = carried + read
        let linesEnd = bytes.withUnsafeBufferPointer { buffer in
            var end = count
            while end > 0 && buffer[end - 1] != newline { end -= 1 }
            return end
        }
        let chunkPreviousHash = previousHash
        if linesEnd >= JournalCodec.hashLength + 1 {
            previousHash = Array(bytes[(linesEnd - 1 - JournalCodec.hashLength)..<(linesEnd - 1)])
        }
        carry = Array(bytes[linesEnd..<count])
        let atEnd = read < wanted || position >= fileSize
        let last = atEnd || carry.count >= JournalScanner.maxLineBytes
        return Chunk(
            bytes: bytes, linesEnd: linesEnd, count: count, offset: offset, previousHash: chunkPreviousHash,
            last: last)
    }
}

/// The chain check of one chunk: run once, on any thread; its result is
/// read after `done`.
final class ChainCheck: Sendable {
    private struct State: Sendable {
        var chunk: Chunk?
        /// The first line that fails its suffix or hash check: its start in
        /// the chunk and why.
        var failure: (start: Int, reason: JournalCodec.ChainFailure)?
    }

    private let state: Mutex<State>
    let done = DispatchSemaphore(value: 0)

    init(chunk: Chunk) {
        state = Mutex(State(chunk: chunk, failure: nil))
    }

    func run() {
        state.withLock { state in
            guard let chunk = state.chunk else { return }
            state.failure = Self.firstFailure(in: chunk)
        }
        done.signal()
    }

    /// Checks each whole line against the line before it, stopping at the
    /// first failure.
    private static func firstFailure(in chunk: Chunk) -> (start: Int, reason: JournalCodec.ChainFailure)? {
        chunk.bytes.withUnsafeBufferPointer { buffer in
            chunk.previousHash.withUnsafeBufferPointer { first in
                guard let base = buffer.baseAddress else { return nil }
                var previous = first
                var start = 0
                while start < chunk.linesEnd {
                    guard let found = memchr(base + start, Int32(newline), chunk.linesEnd - start) else { break }
                    let end = UnsafeRawPointer(found) - UnsafeRawPointer(base)
                    let line = UnsafeBufferPointer(rebasing: buffer[start..<end])
                    if let failure = JournalCodec.checkChain(line, previousHash: previous) {
                        return (start, failure)
                    }
                    previous = UnsafeBufferPointer(rebasing: line[(line.count - JournalCodec.hashLength)...])
                    start = end + 1
                }
                return nil
            }
        }
    }

    /// Runs `body` on the chunk and its chain result; after `done`.
    func withResult<R>(
        _ body: (Chunk, (start: Int, reason: JournalCodec.ChainFailure)?) throws(JournalError) -> R
    ) throws(JournalError) -> R {
        let taken = state.withLock { state in
            let taken = (state.chunk, state.failure)
            return taken
        }
        guard let chunk = taken.0 else { preconditionFailure("a chain check's chunk is read once") }
        return try body(chunk, taken.1)
    }

    /// Hands the chunk's buffer back for the next read.
    func takeBuffer() -> [UInt8]? {
        state.withLock { state in
            let bytes = state.chunk?.bytes
            state.chunk = nil
            return bytes
        }
    }
}

/// The sequential stage: decodes each line's fields, checks its `seq` and
/// applies it, in file order, taking the chain check's verdict for the line
/// when it gets there.
struct LineApplier {
    var scan: JournalScan
    let passOverIncompleteLine: Bool
    private var lineNumber = 0

    init(scan: JournalScan, passOverIncompleteLine: Bool) {
        self.scan = scan
        self.passOverIncompleteLine = passOverIncompleteLine
    }

    /// Applies the chunk's whole lines; true when the scan is over (the
    /// last chunk, or a torn line).
    mutating func apply(
        _ chunk: Chunk, chainFailure: (start: Int, reason: JournalCodec.ChainFailure)?
    ) throws(JournalError) -> Bool {
        let stop = try chunk.bytes.withUnsafeBufferPointer { (buffer) throws(JournalError) -> Bool in
            guard let base = buffer.baseAddress else { return false }
            var start = 0
            var lastGoodEnd = -1
            defer {
                if lastGoodEnd > 0 {
                    for index in 0..<JournalCodec.hashLength {
                        scan.lastHash[index] = buffer[lastGoodEnd - JournalCodec.hashLength + index]
                    }
                }
            }
            while start < chunk.linesEnd {
                guard let found = memchr(base + start, Int32(newline), chunk.linesEnd - start) else { break }
                let end = UnsafeRawPointer(found) - UnsafeRawPointer(base)
                lineNumber += 1
                if end - start >= JournalScanner.maxLineBytes {
                    return try overlong(UnsafeBufferPointer(rebasing: buffer[start..<end]))
                }
                let line = UnsafeBufferPointer(rebasing: buffer[start..<end])
                let reason: String?
                if let chainFailure, chainFailure.start == start {
                    reason = chainFailure.reason.reason
                } else {
                    reason = check(line)
                }
                if let reason {
                    guard memchr(base + start, 0, line.count) != nil else {
                        throw .corrupt(line: lineNumber, reason: reason)
                    }
                    scan.torn = true
                    return true
                }
                lastGoodEnd = end
                start = end + 1
                scan.goodEnd = chunk.offset + Int64(start)
            }
            guard chunk.last else { return false }
            let rest = UnsafeBufferPointer(rebasing: buffer[chunk.linesEnd..<chunk.count])
            if rest.count >= JournalScanner.maxLineBytes {
                lineNumber += 1
                return try overlong(rest)
            }
            guard !rest.isEmpty else { return true }
            // The last bytes have no "\n": part of a line.
            if passOverIncompleteLine && memchr(base + chunk.linesEnd, 0, rest.count) == nil {
                scan.passedOverIncompleteLine = true
            } else {
                scan.torn = true
            }
            return true
        }
        return stop
    }

    /// A line with no `"\n"` within `maxLineBytes` bytes: torn if those
    /// bytes hold a NUL, corrupt otherwise.
    private mutating func overlong(_ run: UnsafeBufferPointer<UInt8>) throws(JournalError) -> Bool {
        let head = UnsafeBufferPointer(rebasing: run[0..<JournalScanner.maxLineBytes])
        guard head.contains(0) else {
            throw .corrupt(line: lineNumber, reason: "no end of line within \(JournalScanner.maxLineBytes) bytes")
        }
        scan.torn = true
        return true
    }

    /// Decodes, checks `seq` and applies a line whose chain checked; the
    /// reason it fails otherwise.
    private mutating func check(_ line: UnsafeBufferPointer<UInt8>) -> String? {
        let event: EventBytes
        do throws(JournalFormatError) {
            event = try JournalCodec.decodeFields(
                UnsafeBufferPointer(rebasing: line[0..<(line.count - JournalCodec.hashSuffixLength)]))
        } catch {
            return error.reason
        }
        guard event.seq == scan.ledger.lastSeq + 1 else {
            return "seq \(event.seq) does not follow \(scan.ledger.lastSeq)"
        }
        do throws(LedgerViolation) {
            try scan.ledger.apply(event)
        } catch {
            return "ledger rule broken: \(error.message)"
        }
        return nil
    }
}
