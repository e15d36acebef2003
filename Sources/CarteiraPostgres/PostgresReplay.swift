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
            do {
                try ledger.apply(decoded.event)
            } catch {
                throw .corrupt(line: lineNumber, reason: "\(error)")
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

    /// `journal verify|replay|export postgres://...`.
    public enum PostgresJournalTools {
        /// Replays the whole table and checks the ledger's invariants, as
        /// `JournalVerifier.verify` does for a file; the replayed state.
        public static func verify(_ store: PostgresJournalStore) async throws(JournalError) -> JournalFollower {
            var follower = JournalFollower(policy: KeyPolicy())
            try await follower.catchUp(from: store)
            let ledger = follower.ledger
            guard ledger.lastSeq >= 0 else { throw .io("the PostgreSQL journal at \(store.url) is empty") }
            if let violation = ledger.checkInvariants() {
                throw .corrupt(line: ledger.eventCount, reason: "ledger invariant broken: \(violation.message)")
            }
            return follower
        }

        /// `verify`'s summary, in the file journal's form.
        public static func summary(_ follower: JournalFollower, url: PostgresURL) -> String {
            let ledger = follower.ledger
            let rows = [
                ("journal", "\(url) table \(PostgresJournalStore.table)"),
                ("events", "\(ledger.eventCount)"),
                ("machines", "\(ledger.machines.count)"),
                ("transfers", "\(ledger.transfers.count)"),
                ("total money", ledger.totalMoney.brl),
                ("last seq", "\(ledger.lastSeq)"),
                ("last hash", follower.lastHash),
            ]
            let width = rows.map(\.0.count).max() ?? 0
            return rows.map { name, value in
                name + String(repeating: " ", count: width - name.count + 2) + value + "\n"
            }.joined()
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
