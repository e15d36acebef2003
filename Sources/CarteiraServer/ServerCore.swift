import CarteiraCore
import CarteiraJournal
import Logging
import NIOCore
import Synchronization

/// What every connection handler shares: the ledger owner, the journal
/// writer, the limits, and one `LoopRelease` per event loop.
final class ServerCore: Sendable {
    let ledger: LedgerService
    let writer: JournalWriter
    let clock: @Sendable () -> Timestamp
    let logger: Logger
    let maximumQueuedAnswers: Int
    let stuckTimeoutSeconds: Int64
    /// The instruments, when `--metrics` is on.
    let metrics: ServerMetrics?
    private let loops = Locked<[ObjectIdentifier: LoopRelease]>([:])
    private let failed = Atomic<Bool>(false)
    /// The first journal error; `run()` throws it.
    let failure = Locked<JournalError?>(nil)
    let stopRequests: AsyncStream<Void>.Continuation
    let stopStream: AsyncStream<Void>
    /// Yields whenever a connection closes, for the shutdown's wait.
    let closes: AsyncStream<Void>
    private let closed: AsyncStream<Void>.Continuation

    init(
        ledger: LedgerService, writer: JournalWriter, clock: @escaping @Sendable () -> Timestamp, logger: Logger,
        maximumQueuedAnswers: Int, stuckTimeoutSeconds: Int64, metrics: ServerMetrics? = nil
    ) {
        self.metrics = metrics
        self.ledger = ledger
        self.writer = writer
        self.clock = clock
        self.logger = logger
        self.maximumQueuedAnswers = maximumQueuedAnswers
        self.stuckTimeoutSeconds = stuckTimeoutSeconds
        (stopStream, stopRequests) = AsyncStream<Void>.makeStream()
        (closes, closed) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        writer.onProgress { [self] progress in journalProgressed(progress) }
    }

    /// True once a journal write or sync failed.
    var journalFailed: Bool { failed.load(ordering: .sequentiallyConsistent) }

    /// The release state of `loop`, made on first use. Call on `loop`.
    func release(for loop: any EventLoop) -> LoopRelease {
        loops.withLock { loops in
            if let existing = loops[ObjectIdentifier(loop)] { return existing }
            let made = LoopRelease(eventLoop: loop, writer: writer)
            loops[ObjectIdentifier(loop)] = made
            return made
        }
    }

    private var allLoops: [LoopRelease] { loops.withLock { Array($0.values) } }

    /// On the journal thread after every batch.
    private func journalProgressed(_ progress: JournalProgress) {
        switch progress {
        case let .durable(seq, batch):
            // Counted before any answer it covers is released.
            metrics?.durable(batch, through: seq)
            for loop in allLoops { loop.journalProgressed(failed: false) }
        case .failed:
            metrics?.journalFailed()
            failed.store(true, ordering: .sequentiallyConsistent)
            ledger.journalFailed()
            for loop in allLoops { loop.journalProgressed(failed: true) }
            let error = writer.failure ?? .closed
            let first = failure.withLock { failure in
                defer { if failure == nil { failure = error } }
                return failure == nil
            }
            if first {
                logger.critical("Journal write failed: refusing all changes", metadata: ["error": "\(error)"])
                stopRequests.yield()
            }
        }
    }

    func connectionClosed() {
        closed.yield()
    }

    /// Requests answered in the last 60 seconds, over every loop.
    func requestsLastMinute() async -> Int {
        let now = clock()
        var total = 0
        for loop in allLoops {
            let local = loop.local
            total += (try? await loop.eventLoop.submit { local.value.requestRate.lastMinute(at: now) }.get()) ?? 0
        }
        return total
    }
}
