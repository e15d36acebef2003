public import CarteiraCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A journal opened by the server: the replayed state, the writer that
/// appends after the last good line, and the lock that keeps other servers
/// out.
public struct OpenedJournal: Sendable {
    public let ledger: Ledger
    public let writer: JournalWriter
    /// Held until `release()` or the process exits.
    public let lock: JournalLock
    /// `DIR/ledger.journal`.
    public let journalPath: String
    /// Where a torn tail was cut, if one was: the server logs a warning.
    public let tornTailCutAt: Int64?
    /// Where the cut bytes were kept, beside the journal.
    public let tornTailKeptAt: String?
    /// The journal was new or empty, and the genesis line was written.
    public let genesisWritten: Bool
    /// The last line's `hash` (the head an auditor writes down with its `seq`).
    public let lastHash: String
}

public enum Journal {
    public static let fileName = "ledger.journal"
    public static let lockFileName = "LOCK"

    /// Creates `directory` if missing, takes the lock (or throws
    /// `.lockHeld`), replays the whole journal, cuts a torn tail (keeping the
    /// cut bytes in `ledger.journal.torn-<unix ms>`), writes and syncs the
    /// genesis line for a new or empty journal, and starts the writer.
    /// Any other damage throws `.corrupt(line:reason:)` and changes nothing
    /// on disk.
    ///
    /// `storage` opens the journal file for appending (tests inject faults
    /// here); by default `PosixJournalStorage`.
    public static func open(
        directory: String, policy: KeyPolicy, now: Timestamp,
        storage makeStorage: ((String) throws -> any JournalStorage)? = nil
    ) throws(JournalError) -> OpenedJournal {
        try open(directory: directory, policy: policy, now: now, storage: makeStorage, threadedWriter: true)
    }

    /// `threadedWriter: false` (the deterministic simulation) starts no
    /// writer thread: the caller runs each batch with `JournalWriter.step()`.
    static func open(
        directory: String, policy: KeyPolicy, now: Timestamp,
        storage makeStorage: ((String) throws -> any JournalStorage)?, threadedWriter: Bool
    ) throws(JournalError) -> OpenedJournal {
        try Posix.makeDirectories(directory)
        let lock = try JournalLock.acquire(directory: directory)
        do throws(JournalError) {
            let path = journalPath(in: directory)
            var scan = try JournalScanner.scan(path: path, policy: policy, passOverIncompleteLine: false)
            let storage: any JournalStorage
            do {
                storage = try makeStorage?(path) ?? PosixJournalStorage(path: path)
            } catch {
                throw error as? JournalError ?? .io("open \(path): \(error)")
            }
            var tornTailCutAt: Int64?
            var tornTailKeptAt: String?
            if scan.torn {
                tornTailKeptAt = try keepTail(of: path, from: scan.goodEnd, milliseconds: now.milliseconds)
                try perform { try storage.truncate(to: scan.goodEnd) }
                try perform { try storage.sync() }
                tornTailCutAt = scan.goodEnd
            } else if scan.fileExisted {
                // The lines just replayed may be in the page cache only (the
                // last process died between a write and its sync): every
                // answer from now on shows them, so they must be on stable
                // storage first. Found by the deterministic simulation.
                try perform { try storage.sync() }
            }
            let genesisWritten = scan.ledger.lastSeq < 0
            if genesisWritten {
                let genesis = Event(seq: 0, at: now, kind: .genesis)
                let (line, hash) = JournalCodec.encode(genesis, previousHash: JournalCodec.zeroHash)
                try perform { try storage.append(Array(line.utf8)) }
                try perform { try storage.sync() }
                if !scan.fileExisted { try Posix.syncDirectory(directory) }
                do {
                    try scan.ledger.apply(genesis)
                } catch {
                    preconditionFailure("the genesis line applies to an empty ledger: \(error)")
                }
                scan.lastHash = Array(hash.utf8)
            }
            let size = try perform { try storage.size() }
            let writer = JournalWriter(
                storage: storage, lastSeq: scan.ledger.lastSeq, lastHash: scan.lastHash, fileSize: size,
                threaded: threadedWriter)
            return OpenedJournal(
                ledger: scan.ledger, writer: writer, lock: lock, journalPath: path, tornTailCutAt: tornTailCutAt,
                tornTailKeptAt: tornTailKeptAt, genesisWritten: genesisWritten, lastHash: scan.lastHashText)
        } catch {
            lock.release()
            throw error
        }
    }

