public import CarteiraCore
public import CarteiraJournal
import CarteiraProtocol
public import Logging
public import NIOCore
public import NIOPosix
public import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The wall clock as a `Timestamp`.
public let systemClock: @Sendable () -> Timestamp = {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Timestamp(milliseconds: Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000)
}

/// The Carteira server: the journal replayed into the ledger owner, a TCP
/// listener whose connections each run the whole request path on their
/// event loop (`ConnectionHandler`), and the key-rotation timer. Run it in a
/// `ServiceGroup` (SIGINT/SIGTERM stop it gracefully) or call `run()` and
/// `shutdown()` yourself.
public final class CarteiraServer: Service {
    public let configuration: ServerConfiguration
    public let journalPath: String
    /// The port the listener is bound to (the chosen one when `port` was 0).
    public let port: Int
    private let core: ServerCore
    private let logger: Logger
    /// Releases the journal (the file journal's lock) once the writer stopped.
    private let releaseJournal: @Sendable () -> Void
    private let listener: any Channel
    private let metricsListener: (any Channel)?
    /// The port `GET /metrics` is served on, when metrics are on.
    public var metricsPort: Int? { metricsListener?.localAddress?.port }

    /// Opens and replays the journal, then binds the listener. Nothing is
    /// served until `run()`.
    public static func start(
        configuration: ServerConfiguration,
        logger: Logger,
        clock: @escaping @Sendable () -> Timestamp = systemClock,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        storage: ((String) throws -> any JournalStorage)? = nil
    ) async throws -> CarteiraServer {
        // Refused before the journal is touched: no new journal is left
        // behind by a start that could never serve.
        if let refusal = configuration.plaintextRefusal { throw ServerStartFailure(refusal) }
        let tls = try configuration.tlsContext()
        // A batch synced on an idle event loop holds that loop's connections
        // for one sync (docs/architecture.md). With one loop that would be
        // every connection, and JOURNAL.md says waiting for the disk never
        // stops the server from accepting requests: one loop leaves every
        // sync to the journal thread.
        var loops = eventLoopGroup.makeIterator()
        let oneLoop = loops.next() != nil && loops.next() == nil
        let storage = storage ?? (oneLoop ? { try PosixJournalStorage(path: $0, syncsOnCaller: false) } : nil)
        let replayStarted = ContinuousClock.now
        let journal = try Journal.open(
            directory: configuration.journalDirectory, policy: configuration.keyPolicy, now: clock(),
            storage: storage)
        let replayTook = ContinuousClock.now - replayStarted
        if let offset = journal.tornTailCutAt {
            logger.warning(
                "Cut a torn tail off the journal",
                metadata: [
                    "journal.path": "\(journal.journalPath)", "journal.offset": "\(offset)",
                    // Lines count from 1 (the genesis line); every line
                    // before the cut one replayed, unless none did.
                    "journal.line": "\(journal.genesisWritten ? 1 : journal.ledger.eventCount + 1)",
                    "journal.kept": "\(journal.tornTailKeptAt ?? "-")",
                ])
        }
        logger.info(
            "Journal replayed",
            metadata: [
                "journal.path": "\(journal.journalPath)", "journal.events": "\(journal.ledger.eventCount)",
                "ledger.machines": "\(journal.ledger.machines.count)",
                "ledger.transfers": "\(journal.ledger.transfers.count)",
                // The head: auditors write it down for `journal verify --expect`.
                "journal.last_seq": "\(journal.ledger.lastSeq)", "journal.last_hash": "\(journal.lastHash)",
                "journal.replay_ms": "\(Int(replayTook / .milliseconds(1)))",
            ])
        return try await start(
            configuration: configuration, ledger: journal.ledger, writer: journal.writer,
            journalPath: journal.journalPath, release: { journal.lock.release() },
            abandon: {
                if journal.genesisWritten {
                    // It could not serve (the address is in use): leave no
                    // new journal behind, only its genesis line was in it.
                    unlink(journal.journalPath)
                }
            }, replayTook: replayTook, tls: tls, logger: logger, clock: clock, eventLoopGroup: eventLoopGroup)
    }

