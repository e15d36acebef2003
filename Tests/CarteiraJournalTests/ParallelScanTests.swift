import CarteiraCore
import Dispatch
import CarteiraTestSupport
import Testing

@testable import CarteiraJournal

/// What a scan of a journal ends with, comparable between scanners.
enum ScanOutcome: Equatable, CustomStringConvertible {
    case whole(goodEnd: Int64, lastSeq: Int64)
    case torn(goodEnd: Int64, lastSeq: Int64)
    case passedOver(goodEnd: Int64, lastSeq: Int64)
    case corrupt(line: Int, reason: String)

    var description: String {
        switch self {
        case let .whole(end, seq): "whole to \(end), last seq \(seq)"
        case let .torn(end, seq): "torn at \(end), last seq \(seq)"
        case let .passedOver(end, seq): "passed over an incomplete line at \(end), last seq \(seq)"
        case let .corrupt(line, reason): "line \(line): \(reason)"
        }
    }
}

/// The sequential scan the rules describe, one line at a time over the
/// whole file, through the public `JournalCodec.decode` and
/// `Ledger.apply(_: Event)`: the oracle the chunked, parallel scanner must
/// agree with.
func referenceScan(_ bytes: [UInt8], passOverIncompleteLine: Bool) -> (ScanOutcome, Ledger) {
    let newline = UInt8(ascii: "\n")
    let maxLine = JournalScanner.maxLineBytes
    var ledger = Ledger()
    var previous = JournalCodec.zeroHash
    var lineNumber = 0
    var position = 0
    while position < bytes.count {
        let window = bytes[position..<min(bytes.count, position + maxLine)]
        guard let end = window.firstIndex(of: newline) else {
            if bytes.count - position >= maxLine {
                guard window.contains(0) else {
                    return (.corrupt(line: lineNumber + 1, reason: "no end of line within \(maxLine) bytes"), ledger)
                }
                return (.torn(goodEnd: Int64(position), lastSeq: ledger.lastSeq), ledger)
            }
            if passOverIncompleteLine && !window.contains(0) {
                return (.passedOver(goodEnd: Int64(position), lastSeq: ledger.lastSeq), ledger)
            }
            return (.torn(goodEnd: Int64(position), lastSeq: ledger.lastSeq), ledger)
        }
        lineNumber += 1
        let line = bytes[position..<end]
        var reason: String?
        do {
            let (event, hash) = try JournalCodec.decode(
                Substring(String(decoding: line, as: UTF8.self)), previousHash: previous)
            if event.seq != ledger.lastSeq + 1 {
                reason = "seq \(event.seq) does not follow \(ledger.lastSeq)"
            } else {
                do {
                    try ledger.apply(event)
                    previous = hash
                } catch {
                    reason = "ledger rule broken: \(error.message)"
                }
            }
        } catch {
            reason = error.reason
        }
        if let reason {
            if line.contains(0) { return (.torn(goodEnd: Int64(position), lastSeq: ledger.lastSeq), ledger) }
            return (.corrupt(line: lineNumber, reason: reason), ledger)
        }
        position = end + 1
    }
    return (.whole(goodEnd: Int64(position), lastSeq: ledger.lastSeq), ledger)
}

func scannerOutcome(
    _ directory: TemporaryDirectory, chunkBytes: Int, parallel: Bool, passOverIncompleteLine: Bool
) -> (ScanOutcome, Ledger?) {
    do {
        let scan = try JournalScanner.scan(
            path: directory.journalPath, policy: KeyPolicy(), passOverIncompleteLine: passOverIncompleteLine,
            chunkBytes: chunkBytes, parallel: parallel)
        let end = scan.goodEnd
        let seq = scan.ledger.lastSeq
        if scan.torn { return (.torn(goodEnd: end, lastSeq: seq), scan.ledger) }
        if scan.passedOverIncompleteLine { return (.passedOver(goodEnd: end, lastSeq: seq), scan.ledger) }
        return (.whole(goodEnd: end, lastSeq: seq), scan.ledger)
    } catch {
        guard case let .corrupt(line, reason) = error else { return (.corrupt(line: -1, reason: "\(error)"), nil) }
        return (.corrupt(line: line, reason: reason), nil)
    }
}

/// A journal as lines of text (without ` hash=` and `"\n"`), re-chained
/// after an edit, so only the edit is wrong.
struct Bodies {
    var texts: [String]

    init(_ bytes: [UInt8]) {
        texts = String(decoding: bytes, as: UTF8.self).split(separator: "\n").map { line in
            String(line[..<(line.range(of: " hash=")?.lowerBound ?? line.endIndex)])
        }
    }

    var bytes: [UInt8] {
        var previous = Array(JournalCodec.zeroHash.utf8)
        var bytes: [UInt8] = []
        for text in texts {
            var text = text
            let hash = JournalCodec.chainHash(previousHash: previous, text: &text)
            bytes += Array(text.utf8) + Array(" hash=".utf8) + hash + [UInt8(ascii: "\n")]
            previous = hash
        }
        return bytes
    }