    static func journalPath(in directory: String) -> String {
        directory + "/" + fileName
    }

    /// `DIR/ledger.journal`.
    public static func path(in directory: String) -> String {
        journalPath(in: directory)
    }

    /// Runs a storage call, keeping `JournalError`s and wrapping others.
    static func perform<T>(_ body: () throws -> T) throws(JournalError) -> T {
        do {
            return try body()
        } catch {
            throw error as? JournalError ?? .io("\(error)")
        }
    }

    /// Copies the bytes of `path` from `offset` to its end into a new,
    /// synced file `<path>.torn-<milliseconds>` and returns its path, so a
    /// cut never destroys anything an operator may want to look at.
    static func keepTail(of path: String, from offset: Int64, milliseconds: Int64) throws(JournalError) -> String {
        let keptPath = "\(path).torn-\(milliseconds)"
        let source = try Posix.open(path, O_RDONLY | O_CLOEXEC)
        defer { close(source) }
        let target = try Posix.open(keptPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC)
        defer { close(target) }
        let capacity = 1 << 16
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
        defer { buffer.deallocate() }
        var position = offset
        while true {
            let count = try Posix.read(source, into: buffer, count: capacity, at: position, what: path)
            if count == 0 { break }
            try Posix.writeAll(target, Array(UnsafeBufferPointer(start: buffer, count: count)), what: keptPath)
            position += Int64(count)
        }
        try Posix.sync(target, what: keptPath)
        return keptPath
    }
}

/// What `verify` found in a journal that checks.
public struct VerifySummary: Sendable {
    /// Nothing read: what a report shows when not even the first line checks.
    public static let empty = VerifySummary(
        events: 0, machines: 0, transfers: 0, totalMoney: .zero, lastSeq: -1, lastHash: JournalCodec.zeroHash,
        ledger: Ledger(), passedOverIncompleteLine: false, lastAt: nil, stoppedEarly: false, hashes: [:])

    /// Lines, the genesis line included.
    public var events: Int
    public var machines: Int
    public var transfers: Int
    public var totalMoney: Centavos
    public var lastSeq: Int64
    public var lastHash: String
    public var ledger: Ledger
    /// A live server's incomplete last line was passed over.
    public var passedOverIncompleteLine: Bool
    /// The last line read's `at` (nil for an empty journal).
    public var lastAt: Timestamp?
    /// The replay stopped at the point asked for, before the end.
    public var stoppedEarly: Bool
    /// The `hash` of each line whose `seq` was asked for and was read.
    public var hashes: [Int64: String]

    public init(
        events: Int, machines: Int, transfers: Int, totalMoney: Centavos, lastSeq: Int64, lastHash: String,
        ledger: Ledger, passedOverIncompleteLine: Bool, lastAt: Timestamp?, stoppedEarly: Bool,
        hashes: [Int64: String]
    ) {
        self.events = events
        self.machines = machines
        self.transfers = transfers
        self.totalMoney = totalMoney
        self.lastSeq = lastSeq
        self.lastHash = lastHash
        self.ledger = ledger
        self.passedOverIncompleteLine = passedOverIncompleteLine
        self.lastAt = lastAt
        self.stoppedEarly = stoppedEarly
        self.hashes = hashes
    }
}

