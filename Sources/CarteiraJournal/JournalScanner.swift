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
    /// The scan stopped at its `ScanStop`, before the end of the file.
    var stoppedEarly = false
    /// The `hash` of each line whose `seq` was asked for (`recordingHashesOf`).
    var hashes: [Int64: String] = [:]
    /// The last applied line's `at`.
    var lastAt: Timestamp?

    var lastHashText: String { String(decoding: lastHash, as: UTF8.self) }
}

/// Where a scan stops before the end of the file: the state is then the
/// replay of the lines before (point-in-time replay, `journal replay --at`).
/// Nothing after the stop is read or checked.
enum ScanStop: Sendable, Hashable {
    /// After the line whose `seq` is this.
    case afterSeq(Int64)
    /// Before the first line whose `at` is later than this.
    case afterTime(Timestamp)
    /// Before line `n` (the genesis line is line 1).
    case beforeLine(Int)
}

/// Reads a journal once from start to end in large chunks, checking every
/// line's form, `seq`, hash chain and ledger rules (JOURNAL.md, Replay).
///
/// Per line the checks run in this order, and the first that fails names
/// the line: its length, the ` hash=<64 hex>` suffix, the hash, the fields,
/// the `seq`, the ledger rules (`Ledger.apply`). A line's hash depends only
/// on the text of the line before it, so the checks up to the fields run
/// ahead on every core, a chunk at a time (each chunk knows the hash of the
/// line before it; `ChainCheck`); `seq` and `apply` run in order on the
/// calling thread (`LineApplier`), which only looks at where a chunk's
/// checks stopped once all lines before have applied. So the first bad line
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
    /// Chunks read and being checked ahead of the one being applied: enough
    /// to keep the other core busy while the calling thread applies.
    static let chunksInFlight = 6

    /// - Parameters:
    ///   - chunkBytes: bytes read at a time (tests use tiny chunks to put
    ///     damage at chunk edges).
    ///   - parallel: check each chunk's lines (length, suffix, hash,
    ///     fields) on other threads ahead of applying; false does the same
    ///     work on the calling thread, a chunk at a time.
    ///   - stop: where to stop before the end; nil reads everything.
    ///   - recordingHashesOf: the `seq`s whose lines' hashes to keep in
    ///     `JournalScan.hashes` (the anchors of `verify --expect`).
    static func scan(
        path: String, policy: KeyPolicy, passOverIncompleteLine: Bool, chunkBytes: Int = chunkBytes,
        parallel: Bool = true, stop: ScanStop? = nil, recordingHashesOf anchors: Set<Int64> = []
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

        var reader = ChunkReader(
            descriptor: descriptor, path: path, fileSize: scan.fileSize, chunkBytes: chunkBytes)
        var applier = LineApplier(
            scan: scan, passOverIncompleteLine: passOverIncompleteLine, stop: stop, anchors: anchors)
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
            // While another thread checks the chunk to apply next, this one
            // checks a later chunk that no thread has started, instead of
            // waiting: the checks are most of the work, and otherwise they
            // run on one core while this thread waits for them.
            while !check.isFinished, let later = pending.first(where: { !$0.isClaimed }) { later.run() }
            check.done.wait()
            let finished: Bool
            do {
                finished = try check.withResult { (chunk, decoded, failure) throws(JournalError) -> Bool in
                    try applier.apply(chunk, decoded: decoded, failure: failure)
                }
            } catch {
                // No chain check outlives the scan.
                for other in pending { other.done.wait() }
                throw error
            }
            if finished {
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

    /// - Parameter buffer: a spare chunk buffer to read into, taken over so
    ///   that writing into it copies nothing.
    mutating func next(buffer: consuming [UInt8]?) throws(JournalError) -> Chunk {
        // The carry is shorter than a line may be, so it and a chunk fit.
        let capacity = chunkBytes + JournalScanner.maxLineBytes
        var bytes = (consume buffer) ?? []
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

/// Where a chunk's lines stop checking before `apply`: the line and the
/// reason (nil: no `"\n"` within `maxLineBytes` bytes).
struct LineFailure: Sendable {
    var start: Int
    var end: Int
    var reason: String?
}

/// A line whose suffix, hash and fields checked, decoded as offsets into
/// its chunk (a `Sendable` stand-in for `EventBytes`, whose buffers point
/// into the chunk).
struct DecodedLine: Sendable {
    enum Kind: Sendable {
        case genesis
        case registered(machine: Range<Int32>, key: KeyBits, expires: Int64, tokenDigest: DigestBits, balance: Int64)
        case transfer(
            tx: Range<Int32>, from: Range<Int32>, to: Range<Int32>, key: KeyBits, amount: Int64,
            requestID: Range<Int32>?)
        case keyRotated(machine: Range<Int32>, key: KeyBits, expires: Int64, reason: KeyRotationReason)
    }

    /// The line is `start..<end`, its `"\n"` at `end`.
    var start: Int32
    var end: Int32
    var seq: Int64
    var at: Int64
    var kind: Kind
    /// A transfer's look-up hashes, computed here rather than in `apply`.
    var hashes: TransferHashes?

    init(_ event: EventBytes, start: Int, end: Int, base: UnsafePointer<UInt8>) {
        func range(_ bytes: UnsafeBufferPointer<UInt8>) -> Range<Int32> {
            guard let address = bytes.baseAddress else { return 0..<0 }
            let lower = Int32(address - base)
            return lower..<(lower + Int32(bytes.count))
        }
        self.start = Int32(start)
        self.end = Int32(end)
        seq = event.seq
        at = event.at
        switch event.kind {
        case .genesis:
            kind = .genesis
        case let .registered(machine, key, expires, tokenDigest, balance):
            kind = .registered(
                machine: range(machine), key: key, expires: expires, tokenDigest: tokenDigest, balance: balance)
        case let .transfer(tx, from, to, key, amount, requestID):
            kind = .transfer(
                tx: range(tx), from: range(from), to: range(to), key: key, amount: amount,
                requestID: requestID.map(range))
            hashes = TransferHashes(payer: from, payee: to, requestID: requestID)
        case let .keyRotated(machine, key, expires, reason):
            kind = .keyRotated(machine: range(machine), key: key, expires: expires, reason: reason)
        }
    }

    /// The event, with its buffers in `chunk`.
    func event(in chunk: UnsafeBufferPointer<UInt8>) -> EventBytes {
        func bytes(_ range: Range<Int32>) -> UnsafeBufferPointer<UInt8> {
            UnsafeBufferPointer(rebasing: chunk[Int(range.lowerBound)..<Int(range.upperBound)])
        }
        switch kind {
        case .genesis:
            return EventBytes(seq: seq, at: at, kind: .genesis)
        case let .registered(machine, key, expires, tokenDigest, balance):
            return EventBytes(
                seq: seq, at: at,
                kind: .registered(
                    machine: bytes(machine), key: key, expires: expires, tokenDigest: tokenDigest, balance: balance))
        case let .transfer(tx, from, to, key, amount, requestID):
            return EventBytes(
                seq: seq, at: at,
                kind: .transfer(
                    tx: bytes(tx), from: bytes(from), to: bytes(to), key: key, amount: amount,
                    requestID: requestID.map(bytes)),
                hashes: hashes)
        case let .keyRotated(machine, key, expires, reason):
            return EventBytes(
                seq: seq, at: at, kind: .keyRotated(machine: bytes(machine), key: key, expires: expires, reason: reason)
            )
        }
    }
}

/// The checks of one chunk that need nothing but its bytes: each line's
/// length, suffix, hash (against the line before) and fields, in that
/// order, stopping at the first line that fails. Runs once, on whichever
/// thread calls `run()` first; its result is read after `done`.
final class ChainCheck: Sendable {
    private struct State: Sendable {
        var chunk: Chunk?
        var decoded: [DecodedLine] = []
        var failure: LineFailure?
    }

    private let state: Locked<State>
    private let claimed = Atomic<Bool>(false)
    private let finished = Atomic<Bool>(false)
    let done = DispatchSemaphore(value: 0)

    init(chunk: Chunk) {
        state = Locked(State(chunk: chunk))
    }

    /// A thread has started the check (or finished it).
    var isClaimed: Bool { claimed.load(ordering: .acquiring) }
    /// The check is over: `done` has been or is about to be signalled.
    var isFinished: Bool { finished.load(ordering: .acquiring) }

    /// Runs the check, unless another thread has started it.
    func run() {
        guard !claimed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        state.withLock { state in
            guard let chunk = state.chunk else { return }
            // Lines are at least 70 bytes (the hash suffix); most are longer.
            state.decoded.reserveCapacity(chunk.linesEnd / 128 + 16)
            state.failure = Self.decode(chunk, into: &state.decoded)
        }
        finished.store(true, ordering: .releasing)
        done.signal()
    }

    private static func decode(_ chunk: Chunk, into decoded: inout [DecodedLine]) -> LineFailure? {
        chunk.bytes.withUnsafeBufferPointer { buffer in
            chunk.previousHash.withUnsafeBufferPointer { first in
                guard let base = buffer.baseAddress else { return nil }
                var previous = first
                var start = 0
                while start < chunk.linesEnd {
                    guard let found = memchr(base + start, Int32(newline), chunk.linesEnd - start) else { break }
                    let end = UnsafeRawPointer(found) - UnsafeRawPointer(base)
                    if end - start >= JournalScanner.maxLineBytes { return LineFailure(start: start, end: end) }
                    let line = UnsafeBufferPointer(rebasing: buffer[start..<end])
                    if let failure = JournalCodec.checkChain(line, previousHash: previous) {
                        return LineFailure(start: start, end: end, reason: failure.reason)
                    }
                    do throws(JournalFormatError) {
                        let text = UnsafeBufferPointer(rebasing: line[0..<(line.count - JournalCodec.hashSuffixLength)])
                        decoded.append(
                            DecodedLine(try JournalCodec.decodeFields(text), start: start, end: end, base: base))
                    } catch {
                        return LineFailure(start: start, end: end, reason: error.reason)
                    }
                    previous = UnsafeBufferPointer(rebasing: line[(line.count - JournalCodec.hashLength)...])
                    start = end + 1
                }
                return nil
            }
        }
    }

    /// Runs `body` on the chunk, its decoded lines and where they stop; after
    /// `done`.
    func withResult<R>(
        _ body: (Chunk, [DecodedLine], LineFailure?) throws(JournalError) -> R
    ) throws(JournalError) -> R {
        let (chunk, decoded, failure) = state.withLock { state in
            let taken = (state.chunk, state.decoded, state.failure)
            state.decoded = []
            return taken
        }
        guard let chunk else { preconditionFailure("a chain check's chunk is read once") }
        return try body(chunk, decoded, failure)
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

/// The sequential stage: checks each decoded line's `seq` and applies it,
/// in file order; then reports the line where the chunk's checks stopped.
struct LineApplier {
    /// Lines whose first table look-ups are loaded together (`Ledger.prefetch`).
    static let prefetchGroup = 8

    var scan: JournalScan
    let passOverIncompleteLine: Bool
    let stop: ScanStop?
    let anchors: Set<Int64>
    private var lineNumber = 0

    init(scan: JournalScan, passOverIncompleteLine: Bool, stop: ScanStop? = nil, anchors: Set<Int64> = []) {
        self.scan = scan
        self.passOverIncompleteLine = passOverIncompleteLine
        self.stop = stop
        self.anchors = anchors
    }

    /// True when `line` is past the scan's stop.
    private func stopsBefore(_ line: DecodedLine) -> Bool {
        switch stop {
        case nil: return false
        case let .afterSeq(seq): return line.seq > seq
        case let .afterTime(time): return line.at > time.milliseconds
        case let .beforeLine(number): return lineNumber + 1 >= number
        }
    }

    /// Applies the chunk's lines; true when the scan is over (the last
    /// chunk, or a torn line).
    mutating func apply(_ chunk: Chunk, decoded: [DecodedLine], failure: LineFailure?) throws(JournalError) -> Bool {
        try chunk.bytes.withUnsafeBufferPointer { (buffer) throws(JournalError) -> Bool in
            guard let base = buffer.baseAddress else { return false }
            var lastGoodEnd = -1
            defer {
                if lastGoodEnd > 0 {
                    for index in 0..<JournalCodec.hashLength {
                        scan.lastHash[index] = buffer[lastGoodEnd - JournalCodec.hashLength + index]
                    }
                }
            }
            for (position, line) in decoded.enumerated() {
                if position % LineApplier.prefetchGroup == 0 {
                    // The group's first look-ups load together: one wait on
                    // memory for the group instead of one a line.
                    for ahead in decoded[position..<min(position + LineApplier.prefetchGroup, decoded.count)] {
                        if let hashes = ahead.hashes { scan.ledger.prefetch(hashes) }
                    }
                }
                if stop != nil && stopsBefore(line) {
                    scan.stoppedEarly = true
                    return true
                }
                lineNumber += 1
                if let reason = apply(line.event(in: buffer)) {
                    return try refuse(UnsafeBufferPointer(rebasing: buffer[Int(line.start)..<Int(line.end)]), reason)
                }
                lastGoodEnd = Int(line.end)
                scan.goodEnd = chunk.offset + Int64(line.end) + 1
                scan.lastAt = Timestamp(milliseconds: line.at)
                if !anchors.isEmpty && anchors.contains(line.seq) {
                    let hash = buffer[(Int(line.end) - JournalCodec.hashLength)..<Int(line.end)]
                    scan.hashes[line.seq] = String(decoding: hash, as: UTF8.self)
                }
            }
            if case .beforeLine(let number) = stop, lineNumber + 1 >= number, failure != nil {
                // The stop is the line where the checks stopped.
                scan.stoppedEarly = true
                return true
            }
            if let failure {
                lineNumber += 1
                let line = UnsafeBufferPointer(rebasing: buffer[failure.start..<failure.end])
                guard let reason = failure.reason else { return try overlong(line) }
                return try refuse(line, reason)
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
    }

    /// A whole line that does not check: torn if it holds a NUL, corrupt
    /// otherwise.
    private mutating func refuse(_ line: UnsafeBufferPointer<UInt8>, _ reason: String) throws(JournalError) -> Bool {
        guard line.contains(0) else { throw .corrupt(line: lineNumber, reason: Self.explained(line, reason)) }
        scan.torn = true
        return true
    }

    /// Two kinds of damage that tools, not people, do to a text file, named
    /// with what to do about them: an empty line (an editor or `echo >>`
    /// added a newline) and CRLF endings (a text-mode transfer, or an editor
    /// on Windows). The journal itself is never changed here.
    static func explained(_ line: UnsafeBufferPointer<UInt8>, _ reason: String) -> String {
        if line.isEmpty {
            return "an empty line, which a journal never has: a newline was added after a line (by an editor, "
                + "or `echo >>`). If it is the file's last byte, cut it from a copy (`truncate -s -1`) and "
                + "verify the copy; keep the original"
        }
        if line.last == UInt8(ascii: "\r") {
            return "the line ends in a carriage return: the file has CRLF (Windows) line endings, which a "
                + "text-mode transfer or an editor adds. Convert a copy back (`sed 's/\\r$//'`) and verify "
                + "the copy; keep the original (\(reason))"
        }
        return reason
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

    /// Checks `seq` and applies a decoded line; the reason it fails otherwise.
    private mutating func apply(_ event: EventBytes) -> String? {
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