    /// Serves a ledger whose journal someone else opened and replayed (the
    /// PostgreSQL journal): `writer` appends after `ledger.lastSeq`, and
    /// `release` is called once the writer has stopped, or at once if the
    /// start fails, after `abandon` (which undoes what opening did).
    /// `journalPath` is only shown (logs, console); `replayTook` is what the
    /// replay cost (for the metrics); `tls` is `configuration.tls` already
    /// read (built here when nil).
    public static func start(
        configuration: ServerConfiguration, ledger: Ledger, writer: JournalWriter, journalPath: String,
        release: @escaping @Sendable () -> Void, abandon: @Sendable () -> Void = {}, replayTook: Duration = .zero,
        tls: ServerTLSContext? = nil, logger: Logger,
        clock: @escaping @Sendable () -> Timestamp = systemClock,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> CarteiraServer {
        let metrics = configuration.metrics.map { _ in ServerMetrics() }
        metrics?.replayed(events: ledger.eventCount, took: replayTook, durableSeq: ledger.lastSeq)
        let connectionLimit = descriptorBudget(requested: configuration.maximumConnections)
        if connectionLimit < configuration.maximumConnections {
            logger.warning(
                "Serving at most \(connectionLimit) connections: that is what the open-file limit (ulimit -n) leaves",
                metadata: ["server.max_clients": "\(configuration.maximumConnections)"])
        }
        let service = LedgerService(
            ledger: ledger, writer: writer, initialBalance: configuration.initialBalance,
            maximumConnections: connectionLimit, clock: clock)
        let core = ServerCore(
            ledger: service, writer: writer, clock: clock, logger: logger,
            maximumQueuedAnswers: configuration.maximumQueuedAnswersPerConnection,
            stuckTimeoutSeconds: configuration.stuckConnectionTimeoutSeconds, metrics: metrics)
        var metricsListener: (any Channel)?
        do {
            if let refusal = configuration.plaintextRefusal { throw ServerStartFailure(refusal) }
            let tlsContext = try tls ?? configuration.tlsContext()
            // Keys that expired while the server was down are rotated first.
            if let seq = service.rotateExpiredKeys() {
                try await writer.waitDurable(through: seq)
            }
            let acceptLogger = logger
            let listener = try await ServerBootstrap(group: eventLoopGroup)
                .serverChannelOption(.backlog, value: 256)
                // Connections are capped below the descriptor limit
                // (`descriptorBudget`): out of descriptors, SwiftNIO's accept
                // loop retries at once, even behind `AcceptBackoffHandler`.
                // Should it happen anyway, it is logged.
                .serverChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(AcceptFailureLogger(logger: acceptLogger))
                    }
                }
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .childChannelOption(
                    .writeBufferWaterMark,
                    value: ChannelOptions.Types.WriteBufferWaterMark(
                        low: configuration.outputLowWaterMarkBytes, high: configuration.outputHighWaterMarkBytes)
                )
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let release = core.release(for: channel.eventLoop)
                        try tlsContext?.addHandlers(to: channel.pipeline.syncOperations)
                        try channel.pipeline.syncOperations.addHandler(ConnectionHandler(core: core, release: release))
                    }
                }
                .bind(host: configuration.host, port: configuration.port).get()
            guard let port = listener.localAddress?.port else {
                throw JournalError.io("the listener has no local port")
            }
            if let metrics, let address = configuration.metrics {
                do {
                    metricsListener = try await MetricsEndpoint.bind(
                        host: address.host, port: address.port, metrics: metrics, group: eventLoopGroup)
                } catch {
                    try? await listener.close()
                    throw error
                }
            }
            return CarteiraServer(
                configuration: configuration, core: core, journalPath: journalPath, release: release,
                listener: listener, port: port, metricsListener: metricsListener, logger: logger)
        } catch {
            await writer.shutdown()
            abandon()
            release()
            throw error
        }
    }

    private init(
        configuration: ServerConfiguration, core: ServerCore, journalPath: String,
        release: @escaping @Sendable () -> Void, listener: any Channel, port: Int, metricsListener: (any Channel)?,
        logger: Logger
    ) {
        self.metricsListener = metricsListener
        self.configuration = configuration
        self.core = core
        self.journalPath = journalPath
        self.releaseJournal = release
        self.listener = listener
        self.port = port
        self.logger = logger
    }

    /// Asks for a graceful stop: stop accepting, answer what was read, sync,
    /// close. `run()` returns once that is done.
    public func shutdown() {
        core.stopRequests.yield()
    }

    /// Serves until `shutdown()`, a graceful-shutdown signal of the service
    /// group, or a journal failure (then it throws: the process must exit
    /// non-zero).
    public func run() async throws {
        logger.info(
            "Listening",
            metadata: [
                "server.host": "\(configuration.host)", "server.port": "\(port)",
                "server.tls": "\(configuration.tls == nil ? "off" : "on")",
            ])
        if let metricsPort, let address = configuration.metrics {
            logger.info(
                "Serving metrics", metadata: ["metrics.url": "http://\(address.host):\(metricsPort)/metrics"])
        }
        // However the listener ends, the rest stops too.
        let core = core
        listener.closeFuture.whenComplete { _ in core.stopRequests.yield() }
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { background in
                background.addTask { await self.rotateKeysUntilCancelled() }
                for await _ in core.stopStream { break }
                await stopServing()
                background.cancelAll()
            }
        } onGracefulShutdown: {
            self.shutdown()
        }
        await core.writer.shutdown()
        try? await metricsListener?.close()
        releaseJournal()
        if let failure = core.failure.withLock({ $0 }) {
            logger.critical("Stopped: the journal could not be written", metadata: ["error": "\(failure)"])
            throw failure
        }
        let statistics = core.writer.statistics()
        logger.info(
            "Stopped",
            metadata: [
                "journal.syncs": "\(statistics.syncs)",
                "journal.syncs_on_event_loop": "\(statistics.syncsOnCaller)",
                "journal.events_synced": "\(statistics.eventsSynced)",
                "journal.last_seq": "\(statistics.lastSeq)",
            ])
    }

    /// Closes the listener, lets every connection write what it owes, and
    /// closes those that do not finish within the grace period.
    private func stopServing() async {
        logger.info("Stopping: no new connections; answering what was read")
        try? await listener.close()
        core.ledger.beginShutdown()
        let drained = await waitForConnections(within: .seconds(configuration.shutdownGraceSeconds))
        if !drained {
            logger.warning("Closing connections that did not finish in time")
            core.ledger.closeAllConnections()
            _ = await waitForConnections(within: .seconds(2))
        }
    }

    /// True once every connection has closed, false after `limit`.
    private func waitForConnections(within limit: Duration) async -> Bool {
        let core = core
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                if core.ledger.openConnectionCount == 0 { return true }
                for await _ in core.closes where core.ledger.openConnectionCount == 0 { return true }
                return false
            }
            group.addTask {
                try? await Task.sleep(for: limit)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    private func rotateKeysUntilCancelled() async {
        let tick = Duration.milliseconds(configuration.rotationTickMilliseconds)
        while !Task.isCancelled {
            try? await Task.sleep(for: tick)
            guard !Task.isCancelled else { return }
            _ = core.ledger.rotateExpiredKeys()
        }
    }

    // MARK: For the console and tests. What they show is durable first.

    /// The ledger as of the last durable line: waits until everything the
    /// state in memory holds is synced. After a journal failure it is shown
    /// anyway: the operator needs to see it, and it reaches no peer.
    public func durableLedger() async -> Ledger {
        let (ledger, seq) = core.ledger.snapshot()
        try? await core.writer.waitDurable(through: seq)
        return ledger
    }

    /// The console's `rotate`: answers once the rotation is durable.
    public func rotateKey(of machine: MachineName) async -> Result<(PaymentKey, Timestamp), Rejection> {
        switch core.ledger.adminRotate(machine) {
        case let .failure(rejection):
            return .failure(rejection)
        case let .success(rotation):
            do {
                try await core.writer.waitDurable(through: rotation.seq)
            } catch {
                return .failure(ServingState.journalUnavailable)
            }
            return .success((rotation.key, rotation.expires))
        }
    }

    public func sessionSummaries() -> [SessionSummary] { core.ledger.sessionSummaries() }

    /// Who the rate limits refuse now, for the console's `stats`.
    public func rateLimitSummary() -> RateLimitSummary {
        let now = core.clock()
        let limits = core.ledger.rateLimits
        let addresses = limits.addresses.limited(now: now)
        let machines = limits.machines.limited(now: now)
        let connections = core.ledger.sessionSummaries().count { $0.rateLimited == "connection" }
        return RateLimitSummary(
            refusals: limits.refusals, limitedConnections: connections, limitedAddresses: addresses.keys.sorted(),
            limitedMachines: machines.keys.map(\.text).sorted(),
            bucketsHeld: addresses.tracked + machines.tracked)
    }

    public var journalStatistics: JournalStatistics { core.writer.statistics() }

    /// Requests answered in the last 60 seconds.
    public func requestsLastMinute() async -> Int { await core.requestsLastMinute() }

    public var startedAt: Timestamp { core.ledger.startedAt }

    public func uptimeMilliseconds() -> Int64 { core.ledger.uptimeMilliseconds() }

    /// Connections still open, including those only finishing their writes.
    public var openConnectionCount: Int { core.ledger.openConnectionCount }

    /// Connections bound to a machine.
    public var openSessionCount: Int { core.ledger.openSessionCount }
}