    /// Where line `index` (0-based) starts in `bytes`, and where its `"\n"` is.
    func span(_ index: Int, in bytes: [UInt8]) -> (start: Int, newline: Int) {
        var start = 0
        for _ in 0..<index {
            guard let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) else { break }
            start = newline + 1
        }
        return (start, bytes[start...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count)
    }
}

/// One way of damaging the journal; `at` is the 0-based line it hits.
struct Damage: Sendable, CustomTestStringConvertible {
    let testDescription: String
    let passOverIncompleteLine: Bool
    let apply: @Sendable (_ bytes: [UInt8], _ at: Int) -> [UInt8]

    init(
        _ description: String, passOverIncompleteLine: Bool = false,
        _ apply: @escaping @Sendable (_ bytes: [UInt8], _ at: Int) -> [UInt8]
    ) {
        self.testDescription = description
        self.passOverIncompleteLine = passOverIncompleteLine
        self.apply = apply
    }
}

/// The journal with line `at`'s request id replaced by the newest earlier
/// one of the same payer (or of another), re-chained; unchanged if there is
/// none.
func reusingRequestID(_ bytes: [UInt8], at: Int, ofSamePayer samePayer: Bool) -> [UInt8] {
    var bodies = Bodies(bytes)
    guard let payer = field("from", of: bodies.texts[at]), let current = field("req", of: bodies.texts[at]),
        let earlier = bodies.texts[..<at].last(where: { text in
            field("req", of: text).map { $0 != "-" } == true && (field("from", of: text) == payer) == samePayer
        }),
        let request = field("req", of: earlier)
    else { return bytes }
    bodies.texts[at] = replacing(bodies.texts[at], " req=\(current)", " req=\(request)")
    return bodies.bytes
}

/// The value of field `name` in a line's text, if it has one.
func field(_ name: String, of text: String) -> String? {
    text.split(separator: " ").first { $0.hasPrefix(name + "=") }.map { String($0.dropFirst(name.count + 1)) }
}

func replacing(_ text: String, _ old: String, _ new: String) -> String {
    guard let range = text.range(of: old) else { return text }
    return text.replacingCharacters(in: range, with: new)
}

let damages: [Damage] = [
    Damage("a broken hash: one hex digit of a line's hash changed") { bytes, at in
        var bytes = bytes
        let span = Bodies(bytes).span(at, in: bytes)
        bytes[span.newline - 1] = bytes[span.newline - 1] == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")
        return bytes
    },
    Damage("a changed byte in a line's text, not re-chained") { bytes, at in
        var bytes = bytes
        let span = Bodies(bytes).span(at, in: bytes)
        bytes[span.start + 4] = bytes[span.start + 4] == UInt8(ascii: "9") ? UInt8(ascii: "8") : UInt8(ascii: "9")
        return bytes
    },
    Damage("a malformed hash suffix: the hash cut short") { bytes, at in
        var bytes = bytes
        let span = Bodies(bytes).span(at, in: bytes)
        bytes.removeSubrange((span.newline - 3)..<span.newline)
        return bytes
    },
    Damage("a seq gap, re-chained so only the seq is wrong") { bytes, at in
        var bodies = Bodies(bytes)
        let seq = at
        bodies.texts[at] = replacing(bodies.texts[at], "seq=\(seq) ", "seq=\(seq + 1) ")
        return bodies.bytes
    },
    Damage("a malformed field (a non-canonical number), re-chained") { bytes, at in
        var bodies = Bodies(bytes)
        bodies.texts[at] = replacing(bodies.texts[at], "seq=\(at) ", "seq=0\(at) ")
        return bodies.bytes
    },
    Damage("a broken ledger rule (a tx that is not its seq's), re-chained") { bytes, at in
        var bodies = Bodies(bytes)
        bodies.texts[at] = replacing(bodies.texts[at], "tx=T", "tx=X")
        return bodies.bytes
    },
    // Replay looks request ids up by hashes computed ahead on the checking
    // threads; the reference scan computes them in `apply`.
    Damage("a request id its payer used before, re-chained") { bytes, at in
        reusingRequestID(bytes, at: at, ofSamePayer: true)
    },
    Damage("a request id another payer used, re-chained (allowed)") { bytes, at in
        reusingRequestID(bytes, at: at, ofSamePayer: false)
    },
    Damage("a torn tail: part of a line, then NUL bytes") { bytes, at in
        let span = Bodies(bytes).span(at, in: bytes)
        return Array(bytes[..<(span.start + 20)]) + [UInt8](repeating: 0, count: 300)
    },
    Damage("a NUL inside a whole, newline-terminated line") { bytes, at in
        var bytes = bytes
        let span = Bodies(bytes).span(at, in: bytes)
        bytes[span.start + 30] = 0
        return bytes
    },
    Damage("an incomplete last line (no final newline)") { bytes, at in
        let span = Bodies(bytes).span(at, in: bytes)
        return Array(bytes[..<(span.newline - 10)])
    },
    Damage("an incomplete last line passed over, as beside a live server", passOverIncompleteLine: true) {
        bytes, at in
        let span = Bodies(bytes).span(at, in: bytes)
        return Array(bytes[..<(span.newline - 10)])
    },
    Damage("the last line without only its final newline") { bytes, at in
        let span = Bodies(bytes).span(at, in: bytes)
        return Array(bytes[..<span.newline])
    },
    Damage("a run of more than 4096 bytes with no newline") { bytes, at in
        let span = Bodies(bytes).span(at, in: bytes)
        return Array(bytes[..<span.start]) + [UInt8](repeating: UInt8(ascii: "x"), count: 5000)
            + Array(bytes[span.start...])
    },
]

