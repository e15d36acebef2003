#if Postgres
    import CarteiraCore
    public import CarteiraJournal
    import Dispatch

    /// The `JournalStorage` the writer uses on the leader: `append` collects a
    /// batch's lines, `sync` writes them in one `INSERT ... SELECT * FROM
    /// unnest(...)` and returns once PostgreSQL reports the commit.
    ///
    /// The first failure fences it for good: a unique violation (another
    /// leader), a dropped connection or any error is "outcome unknown", and
    /// the writer then acknowledges nothing more (every waiter gets
    /// `ERR|unavailable`). The owner re-reads the table to learn what is
    /// durable. `fence(_:)` does the same from outside (a lost heartbeat).
    public final class PostgresJournalStorage: JournalStorage {
        private struct State {
            var pending: [UInt8] = []
            var fence: String?
            var written: Int64
        }

        private let store: PostgresJournalStore
        private let state: Locked<State>
        private let lease: @Sendable () -> String?

        /// `lease` is asked before every write: nil while this server may
        /// still lead, else why it may not (a stale heartbeat).
        public init(store: PostgresJournalStore, size: Int64 = 0, lease: @escaping @Sendable () -> String? = { nil }) {
            self.store = store
            self.lease = lease
            state = Locked(State(written: size))
        }

        /// Why this storage refuses to write, once it does.
        public var fenceReason: String? { state.withLock { $0.fence } }

        /// Refuses every later write; a write in flight still finishes, and
        /// its outcome counts only if PostgreSQL reported the commit.
        public func fence(_ reason: String) {
            state.withLock { state in if state.fence == nil { state.fence = reason } }
        }

        public func append(_ bytes: [UInt8]) throws {
            try state.withLock { state throws(JournalError) in
                if let fence = state.fence { throw .io(fence) }
                state.pending.append(contentsOf: bytes)
            }
        }

        public func sync() throws {
            let (bytes, fenced) = state.withLock { state in
                defer { state.pending = [] }
                return (state.pending, state.fence)
            }
            if let fenced { throw JournalError.io(fenced) }
            guard !bytes.isEmpty else { return }
            if let stale = lease() {
                fence("lost leadership: \(stale)")
                throw JournalError.io("PostgreSQL journal: lost leadership: \(stale)")
            }
            let (seqs, lines) = try Self.split(bytes)
            let store = store
            let outcome = blockingWait { () async -> Result<Void, PostgresWriteError> in
                do throws(PostgresWriteError) {
                    try await store.insert(seqs: seqs, lines: lines)
                    return .success(())
                } catch {
                    return .failure(error)
                }
            }
            switch outcome {
            case .success:
                if let stale = lease() {
                    // Committed, but this server was stopped or cut off past
                    // its lease meanwhile and another may lead now: it
                    // acknowledges nothing more. The clients retry with their
                    // request ids and get these lines' answers from the leader.
                    fence("lost leadership: \(stale)")
                    throw JournalError.io("PostgreSQL journal: outcome unknown: lost leadership: \(stale)")
                }
                state.withLock { $0.written += Int64(bytes.count) }
            case let .failure(error):
                fence("\(error)")
                throw JournalError.io("PostgreSQL journal: \(error)")
            }
        }

        public func truncate(to offset: Int64) throws {
            throw JournalError.io("the PostgreSQL journal is never cut")
        }

        public func size() throws -> Int64 { state.withLock { $0.written } }

        /// Splits encoded lines (each ending in `\n`) into their `seq`s and
        /// texts without the `\n`.
        static func split(_ bytes: [UInt8]) throws(JournalError) -> ([Int64], [String]) {
            var seqs: [Int64] = []
            var lines: [String] = []
            var start = 0
            for index in bytes.indices where bytes[index] == UInt8(ascii: "\n") {
                let line = bytes[start..<index]
                start = index + 1
                guard let seq = seq(of: line) else { throw .io("a journal line without seq=") }
                seqs.append(seq)
                lines.append(String(decoding: line, as: UTF8.self))
            }
            guard start == bytes.count else { throw .io("a journal line without its end") }
            return (seqs, lines)
        }

        /// The `seq=N` a line starts with.
        static func seq(of line: ArraySlice<UInt8>) -> Int64? {
            let prefix = Array("seq=".utf8)
            guard line.count > prefix.count, line.prefix(prefix.count).elementsEqual(prefix) else { return nil }
            let digits = line.dropFirst(prefix.count).prefix { $0 != UInt8(ascii: " ") }
            return Int64(String(decoding: digits, as: UTF8.self))
        }
    }

    /// Runs `body` on the cooperative pool and blocks this thread until it
    /// returns. Only for threads of our own (the journal writer's), never an
    /// event loop or a task (the off-line `journal` commands use it from
    /// the main thread).
    public func blockingWait<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
        let result = Locked<T?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            let value = await body()
            result.withLock { $0 = value }
            done.signal()
        }
        done.wait()
        guard let value = result.withLock({ $0 }) else { preconditionFailure("the task set its result") }
        return value
    }
#endif