/// A moment in a journal to replay to: after the line with a `seq`, or
/// after the last line not later than a time (the lines before the first
/// one whose `at` is later).
public enum ReplayPoint: Sendable, Hashable {
    case seq(Int64)
    case time(Timestamp)
}

/// `journal verify --expect SEQ:HASH`: line `seq` must carry `hash`.
public struct JournalAnchor: Sendable, Hashable {
    public var seq: Int64
    /// 64 lower-case hex.
    public var hash: String

    /// Parses `SEQ:HASH` (upper-case hex is folded); nil otherwise.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, let seq = Int64(parts[0]), seq >= 0, parts[0].allSatisfy(\.isASCII) else {
            return nil
        }
        let hash = parts[1].lowercased()
        guard hash.utf8.count == 64, hash.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) })
        else { return nil }
        self.seq = seq
        self.hash = hash
    }
}

/// What `journal verify` concludes: the summary of the lines that check,
/// the first problem (if any), and how each anchor fared.
public struct VerifyReport: Sendable {
    public struct Problem: Sendable, Hashable {
        /// The first bad line (the genesis line is line 1), when one is named.
        public var line: Int?
        public var message: String

        public init(line: Int?, message: String) {
            self.line = line
            self.message = message
        }
    }

    public struct AnchorResult: Sendable, Hashable {
        public var anchor: JournalAnchor
        /// The hash line `seq` carries; nil when the journal holds no such line.
        public var found: String?
        public var matches: Bool { found == anchor.hash }

        public init(anchor: JournalAnchor, found: String?) {
            self.anchor = anchor
            self.found = found
        }
    }

    /// Of the lines before the first problem (all of them when there is none).
    public var summary: VerifySummary
    public var problem: Problem?
    public var anchors: [AnchorResult]

    public var passed: Bool { problem == nil && anchors.allSatisfy(\.matches) }

    public init(summary: VerifySummary, problem: Problem?, anchors: [AnchorResult]) {
        self.summary = summary
        self.problem = problem
        self.anchors = anchors
    }
}

public enum JournalVerifier {
    /// Read-only: checks everything replay checks. While a live server
    /// holds the lock, an incomplete last line is passed over (it is still
    /// being written); otherwise a torn tail is `.tornTail(offset)`.
    ///
    /// - Parameters:
    ///   - point: replay only up to there (point-in-time replay); the lines
    ///     after it are not read.
    ///   - anchors: the `seq`s whose hashes to report in `hashes`.
    public static func verify(
        directory: String, through point: ReplayPoint? = nil, recordingHashesOf anchors: Set<Int64> = []
    ) throws(JournalError) -> VerifySummary {
        let stop: ScanStop? =
            switch point {
            case nil: nil
            case let .seq(seq): .afterSeq(seq)
            case let .time(time): .afterTime(time)
            }
        return try verify(directory: directory, stop: stop, anchors: anchors)
    }

    static func verify(directory: String, stop: ScanStop?, anchors: Set<Int64>) throws(JournalError)
        -> VerifySummary
    {
        let scan = try scanned(directory: directory, stop: stop, anchors: anchors)
        if scan.torn { throw .tornTail(offset: scan.goodEnd) }
        try checkInvariants(scan.ledger)
        return summary(of: scan)
    }

