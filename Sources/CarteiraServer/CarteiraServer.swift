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

/// The Carteira server: the journal replayed into the ledger service, a TCP
/// listener, one task per connection, and the key-rotation timer. Run it in a
/// `ServiceGroup` (SIGINT/SIGTERM stop it gracefully) or call `run()` and
/// `shutdown()` yourself.
public final class CarteiraServer: Service {
    typealias Connection = NIOAsyncChannel<InboundFrame, ByteBuffer>

    public let configuration: ServerConfiguration
    public let ledgerService: LedgerService
    public let journalWriter: JournalWriter
    public let journalPath: String
    /// The port the listener is bound to (the chosen one when `port` was 0).
    public let port: Int
    private let logger: Logger
    private let lock: JournalLock
    private let listener: NIOAsyncChannel<Connection, Never>
    private let stopRequests: AsyncStream<Void>.Continuation
    private let stopStream: AsyncStream<Void>
    private let failure = Mutex<JournalError?>(nil)

    /// Opens and replays the journal, then binds the listener. Nothing is
    /// served until `run()`.
    public static func start(
        configuration: ServerConfiguration,
        logger: Logger,
        clock: @escaping @Sendable () -> Timestamp = systemClock,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        storage: ((String) throws -> any JournalStorage)? = nil
    ) async throws -> CarteiraServer {
        let journal = try Journal.open(
            directory: configuration.journalDirectory, policy: configuration.keyPolicy, now: clock(),
            storage: storage)
        if let offset = journal.tornTailCutAt {
            logger.warning(
                "Cut a torn tail off the journal",
                metadata: [
                    "journal.path": "\(journal.journalPath)", "journal.offset": "\(offset)",
                    "journal.kept": "\(journal.tornTailKeptAt ?? "-")",
                ])
        }
        logger.info(
            "Journal replayed",
            metadata: [
                "journal.path": "\(journal.journalPath)", "journal.events": "\(journal.ledger.eventCount)",
                "ledger.machines": "\(journal.ledger.machines.count)",
                "ledger.transfers": "\(journal.ledger.transfers.count)",
            ])
        let service = LedgerService(
            ledger: journal.ledger, writer: journal.writer, initialBalance: configuration.initialBalance,
            maximumSessions: configuration.maximumClients, clock: clock)
        do {
            // Keys that expired while the server was down are rotated first.
            if let seq = await service.rotateExpiredKeys() {
                try await journal.writer.waitDurable(through: seq)
            }
            let listener = try await ServerBootstrap(group: eventLoopGroup)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .bind(host: configuration.host, port: configuration.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            ByteToMessageHandler(LineFrameDecoder(maximumLineBytes: maximumLineBytes)))
                        return try Connection(
                            wrappingChannelSynchronously: channel,
                            configuration: .init(isOutboundHalfClosureEnabled: false))
                    }
                }
            guard let port = listener.channel.localAddress?.port else {
                throw JournalError.io("the listener has no local port")
            }
            return CarteiraServer(
                configuration: configuration, service: service, journal: journal, listener: listener, port: port,
                logger: logger)
        } catch {
            await journal.writer.shutdown()
            journal.lock.release()
            throw error
        }
    }

    private init(
        configuration: ServerConfiguration, service: LedgerService, journal: OpenedJournal,
        listener: NIOAsyncChannel<Connection, Never>, port: Int, logger: Logger
    ) {
        self.configuration = configuration
        self.ledgerService = service
        self.journalWriter = journal.writer
        self.journalPath = journal.journalPath
        self.lock = journal.lock
        self.listener = listener
        self.port = port
        self.logger = logger
        (self.stopStream, self.stopRequests) = AsyncStream<Void>.makeStream()
    }

    /// Asks for a graceful stop: stop accepting, answer what was read, sync,
    /// close. `run()` returns once that is done.
    public func shutdown() {
        stopRequests.yield()
    }

    /// Serves until `shutdown()`, a graceful-shutdown signal of the service
    /// group, or a journal failure (then it throws: the process must exit
    /// non-zero).
    public func run() async throws {
        logger.info("Listening", metadata: ["server.host": "\(configuration.host)", "server.port": "\(port)"])
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { background in
                background.addTask { await self.rotateKeysUntilCancelled() }
                background.addTask { await self.stopWhenAsked() }
                await withDiscardingTaskGroup { connections in
                    do {
                        try await listener.executeThenClose { inbound in
                            for try await connection in inbound {
                                connections.addTask { await self.serve(connection) }
                            }
                        }
                    } catch {
                        logger.error("Listener failed", metadata: ["error": "\(error)"])
                    }
                    // However the listener ended, the rest stops too.
                    shutdown()
                }
                background.cancelAll()
            }
        } onGracefulShutdown: {
            self.shutdown()
        }
        await journalWriter.shutdown()
        lock.release()
        if let failure = failure.withLock({ $0 }) {
            logger.critical("Stopped: the journal could not be written", metadata: ["error": "\(failure)"])
            throw failure
        }
        let statistics = journalWriter.statistics()
        logger.info(
            "Stopped",
            metadata: [
                "journal.syncs": "\(statistics.syncs)", "journal.events_synced": "\(statistics.eventsSynced)",
                "journal.last_seq": "\(statistics.lastSeq)",
            ])
    }

    private func stopWhenAsked() async {
        for await _ in stopStream { break }
        guard !Task.isCancelled else { return }
        logger.info("Stopping: no new connections; answering what was read")
        listener.channel.close(promise: nil)
        await ledgerService.beginShutdown()
        try? await Task.sleep(for: .seconds(configuration.shutdownGraceSeconds))
        guard !Task.isCancelled else { return }
        logger.warning("Closing connections that did not finish in time")
        await ledgerService.closeAllConnections()
    }

    private func rotateKeysUntilCancelled() async {
        let tick = Duration.milliseconds(configuration.rotationTickMilliseconds)
        while !Task.isCancelled {
            try? await Task.sleep(for: tick)
            guard !Task.isCancelled else { return }
            guard let seq = await ledgerService.rotateExpiredKeys() else { continue }
            do {
                try await journalWriter.waitDurable(through: seq)
            } catch {
                await fail(error)
            }
        }
    }

    private func fail(_ error: JournalError) async {
        // The writer knows the underlying I/O error; waiters only see `.closed`.
        let error = journalWriter.failure ?? error
        let first = failure.withLock { failure in
            defer { if failure == nil { failure = error } }
            return failure == nil
        }
        guard first else { return }
        logger.critical("Journal write failed: refusing all changes", metadata: ["error": "\(error)"])
        await ledgerService.journalFailed()
        shutdown()
    }

    // MARK: One connection

    private func serve(_ connection: Connection) async {
        let remote = connection.channel.remoteAddress?.description ?? "unknown"
        let (stream, outbox) = Outbox.make(
            limit: configuration.maximumQueuedLinesPerConnection, channel: connection.channel)
        guard
            let id = await ledgerService.openSession(remoteAddress: remote, outbox: outbox)
        else {
            logger.warning("Refused a connection: too many clients or stopping", metadata: ["peer": "\(remote)"])
            try? await connection.executeThenClose { _, outbound in
                let refusal = Response.error(Rejection(.unavailable, "too many connections or shutting down"))
                try await outbound.write(ByteBuffer(string: refusal.wire))
            }
            return
        }
        logger.debug("Connection opened", metadata: ["peer": "\(remote)"])
        do {
            try await connection.executeThenClose { inbound, outbound in
                try await withThrowingTaskGroup(of: Bool.self) { group in
                    group.addTask {
                        do {
                            for try await frame in inbound {
                                guard await self.receive(frame, from: id) else { break }
                            }
                        } catch {
                            self.logger.debug("Read failed", metadata: ["peer": "\(remote)", "error": "\(error)"])
                        }
                        await self.ledgerService.closeSession(id)
                        return false
                    }
                    group.addTask {
                        try await self.drain(stream, to: outbound)
                        return true
                    }
                    while let writerDone = try await group.next() {
                        if writerDone { group.cancelAll() }
                    }
                }
            }
        } catch {
            logger.debug("Connection failed", metadata: ["peer": "\(remote)", "error": "\(error)"])
        }
        await ledgerService.connectionEnded(id)
        logger.debug("Connection closed", metadata: ["peer": "\(remote)"])
    }

    /// Parses one frame and hands it to the ledger service; false when the
    /// connection should stop reading.
    private func receive(_ frame: InboundFrame, from id: SessionID) async -> Bool {
        switch frame {
        case .tooLong:
            let rejection = Rejection(.lineTooLong, "a line may hold at most \(maximumLineBytes) bytes; closing")
            return await ledgerService.reject(rejection, from: id, closing: true)
        case let .line(buffer):
            guard let text = String(validating: buffer.readableBytesView, as: UTF8.self) else {
                return await ledgerService.reject(Rejection(.badRequest, "the line is not valid UTF-8"), from: id)
            }
            switch Request.parse(text[...]) {
            case nil: return true
            case let .failure(rejection)?: return await ledgerService.reject(rejection, from: id)
            case let .success(request)?: return await ledgerService.handle(request, from: id)
            }
        }
    }

    /// Writes each queued answer once what it reflects is durable.
    private func drain(
        _ stream: AsyncStream<Outgoing>, to outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    ) async throws {
        for await item in stream {
            var text = item.text
            if item.durableThrough > journalWriter.durableSeq {
                do {
                    try await journalWriter.waitDurable(through: item.durableThrough)
                } catch {
                    await fail(error)
                    guard item.kind != .push else { continue }
                    text = Response.error(Rejection(.unavailable, "server cannot write its journal")).wire
                }
            }
            try await outbound.write(ByteBuffer(string: text))
            if item.kind == .final { return }
        }
    }
}
