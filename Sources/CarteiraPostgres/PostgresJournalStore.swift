#if Postgres
    import CarteiraCore
    public import CarteiraJournal
    public import Logging
    public import NIOCore
    public import NIOPosix
    public import PostgresNIO
    import Synchronization

    /// One connection to the PostgreSQL journal and everything Carteira asks of
    /// it. The journal is one table, `carteira_journal (seq bigint primary key,
    /// line text not null)`, holding exactly the JOURNAL.md lines (without the
    /// final `\n`); `carteira_leader` holds the address the leader advertises.
    ///
    /// Leadership is the session-level advisory lock `lockKey`: the leader's
    /// connection takes it and is the only one that writes, so no write can
    /// commit from a session that does not hold the lock, and the primary key
    /// on `seq` fences every writer whose idea of the tail is stale.
    public final class PostgresJournalStore: Sendable {
        public static let table = "carteira_journal"
        public static let channel = "carteira_journal"
        /// The advisory lock's key (`'Cart'` in ASCII).
        public static let lockKey: Int64 = 0x4361_7274

        /// Session settings for servers: PostgreSQL ends a session that has
        /// been idle for `idleSessionSeconds` (a hung leader stops sending
        /// heartbeats) and probes a silent peer with TCP keepalives (a
        /// partitioned host), so a leader that can no longer talk loses the
        /// lock within seconds.
        public struct SessionLimits: Sendable {
            public var idleSessionSeconds: Int
            public var keepaliveIdleSeconds: Int
            public var keepaliveIntervalSeconds: Int
            public var keepaliveCount: Int

            public init(
                idleSessionSeconds: Int = 6, keepaliveIdleSeconds: Int = 5, keepaliveIntervalSeconds: Int = 1,
                keepaliveCount: Int = 3
            ) {
                self.idleSessionSeconds = idleSessionSeconds
                self.keepaliveIdleSeconds = keepaliveIdleSeconds
                self.keepaliveIntervalSeconds = keepaliveIntervalSeconds
                self.keepaliveCount = keepaliveCount
            }
        }

        public let connection: PostgresConnection
        public let url: PostgresURL
        let logger: Logger

        private let waiting = Waiting()

        private init(connection: PostgresConnection, url: PostgresURL, logger: Logger) {
            self.connection = connection
            self.url = url
            self.logger = logger
            let waiting = waiting
            connection.closeFuture.whenComplete { _ in waiting.closeAll() }
        }

        /// Connects, applies `limits` (nil: none, for short off-line commands)
        /// and creates the tables if missing.
        public static func connect(
            _ url: PostgresURL, limits: SessionLimits?, logger: Logger,
            eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
        ) async throws(JournalError) -> PostgresJournalStore {
            var configuration = PostgresConnection.Configuration(
                host: url.host, port: url.port, username: url.user, password: url.password, database: url.database,
                tls: .disable)
            configuration.options.connectTimeout = .seconds(5)
            configuration.options.additionalStartupParameters = [("application_name", "carteira-server")]
            let connection: PostgresConnection
            do {
                connection = try await PostgresConnection.connect(
                    on: eventLoopGroup.any(), configuration: configuration, id: 1, logger: logger)
            } catch {
                throw .io("cannot connect to PostgreSQL at \(url): \(describe(error))")
            }
            let store = PostgresJournalStore(connection: connection, url: url, logger: logger)
            do {
                if let limits {
                    try await store.run("SET idle_session_timeout = '\(limits.idleSessionSeconds)s'")
                    try await store.run("SET tcp_keepalives_idle = \(limits.keepaliveIdleSeconds)")
                    try await store.run("SET tcp_keepalives_interval = \(limits.keepaliveIntervalSeconds)")
                    try await store.run("SET tcp_keepalives_count = \(limits.keepaliveCount)")
                }
                try await store.run(
                    "CREATE TABLE IF NOT EXISTS \(table) (seq bigint PRIMARY KEY, line text NOT NULL)")
                try await store.run(
                    "CREATE TABLE IF NOT EXISTS carteira_leader (id int PRIMARY KEY CHECK (id = 1), address text NOT NULL, since timestamptz NOT NULL DEFAULT now())"
                )
            } catch {
                await store.close()
                throw error
            }
            return store
        }

        public func close() async {
            try? await connection.close()
        }

        /// This session's backend process id (tests cut it with
        /// `pg_terminate_backend`).
        public func backendPID() async throws(JournalError) -> Int32 {
            try await one("SELECT pg_backend_pid()", as: Int32.self) ?? -1
        }

        // MARK: The journal

        /// Lines with `seq > after`, in `seq` order, at most `limit`.
        public func lines(after: Int64, limit: Int = 10_000) async throws(JournalError) -> [(seq: Int64, line: String)]
        {
            let logger = logger
            do {
                let rows = try await guarded { connection in
                    var result: [Row] = []
                    let rows = try await connection.query(
                        "SELECT seq, line FROM carteira_journal WHERE seq > \(after) ORDER BY seq LIMIT \(limit)",
                        logger: logger)
                    for try await row in rows {
                        let (seq, line) = try row.decode((Int64, String).self)
                        result.append(Row(seq: seq, line: line))
                    }
                    return result
                }
                return rows.map { ($0.seq, $0.line) }
            } catch {
                throw Self.journalError(error, doing: "read the journal")
            }
        }

        /// Writes `lines` (each without its `\n`) in one statement, one round
        /// trip, and wakes the standbys (`NOTIFY` is sent at commit). Returns
        /// once PostgreSQL has reported the commit.
        ///
        /// Throws `.fenced` when a `seq` is already taken (another leader
        /// wrote it); any other error leaves the outcome unknown.
        /// `notify: false` leaves the standbys to find the lines by polling
        /// (tests of lost notifications).
        public func insert(seqs: [Int64], lines: [String], notify: Bool = true) async throws(PostgresWriteError) {
            let logger = logger
            do {
                try await guarded { connection in
                    if notify {
                        _ = try await connection.query(
                            """
                            WITH written AS (INSERT INTO carteira_journal (seq, line) \
                            SELECT * FROM unnest(\(seqs)::int8[], \(lines)::text[]) RETURNING seq) \
                            SELECT pg_notify('\(unescaped: Self.channel)', max(seq)::text) FROM written
                            """,
                            logger: logger
                        ).collect()
                    } else {
                        _ = try await connection.query(
                            """
                            INSERT INTO carteira_journal (seq, line) \
                            SELECT * FROM unnest(\(seqs)::int8[], \(lines)::text[])
                            """,
                            logger: logger
                        ).collect()
                    }
                }
            } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
                throw .fenced(
                    "seq \(seqs.first ?? -1)…\(seqs.last ?? -1) is already in the journal: another server leads")
            } catch {
                throw .outcomeUnknown(Self.describe(error))
            }
        }

        // MARK: Leadership

        /// Takes the leader lock if no other session holds it.
        public func tryLock() async throws(JournalError) -> Bool {
            try await one("SELECT pg_try_advisory_lock(\(Self.lockKey))", as: Bool.self) ?? false
        }

        /// A round trip on this session: the leader's heartbeat.
        public func heartbeat() async throws(JournalError) {
            _ = try await one("SELECT 1", as: Int32.self)
        }

        /// Records the address standbys send clients to.
        public func advertise(_ address: String) async throws(JournalError) {
            let logger = logger
            do {
                try await guarded { connection in
                    _ = try await connection.query(
                        """
                        INSERT INTO carteira_leader (id, address, since) VALUES (1, \(address), now()) \
                        ON CONFLICT (id) DO UPDATE SET address = excluded.address, since = excluded.since
                        """, logger: logger
                    ).collect()
                }
            } catch {
                throw Self.journalError(error, doing: "record the leader's address")
            }
        }

        /// The address the current (or last) leader advertised.
        public func leaderAddress() async throws(JournalError) -> String? {
            try await one("SELECT address FROM carteira_leader WHERE id = 1", as: String.self)
        }

        // MARK: Helpers

        func run(_ sql: String) async throws(JournalError) {
            let logger = logger
            do {
                try await guarded { connection in
                    _ = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger).collect()
                }
            } catch {
                throw Self.journalError(error, doing: "prepare the journal")
            }
        }

        private func one<T: PostgresDecodable & Sendable>(_ query: PostgresQuery, as type: T.Type)
            async throws(JournalError) -> T?
        {
            let logger = logger
            do {
                return try await guarded { connection in
                    let rows = try await connection.query(query, logger: logger)
                    for try await row in rows { return try row.decode(T.self) }
                    return nil
                }
            } catch {
                throw Self.journalError(error, doing: "query the journal")
            }
        }

        private struct Row: Sendable {
            var seq: Int64
            var line: String
        }

        /// The longest any statement may take before it counts as failed.
        static let statementDeadline = Duration.seconds(30)

        /// Runs `body` on the connection, but fails at once when the
        /// connection closes and after `statementDeadline`: a query written
        /// to a connection as it closes can otherwise wait forever. A body
        /// given up on is left to end on its own.
        private func guarded<T: Sendable>(
            _ body: @escaping @Sendable (PostgresConnection) async throws -> T
        ) async throws -> T {
            let connection = connection
            let settled = Settled()
            let waiting = waiting
            return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                let gone = { @Sendable (reason: String) in
                    if settled.claim() { continuation.resume(throwing: ConnectionGone(reason: reason)) }
                }
                guard let id = waiting.add({ gone("the connection was closed") }) else {
                    return gone("the connection was closed")
                }
                let timer = Task {
                    try await Task.sleep(for: Self.statementDeadline)
                    gone("no answer within \(Self.statementDeadline)")
                }
                Task {
                    defer {
                        waiting.remove(id)
                        timer.cancel()
                    }
                    do {
                        let value = try await body(connection)
                        if settled.claim() { continuation.resume(returning: value) }
                    } catch {
                        if settled.claim() { continuation.resume(throwing: error) }
                    }
                }
            }
        }

        static func journalError(_ error: any Error, doing what: String) -> JournalError {
            .io("PostgreSQL: cannot \(what): \(describe(error))")
        }

        /// A message for people: the server's own message when there is one,
        /// never the library's internals.
        static func describe(_ error: any Error) -> String {
            if let gone = error as? ConnectionGone { return gone.reason }
            if let error = error as? PSQLError {
                if let message = error.serverInfo?[.message] {
                    return message + (error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? "")
                }
                switch error.code {
                case .serverClosedConnection, .clientClosedConnection, .uncleanShutdown:
                    return "the connection was closed"
                case .connectionError:
                    return "connection failed" + (error.underlying.map { ": \($0)" } ?? "")
                default:
                    return "\(error.code)"
                }
            }
            return "\(error)"
        }
    }

    /// The statements waiting on a connection, failed all at once when it
    /// closes (one callback on its `closeFuture`, however many statements).
    final class Waiting: Sendable {
        private struct State {
            var closed = false
            var next = 0
            var waiting: [Int: @Sendable () -> Void] = [:]
        }

        private let state = Locked(State())

        /// Registers `onClose`; nil (and not registered) once closed.
        func add(_ onClose: @escaping @Sendable () -> Void) -> Int? {
            state.withLock { state in
                guard !state.closed else { return nil }
                defer { state.next += 1 }
                state.waiting[state.next] = onClose
                return state.next
            }
        }

        func remove(_ id: Int) {
            _ = state.withLock { $0.waiting.removeValue(forKey: id) }
        }

        func closeAll() {
            let callbacks = state.withLock { state in
                state.closed = true
                defer { state.waiting = [:] }
                return Array(state.waiting.values)
            }
            for callback in callbacks { callback() }
        }
    }

    /// Resumes a continuation once, whichever of several racers is first.
    final class Settled: Sendable {
        private let done = Atomic<Bool>(false)

        /// True for the first caller only.
        func claim() -> Bool {
            done.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        }
    }

    struct ConnectionGone: Error {
        var reason: String
    }

    /// Why a batch did not become durable.
    public enum PostgresWriteError: Error, Sendable, CustomStringConvertible {
        /// A unique violation on `seq`: another leader wrote there. This
        /// server has lost leadership.
        case fenced(String)
        /// The connection dropped or the statement failed: the batch may or
        /// may not have committed.
        case outcomeUnknown(String)

        public var description: String {
            switch self {
            case let .fenced(reason): "lost leadership: \(reason)"
            case let .outcomeUnknown(reason): "outcome unknown: \(reason)"
            }
        }
    }
#endif
