#if Postgres
    public import CarteiraCore
    import CarteiraJournal
    public import CarteiraServer
    public import Logging
    public import NIOCore
    public import NIOPosix
    import PostgresNIO
    public import ServiceLifecycle

    /// One `carteira-server` on the PostgreSQL journal: a standby until it
    /// wins the leader lock, then the leader until it loses it, then a standby
    /// again, until it is stopped.
    ///
    /// - Standby: replays the table, follows new lines by `seq` (woken by
    ///   `LISTEN`, and polling every `pollInterval` because notifications can
    ///   be lost), serves `PING` and refuses the rest with
    ///   `ERR|unavailable|standby; leader at HOST:PORT`, and tries the lock at
    ///   every poll.
    /// - Leader: with the lock held (so no other session can commit any more)
    ///   it reads the last lines, records `advertise` for the standbys, and
    ///   serves the caught-up ledger with a `CarteiraServer` whose journal
    ///   writer writes on the lock's own connection. A heartbeat on that
    ///   connection every `heartbeatInterval` must succeed within
    ///   `heartbeatTimeout`, or the leader fences its journal and stops.
    /// - Any journal error (a unique violation on `seq`, a dropped connection,
    ///   a failed statement) stops the leader from acknowledging at once; it
    ///   then starts over as a standby from what the table durably holds.
    public final class PostgresNode: Service, Sendable {
        public enum Role: Sendable, Hashable {
            case starting
            case standby
            case leader
        }

        public struct Options: Sendable {
            public var url: PostgresURL
            /// `HOST:PORT` the standbys send clients to while this one leads.
            public var advertise: String
            public var limits = PostgresJournalStore.SessionLimits()
            public var pollInterval = Duration.milliseconds(500)
            public var heartbeatInterval = Duration.seconds(1)
            public var heartbeatTimeout = Duration.seconds(4)
            /// Wait before reconnecting after a failed cycle or a lost term.
            public var retryDelay = Duration.seconds(1)

            public init(url: PostgresURL, advertise: String) {
                self.url = url
                self.advertise = advertise
            }
        }

        private struct State {
            var role = Role.starting
            var stopping = false
            var server: CarteiraServer?
            var leaderAddress: String?
            var wake: AsyncStream<Void>.Continuation?
            var cycles = 0
            var followedSeq: Int64 = -1
        }

        public let configuration: ServerConfiguration
        public let options: Options
        private let logger: Logger
        private let group: any EventLoopGroup
        private let clock: @Sendable () -> Timestamp
        private let state = Locked(State())

        public init(
            configuration: ServerConfiguration, options: Options, logger: Logger,
            eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
            clock: @escaping @Sendable () -> Timestamp = systemClock
        ) {
            self.configuration = configuration
            self.options = options
            self.logger = logger
            self.group = eventLoopGroup
            self.clock = clock
        }

        public var role: Role { state.withLock { $0.role } }

        /// The last `seq` this node has replayed (as a standby) or served from.
        public var followedSeq: Int64 { state.withLock { $0.followedSeq } }

        /// Times this node became leader.
        public var leaderTerms: Int { state.withLock { $0.cycles } }

        /// The server while this node leads (for the console and tests).
        public var server: CarteiraServer? { state.withLock { $0.server } }

        /// Stops gracefully: a leader answers what it read and stops, a
        /// standby stops following. `run()` then returns.
        public func stop() {
            let (server, wake) = state.withLock { state in
                state.stopping = true
                return (state.server, state.wake)
            }
            server?.shutdown()
            wake?.yield()
        }

        private var stopping: Bool { state.withLock { $0.stopping } }

        private var refusal: String {
            guard let leader = state.withLock({ $0.leaderAddress }) else { return "standby; no leader yet" }
            return "standby; leader at \(leader)"
        }

        public func run() async throws {
            // Checked once, before anything listens: a standby serves what
            // the leader would (TLS only, or plaintext on loopback).
            if let refusal = configuration.plaintextRefusal { throw ServerStartFailure(refusal) }
            let tls = try configuration.tlsContext()
            await withGracefulShutdownHandler {
                while !stopping {
                    do {
                        try await cycle(tls: tls)
                    } catch {
                        guard !stopping else { break }
                        logger.warning(
                            "PostgreSQL journal unavailable; retrying",
                            metadata: ["error": "\(error)", "postgres.url": "\(options.url)"])
                        await pause(options.retryDelay)
                    }
                }
            } onGracefulShutdown: {
                self.stop()
            }
            state.withLock { $0.role = .starting }
        }

        /// Sleeps `duration`, or less if stopped.
        private func pause(_ duration: Duration) async {
            let (wakes, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
            let stopped = state.withLock { state in
                state.wake = wake
                return state.stopping
            }
            if !stopped { await Self.next(of: wakes, within: duration) }
            state.withLock { $0.wake = nil }
        }

        /// Waits for an element of `stream` or `duration`, whichever comes first.
        private static func next(of stream: AsyncStream<Void>, within duration: Duration) async {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await _ in stream { return }
                }
                group.addTask { try? await Task.sleep(for: duration) }
                await group.next()
                group.cancelAll()
            }
        }

        // MARK: One cycle: standby, then leader

        private func cycle(tls: ServerTLSContext?) async throws {
            let store = try await PostgresJournalStore.connect(
                options.url, limits: options.limits, logger: logger, eventLoopGroup: group)
            do {
                try await standbyThenLead(store, tls: tls)
            } catch {
                await store.close()
                throw error
            }
            await store.close()
        }

        private func standbyThenLead(_ store: PostgresJournalStore, tls: ServerTLSContext?) async throws {
            var follower = JournalFollower(policy: configuration.keyPolicy)
            try await follower.catchUp(from: store)
            let address = try await store.leaderAddress()
            state.withLock { state in
                state.leaderAddress = address
                state.followedSeq = follower.lastSeq
            }
            let standby = try await StandbyListener.bind(
                host: configuration.host, port: configuration.port, group: group, tls: tls,
                refusal: { [self] in refusal })
            let (wakes, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
            state.withLock { state in
                state.role = .standby
                state.wake = wake
            }
            logger.info(
                "Standby: following the PostgreSQL journal",
                metadata: [
                    "journal.last_seq": "\(follower.lastSeq)", "server.port": "\(standby.port)",
                    "leader": "\(address ?? "-")",
                ])
            // LISTEN only wakes the loop early; the poll timer and the first
            // read after every reconnect are what make following reliable.
            let listening = Task {
                try? await store.connection.listen(on: PostgresJournalStore.channel) { notifications in
                    for try await _ in notifications { wake.yield() }
                }
            }
            var won = false
            do {
                while !stopping {
                    if try await store.tryLock() {
                        won = true
                        break
                    }
                    try await follower.catchUp(from: store)
                    let leader = try await store.leaderAddress()
                    state.withLock { state in
                        state.leaderAddress = leader
                        state.followedSeq = follower.lastSeq
                    }
                    await Self.next(of: wakes, within: options.pollInterval)
                }
            } catch {
                listening.cancel()
                state.withLock { $0.wake = nil }
                await standby.close()
                throw error
            }
            listening.cancel()
            state.withLock { $0.wake = nil }
            guard won else {
                await standby.close()
                return
            }
            do {
                try await lead(store, follower: follower, standby: standby, tls: tls)
            } catch {
                await standby.close()
                throw error
            }
        }

        private func lead(
            _ store: PostgresJournalStore, follower: JournalFollower, standby: StandbyListener, tls: ServerTLSContext?
        )
            async throws
        {
            var follower = follower
            // The lock is held: no other session can commit now, so this read
            // reaches the last committed line.
            let catchUpStarted = ContinuousClock.now
            let caughtUp = try await follower.catchUp(from: store)
            let catchUpTook = ContinuousClock.now - catchUpStarted
            if follower.lastSeq < 0 {
                let genesis = Event(seq: 0, at: clock(), kind: .genesis)
                let (line, _) = JournalCodec.encode(genesis, previousHash: JournalCodec.zeroHash)
                let text = String(line.dropLast())
                try await store.insert(seqs: [0], lines: [text])
                try follower.apply(seq: 0, line: text)
            }
            try await store.advertise(options.advertise)
            await standby.close()
            let heartbeat = Heartbeat(timeout: options.heartbeatTimeout)
            let storage = PostgresJournalStorage(store: store, size: follower.bytes, lease: heartbeat.fresh)
            let writer = JournalWriter(
                storage: storage, lastSeq: follower.lastSeq, lastHash: Array(follower.lastHash.utf8),
                fileSize: follower.bytes)
            let server: CarteiraServer
            do {
                server = try await CarteiraServer.start(
                    configuration: configuration, ledger: follower.ledger, writer: writer,
                    journalPath: "\(options.url) table \(PostgresJournalStore.table)", release: {},
                    replayTook: catchUpTook, tls: tls, logger: logger,
                    clock: clock, eventLoopGroup: group)
            } catch {
                storage.fence("the server did not start")
                throw error
            }
            let stopNow = state.withLock { state in
                state.role = .leader
                state.server = server
                state.cycles += 1
                state.leaderAddress = options.advertise
                state.followedSeq = follower.lastSeq
                return state.stopping
            }
            if stopNow { server.shutdown() }
            logger.notice(
                "Leader: serving the PostgreSQL journal",
                metadata: [
                    "journal.last_seq": "\(follower.lastSeq)", "journal.caught_up": "\(caughtUp)",
                    "server.port": "\(server.port)", "advertise": "\(options.advertise)",
                ])
            let watch = Task {
                await watchLeadership(store, heartbeat: heartbeat, storage: storage, server: server)
            }
            defer { watch.cancel() }
            do {
                try await server.run()
            } catch {
                logger.error("Leader stopped; starting over as a standby", metadata: ["error": "\(error)"])
            }
            storage.fence("the leader stopped")
            state.withLock { state in
                state.server = nil
                state.role = .starting
            }
            // A leader that lost its term steps back for `retryDelay`, so a
            // standby that is still in touch takes over first.
            await store.close()
            await pause(options.retryDelay)
        }

        /// The leader's heartbeat: a round trip on the lock's connection every
        /// `heartbeatInterval`. A failed one, or none within
        /// `heartbeatTimeout`, means the lock may be gone: fence the journal
        /// (nothing more is acknowledged) and stop the server.
        private func watchLeadership(
            _ store: PostgresJournalStore, heartbeat: Heartbeat, storage: PostgresJournalStorage,
            server: CarteiraServer
        ) async {
            let beating = Task {
                while !Task.isCancelled {
                    do {
                        try await store.heartbeat()
                        heartbeat.succeeded()
                    } catch {
                        heartbeat.failed("heartbeat failed: \(error)")
                        return
                    }
                    try? await Task.sleep(for: options.heartbeatInterval)
                }
            }
            defer { beating.cancel() }
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(200))
                if Task.isCancelled || storage.fenceReason != nil { return }
                if let reason = heartbeat.lost {
                    lose(reason, store: store, storage: storage, server: server)
                    return
                }
            }
        }

        private func lose(
            _ reason: String, store: PostgresJournalStore, storage: PostgresJournalStorage, server: CarteiraServer
        ) {
            logger.error("Lost leadership: acknowledging nothing more", metadata: ["reason": "\(reason)"])
            storage.fence("lost leadership: \(reason)")
            server.shutdown()
            // A write in flight on the lost session fails rather than hangs.
            store.connection.close().whenComplete { _ in }
        }
    }

    /// The leader's last good heartbeat, or why one failed. The journal
    /// storage asks `fresh` before every write, so a leader that was stopped
    /// (SIGSTOP) past the timeout writes nothing when it resumes, even before
    /// its watch notices.
    final class Heartbeat: Sendable {
        private let state = Locked<(at: ContinuousClock.Instant, failure: String?)>((.now, nil))
        let timeout: Duration

        init(timeout: Duration) {
            self.timeout = timeout
        }

        func succeeded() { state.withLock { $0.at = .now } }

        func failed(_ reason: String) { state.withLock { $0.failure = reason } }

        /// Why leadership may be gone, if it may.
        var lost: String? {
            let (at, failure) = state.withLock { $0 }
            if let failure { return failure }
            return ContinuousClock.now - at > timeout ? "no heartbeat within \(timeout)" : nil
        }

        /// nil while the lease is fresh, else why it is not.
        var fresh: @Sendable () -> String? { { [self] in lost } }
    }
#endif