// One case at a time: each scan already keeps both cores busy, and the rest
// of the suite (servers, clients with deadlines) runs beside it.
@Suite("Journal scanner: the chain checked in parallel", .serialized)
struct ParallelScanTests {
    @Test(
        "the parallel scan finds the same first bad line, with the same reason, as a sequential scan, with the damage at every chunk edge",
        arguments: damages)
    func sameFirstBadLine(damage: Damage) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        _ = try await writeJournal(in: directory) { $0.randomActivity(events: 40) }
        let clean = try directory.journalBytes()
        let lineCount = clean.filter { $0 == UInt8(ascii: "\n") }.count
        // A transfer line in the middle, the second line, and the last line.
        let texts = Bodies(clean).texts
        let middle = try #require(texts.indices.dropFirst(lineCount / 2).first { texts[$0].contains("type=transfer") })
        #expect(damage.apply(clean, middle) != clean, "every damage changes a transfer line")
        for at in [middle, 1, lineCount - 1] {
            let damaged = damage.apply(clean, at)
            try directory.writeJournal(damaged)
            let (expected, expectedLedger) = referenceScan(
                damaged, passOverIncompleteLine: damage.passOverIncompleteLine)
            let span = Bodies(damaged).span(at, in: damaged)
            // Chunk edges exactly at the damaged line's start, just after
            // it, at its hash field, at its newline and just after it; and
            // the line before's newline.
            let edges = [
                span.start, span.start + 1, span.start - 1, span.newline - 64, span.newline - 70, span.newline,
                span.newline + 1,
            ].filter { $0 > 0 }
            for chunk in Set(edges + [1, 64, 257, JournalScanner.chunkBytes]) {
                for parallel in [true, false] {
                    let (outcome, ledger) = scannerOutcome(
                        directory, chunkBytes: chunk, parallel: parallel,
                        passOverIncompleteLine: damage.passOverIncompleteLine)
                    let context: Comment = "line \(at + 1), chunk \(chunk), parallel \(parallel)"
                    #expect(outcome == expected, context)
                    if let ledger, outcome == expected {
                        #expect(LedgerSnapshot(ledger) == LedgerSnapshot(expectedLedger), context)
                    }
                }
            }
        }
    }

    @Test("a clean journal scans whole, to the same state, with any chunk size, in parallel or not")
    func cleanJournal() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let live = try await writeJournal(in: directory) { $0.randomActivity(events: 120, machines: 7) }
        let bytes = try directory.journalBytes()
        let (expected, _) = referenceScan(bytes, passOverIncompleteLine: false)
        #expect(expected == .whole(goodEnd: Int64(bytes.count), lastSeq: live.lastSeq))
        for chunk in [1, 2, 69, 70, 71, 200, 1000, JournalScanner.chunkBytes] {
            for parallel in [true, false] {
                let (outcome, ledger) = scannerOutcome(
                    directory, chunkBytes: chunk, parallel: parallel, passOverIncompleteLine: false)
                #expect(outcome == expected, "chunk \(chunk), parallel \(parallel)")
                let replayed = try #require(ledger)
                #expect(LedgerSnapshot(replayed) == LedgerSnapshot(live), "chunk \(chunk), parallel \(parallel)")
            }
        }
    }

    /// The scanning thread checks a later chunk itself while another thread
    /// checks the one it needs (`JournalScanner.scan`): each chunk must then
    /// be checked once, by whichever thread comes first.
    @Test("a chunk's check runs once when threads race to run it, and says when it has started and finished")
    func checkRunsOnce() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        _ = try await writeJournal(in: directory) { $0.randomActivity(events: 30) }
        let bytes = try directory.journalBytes()
        for _ in 0..<50 {
            let check = ChainCheck(
                chunk: Chunk(
                    bytes: bytes, linesEnd: bytes.count, count: bytes.count, offset: 0,
                    previousHash: Array(JournalCodec.zeroHash.utf8), last: true))
            #expect(!check.isClaimed && !check.isFinished)
            DispatchQueue.concurrentPerform(iterations: 4) { _ in check.run() }
            #expect(check.isClaimed && check.isFinished)
            #expect(check.done.wait(timeout: .now()) == .success)
            #expect(check.done.wait(timeout: .now()) == .timedOut, "signalled once")
            let lines = try check.withResult { (_, decoded, failure) -> Int? in failure == nil ? decoded.count : nil }
            #expect(lines == bytes.count { $0 == UInt8(ascii: "\n") }, "every line decoded once")
        }
    }
}
