#if Postgres
    public import CarteiraCore
    public import CarteiraJournal

    /// The ledger rebuilt from the table, line by line, with every check the
    /// file replay makes: each line's form and hash chain, `seq` following the
    /// line before (and matching its row), the ledger rules. A standby keeps
    /// one current by feeding it the lines after `lastSeq`.
    public struct JournalFollower: Sendable {
        public private(set) var ledger: Ledger
        /// The last line's `hash`, 64 lower-case hex digits.
        public private(set) var lastHash: String
        /// Bytes of every line read, newlines included: the size of the file
        /// `journal export` writes.
        public private(set) var bytes: Int64 = 0

        public init(policy: KeyPolicy) {
            ledger = Ledger(policy: policy)
            lastHash = JournalCodec.zeroHash
        }

        public var lastSeq: Int64 { ledger.lastSeq }

        /// Applies one row; throws `.corrupt` naming the line (counting from
        /// 1, as for a file) and changes nothing on a bad one.
        public mutating func apply(seq: Int64, line: String) throws(JournalError) {
            try apply(decode(seq: seq, line: line), line: line)
        }

        /// Checks one row's form, hash chain and `seq` without applying it.
        public func decode(seq: Int64, line: String) throws(JournalError) -> (event: Event, hash: String) {
            let lineNumber = ledger.eventCount + 1
            let decoded: (event: Event, hash: String)
            do {
                decoded = try JournalCodec.decode(Substring(line), previousHash: lastHash)
            } catch {
                throw .corrupt(line: lineNumber, reason: "\(error)")
            }
            guard decoded.event.seq == seq else {
                throw .corrupt(line: lineNumber, reason: "row seq \(seq) holds a line with seq \(decoded.event.seq)")
            }
            guard seq == ledger.lastSeq + 1 else {
                throw .corrupt(line: lineNumber, reason: "seq \(seq) does not follow \(ledger.lastSeq)")
            }
            return decoded
        }

        /// Applies a row `decode` checked; throws `.corrupt` on a ledger rule.
        public mutating func apply(_ decoded: (event: Event, hash: String), line: String) throws(JournalError) {
            do {
                try ledger.apply(decoded.event)
            } catch {
                throw .corrupt(line: ledger.eventCount + 1, reason: "\(error)")
            }
            lastHash = decoded.hash
            bytes += Int64(line.utf8.count + 1)
        }

        /// Reads and applies every line after `lastSeq`; returns how many.
        @discardableResult
        public mutating func catchUp(from store: PostgresJournalStore) async throws(JournalError) -> Int {
            var count = 0
            while true {
                let rows = try await store.lines(after: lastSeq)
                for row in rows { try apply(seq: row.seq, line: row.line) }
                count += rows.count
                if rows.isEmpty { return count }
            }
        }
    }

    /// `journal verify|replay|statement|export postgres://...`: the file
    /// journal's reports, made from the table.
    public enum PostgresJournalTools {
        /// Replays the table, up to `point` or to its end, and checks the
        /// ledger's invariants, as `JournalVerifier.verify` does for a file.
        public static func verify(
            _ store: PostgresJournalStore, through point: ReplayPoint? = nil,
            recordingHashesOf anchors: Set<Int64> = []
        ) async throws(JournalError) -> VerifySummary {
            var follower = JournalFollower(policy: KeyPolicy())
            var hashes: [Int64: String] = [:]
            var lastAt: Timestamp?
            var stoppedEarly = false
            reading: while true {
                let rows = try await store.lines(after: follower.lastSeq)
                if rows.isEmpty { break }
                for row in rows {
                    if case let .seq(seq) = point, row.seq > seq {
                        stoppedEarly = true
                        break reading
                    }
                    let decoded = try follower.decode(seq: row.seq, line: row.line)
                    if case let .time(time) = point, decoded.event.at > time {
                        stoppedEarly = true
                        break reading
                    }
                    try follower.apply(decoded, line: row.line)
                    lastAt = decoded.event.at
                    if anchors.contains(row.seq) { hashes[row.seq] = decoded.hash }
                }
            }
            let ledger = follower.ledger
            guard ledger.lastSeq >= 0 || point != nil else {
                throw .io("the PostgreSQL journal at \(store.url) is empty")
            }
            if let violation = ledger.checkInvariants() {
                throw .corrupt(line: ledger.eventCount, reason: "ledger invariant broken: \(violation.message)")
            }
            return VerifySummary(
                events: ledger.eventCount, machines: ledger.machines.count, transfers: ledger.transfers.count,
                totalMoney: ledger.totalMoney, lastSeq: ledger.lastSeq, lastHash: follower.lastHash, ledger: ledger,
                passedOverIncompleteLine: false, lastAt: lastAt, stoppedEarly: stoppedEarly, hashes: hashes)
        }

        /// `journal verify [--expect SEQ:HASH]...` on the table: the summary
        /// of the rows that check, the first bad one, each anchor. Throws only
        /// when the table cannot be read.
        public static func report(_ store: PostgresJournalStore, expecting anchors: [JournalAnchor] = [])
            async throws(JournalError) -> VerifyReport
        {
            let seqs = Set(anchors.map(\.seq))
            let summary: VerifySummary
            var problem: VerifyReport.Problem?
            do throws(JournalError) {
                summary = try await verify(store, recordingHashesOf: seqs)
            } catch {
                guard case let .corrupt(line, reason) = error else { throw error }
                problem = .init(line: line, message: "line \(line): \(reason)")
                // The rows before it: line 1 is seq 0.
                summary =
                    line > 1
                    ? ((try? await verify(store, through: .seq(Int64(line) - 2), recordingHashesOf: seqs)) ?? .empty)
                    : .empty
            }
            let results = anchors.map { VerifyReport.AnchorResult(anchor: $0, found: summary.hashes[$0.seq]) }
            return VerifyReport(summary: summary, problem: problem, anchors: results)
        }

        /// Calls `write` with every line in `seq` order, each ending in `\n`:
        /// the bytes of a journal file that `journal verify` accepts. Checks
        /// the chain as it goes, so a damaged table is never exported as good.
        public static func export(
            _ store: PostgresJournalStore, write: (String) throws -> Void
        ) async throws -> Int {
            var follower = JournalFollower(policy: KeyPolicy())
            var count = 0
            while true {
                let rows = try await store.lines(after: follower.lastSeq)
                if rows.isEmpty { return count }
                var chunk = ""
                for row in rows {
                    try follower.apply(seq: row.seq, line: row.line)
                    chunk += row.line
                    chunk += "\n"
                }
                try write(chunk)
                count += rows.count
            }
        }
    }
#endif