/// Who the rate limits refuse now (docs/protocol.md, Limits).
public struct RateLimitSummary: Sendable, Hashable {
    /// Requests answered `rate_limited` since the start.
    public var refusals: Int64
    /// Connections whose own bucket is empty.
    public var limitedConnections: Int
    public var limitedAddresses: [String]
    public var limitedMachines: [String]
    /// Address and machine buckets held in memory (refilled ones are dropped).
    public var bucketsHeld: Int
}

/// How many connections the open-file limit leaves room for, at most
/// `requested`. The soft limit is first raised to the hard one. What is
/// open now (journal, lock, event loops) and a reserve (for connections
/// being refused, the journal directory's sync, the console) are kept out,
/// so connections never exhaust descriptors: past the budget a new
/// connection is accepted, told `ERR|unavailable` and closed, instead of
/// failing `accept` with EMFILE.
func descriptorBudget(requested: Int) -> Int {
    #if canImport(Glibc)
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
        let resource = RLIMIT_NOFILE
    #endif
    var limit = rlimit()
    guard getrlimit(resource, &limit) == 0 else { return requested }
    if limit.rlim_cur < limit.rlim_max {
        var raised = limit
        raised.rlim_cur = limit.rlim_max
        if setrlimit(resource, &raised) == 0 { limit = raised }
    }
    // RLIM_INFINITY is the largest value: anything this big is no limit.
    guard limit.rlim_cur < rlim_t(Int32.max) else { return requested }
    let total = Int(limit.rlim_cur)
    let reserve = max(16, min(64, total / 8))
    return max(1, min(requested, total - openDescriptorCount() - reserve))
}

/// Descriptors open in this process (Linux: /proc/self/fd; else an estimate).
private func openDescriptorCount() -> Int {
    guard let directory = opendir("/proc/self/fd") else { return 64 }
    defer { closedir(directory) }
    var count = 0
    while readdir(directory) != nil { count += 1 }
    // ".", ".." and the directory's own descriptor.
    return max(0, count - 3)
}

/// Logs failed accepts, at most once every 10 seconds, with how many failed.
final class AcceptFailureLogger: ChannelInboundHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    private let logger: Logger
    private var failures = 0
    private var lastLog: NIODeadline?

    init(logger: Logger) {
        self.logger = logger
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failures += 1
        let now = NIODeadline.now()
        if let lastLog, now - lastLog < .seconds(10) { return }
        lastLog = now
        let reason =
            (error as? IOError).map { String(cString: strerror($0.errnoCode)).lowercased() } ?? "an unknown error"
        logger.warning(
            "Cannot accept new connections (\(reason)); they wait until connections close",
            metadata: ["accept.failures": "\(failures)"])
        failures = 0
    }
}