    /// Checks the whole journal and every anchor, and says what it found:
    /// on a problem, the summary is of the lines before it. Throws only when
    /// the journal cannot be read at all.
    public static func report(directory: String, expecting anchors: [JournalAnchor] = []) throws(JournalError)
        -> VerifyReport
    {
        let seqs = Set(anchors.map(\.seq))
        let summary: VerifySummary
        var problem: VerifyReport.Problem?
        do throws(JournalError) {
            let scan = try scanned(directory: directory, stop: nil, anchors: seqs)
            if scan.torn {
                // The whole lines before it check; the torn one is the next.
                summary = Self.summary(of: scan)
                let line = summary.events + 1
                problem = .init(
                    line: line,
                    message: "line \(line) (byte \(scan.goodEnd)): torn tail, an incomplete last line;"
                        + " `journal repair` cuts it, keeping its bytes")
            } else {
                try checkInvariants(scan.ledger)
                summary = Self.summary(of: scan)
            }
        } catch {
            guard case let .corrupt(line, reason) = error else { throw error }
            problem = .init(line: line, message: "line \(line): \(reason)")
            // The state of the lines before it.
            summary = (try? verify(directory: directory, stop: .beforeLine(line), anchors: seqs)) ?? .empty
        }
        let results = anchors.map { VerifyReport.AnchorResult(anchor: $0, found: summary.hashes[$0.seq]) }
        return VerifyReport(summary: summary, problem: problem, anchors: results)
    }

    /// Scans the journal in `directory`; while a live server holds the lock,
    /// an incomplete last line is passed over (it is still being written).
    private static func scanned(directory: String, stop: ScanStop?, anchors: Set<Int64>) throws(JournalError)
        -> JournalScan
    {
        let path = try existingJournal(in: directory)
        return try JournalScanner.scan(
            path: path, policy: KeyPolicy(), passOverIncompleteLine: JournalLock.isHeld(directory: directory),
            stop: stop, recordingHashesOf: anchors)
    }

    private static func checkInvariants(_ ledger: Ledger) throws(JournalError) {
        if let violation = ledger.checkInvariants() {
            throw .corrupt(line: ledger.eventCount, reason: "ledger invariant broken: \(violation.message)")
        }
    }

    private static func summary(of scan: JournalScan) -> VerifySummary {
        let ledger = scan.ledger
        return VerifySummary(
            events: ledger.eventCount, machines: ledger.machines.count, transfers: ledger.transfers.count,
            totalMoney: ledger.totalMoney, lastSeq: ledger.lastSeq, lastHash: scan.lastHashText, ledger: ledger,
            passedOverIncompleteLine: scan.passedOverIncompleteLine, lastAt: scan.lastAt,
            stoppedEarly: scan.stoppedEarly, hashes: scan.hashes)
    }

    static func existingJournal(in directory: String) throws(JournalError) -> String {
        let path = Journal.journalPath(in: directory)
        guard Posix.fileExists(path) else { throw .io("no journal at \(path)") }
        return path
    }
}

public enum JournalRepair {
    /// Takes the lock (refusing with `.lockHeld` while a server holds it),
    /// cuts a torn tail only, keeping the removed bytes in
    /// `DIR/ledger.journal.torn-<unix ms>`, and syncs. Returns where the cut
    /// was made and how many bytes it removed; nil when there was nothing to
    /// cut, the torn line's number and the file the cut bytes were kept in.
    /// Any other damage throws `.corrupt(line:reason:)` and changes nothing.
    public static func repair(directory: String) throws(JournalError) -> (
        offset: Int64, bytes: Int, line: Int, keptAt: String
    )? {
        let path = try JournalVerifier.existingJournal(in: directory)
        let lock = try JournalLock.acquire(directory: directory)
        defer { lock.release() }
        let scan = try JournalScanner.scan(path: path, policy: KeyPolicy(), passOverIncompleteLine: false)
        guard scan.torn else { return nil }
        let kept = try Journal.keepTail(of: path, from: scan.goodEnd, milliseconds: Posix.nowMilliseconds())
        let descriptor = try Posix.open(path, O_WRONLY | O_CLOEXEC)
        defer { close(descriptor) }
        guard ftruncate(descriptor, off_t(scan.goodEnd)) == 0 else { throw Posix.error("truncate", path) }
        try Posix.sync(descriptor, what: path)
        try Posix.syncDirectory(directory)
        return (scan.goodEnd, Int(scan.fileSize - scan.goodEnd), scan.ledger.eventCount + 1, kept)
    }
}
