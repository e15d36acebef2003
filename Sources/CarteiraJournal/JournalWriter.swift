public import CarteiraCore
import Dispatch
import Foundation
import Synchronization

/// What the writer has done since the journal was opened.
public struct JournalStatistics: Sendable, Hashable {
    public var syncs: Int
    /// How many of `syncs` ran on the thread that queued the batch
    /// (`JournalWriter.syncPendingHere()`) instead of the writer's own.
    public var syncsOnCaller = 0
    public var eventsSynced: Int
    /// The last durable line's `seq`.
    public var lastSeq: Int64
    /// The journal file's size with every durable line.
    public var fileSize: Int64
    /// The last durable line's `hash`: with `lastSeq`, the head an auditor
    /// writes down for `journal verify --expect`.
    public var lastHash: String = JournalCodec.zeroHash
}

/// One batch the writer made durable: what it held and what it cost.
public struct JournalBatch: Sendable {
    /// The batch's events, in `seq` order.
    public var events: [Event]
    /// Bytes appended to the journal.
    public var bytes: Int
    /// Nanoseconds the write and the sync took together.
    public var syncNanoseconds: Int64
    /// It ran on the thread that queued it (`JournalWriter.syncPendingHere`),
    /// not on the writer's own.
    public var ranOnCaller = false
}

/// What the writer tells its owner after each batch, on the thread that ran
/// it.
public enum JournalProgress: Sendable {
    /// Every line up to this `seq` is on stable storage.
    case durable(through: Int64, batch: JournalBatch)
    /// A write or sync failed: nothing more will ever become durable.
    case failed
}

/// Group commit (JOURNAL.md, Durability). One owner calls `append` in `seq`
/// order, which only queues the event; a dedicated thread takes everything
/// pending, encodes it onto the hash chain (`JournalEncoder`), writes it with
/// one `append`, syncs once, publishes the durable `seq`, tells the owner
/// (`onProgress`) and resumes every waiter whose line is durable. While a
/// sync runs, new events gather into the next batch, so `append` never waits
/// for the disk, and the owner's lock is never held for encoding or hashing.
///
/// A batch can also run on the caller's thread: an owner that queues with
/// `append(_:wakeWriter: false)` promises to call `syncPendingHere()` soon
/// after (an event loop does at the end of its turn), and when the writer
/// thread is parked then, the batch is written and synced right there. On a
/// lightly loaded server that saves the two thread wake-ups of a round trip
/// through the writer thread, as Redis saves them by syncing on its one
/// thread; under load the thread is busy, the call does nothing, and group
/// commit runs on the thread as before.
///
/// After a failed write or sync nothing more is ever acknowledged: every
/// current and later `waitDurable` throws `.closed`.
///
/// The writer thread keeps the writer alive until `shutdown()`.
public final class JournalWriter: Sendable {
    private struct Waiter {
        typealias Continuation = CheckedContinuation<Result<Void, JournalError>, Never>
        var seq: Int64
        var continuation: Continuation
    }

    private struct State {
        var pending: [Event] = []
        /// The last `seq` appended: the next must follow it.
        var appendedSeq: Int64
        var durableSeq: Int64
        /// `statistics` but its `lastHash`, which `durableHash` holds as
        /// bytes: made a `String` when asked for, not at every sync.
        var statistics: JournalStatistics
        var durableHash: [UInt8]
        var progressHandler: (@Sendable (JournalProgress) -> Void)?
        var failure: JournalError?
        var stopping = false
        var threadExited = false
        /// The writer thread is parked on `wakeUp` and needs a signal.
        var writerIdle = false
        /// A batch is running on a caller's thread (`syncPendingHere`): the
        /// parked writer thread must not be woken until it is done.
        var batchOnCaller = false
        var waiters: [Waiter] = []
        var exitWaiters: [CheckedContinuation<Void, Never>] = []

        /// True (and the thread no longer counted as parked) when the writer
        /// thread is parked and may be woken now: not while a batch runs on
        /// a caller, which wakes it when done.
        mutating func takeParkedWriter() -> Bool {
            guard writerIdle, !batchOnCaller else { return false }
            writerIdle = false
            return true
        }

        /// The answer for a waiter on `seq` if there is one already.
        func settled(_ seq: Int64) -> Result<Void, JournalError>? {
            if durableSeq >= seq { return .success(()) }
            if failure != nil || threadExited { return .failure(.closed) }
            return nil
        }
    }

    /// The end of the hash chain and the batch buffer: only the writer's
    /// turn (`turn()`) touches them, one turn at a time.
    private struct ChainEnd {
        var hash: [UInt8]
        var bytes: [UInt8] = []
    }

    private let storage: any JournalStorage
    private let threaded: Bool
    /// A batch may run on the caller's thread: a threaded writer whose
    /// storage allows it.
    private let syncsOnCaller: Bool
    private let state: Locked<State>
    private let chain: Locked<ChainEnd>
    private let wakeUp = DispatchSemaphore(value: 0)
    /// `State.durableSeq`, readable without the lock on every answer.
    private let durable: Atomic<Int64>

    /// A writer that appends after `lastSeq`, whose line has the hash
    /// `lastHash` (64 lower-case hex bytes), to `storage` of `fileSize` bytes.
    public convenience init(storage: any JournalStorage, lastSeq: Int64, lastHash: [UInt8], fileSize: Int64) {
        self.init(storage: storage, lastSeq: lastSeq, lastHash: lastHash, fileSize: fileSize, threaded: true)
    }

    /// `threaded: false` starts no thread: whoever holds the writer runs
    /// each batch with `step()` (the deterministic simulation does).
    init(storage: any JournalStorage, lastSeq: Int64, lastHash: [UInt8], fileSize: Int64, threaded: Bool) {
        self.storage = storage
        self.threaded = threaded
        syncsOnCaller = threaded && storage.syncsOnCaller
        let statistics = JournalStatistics(syncs: 0, eventsSynced: 0, lastSeq: lastSeq, fileSize: fileSize)
        state = Locked(
            State(appendedSeq: lastSeq, durableSeq: lastSeq, statistics: statistics, durableHash: lastHash))
        durable = Atomic(lastSeq)
        chain = Locked(ChainEnd(hash: lastHash))
        guard threaded else { return }
        // A thread of its own: a sync may block for milliseconds, which must
        // stall neither the cooperative pool nor an event loop.
        let thread = Thread { [self] in run() }
        thread.name = "carteira-journal"
        thread.start()
    }

    /// Queues `event` for the next batch; false (and nothing queued) once
    /// the writer has failed or is stopping. `event.seq` must follow the
    /// last appended one.
    ///
    /// `wakeWriter: false` leaves a parked writer thread parked: the caller
    /// then must call `syncPendingHere()` soon, which syncs the batch on its
    /// thread or wakes the writer's. Storage that cannot sync on a caller
    /// (`JournalStorage.syncsOnCaller`) always wakes the thread.
    @discardableResult
    public func append(_ event: Event, wakeWriter: Bool = true) -> Bool {
        let wakeNow = wakeWriter || !syncsOnCaller
        let (queued, wake) = state.withLock { state in
            guard state.failure == nil, !state.stopping else { return (false, false) }
            precondition(event.seq == state.appendedSeq + 1, "journal append out of seq order")
            state.appendedSeq = event.seq
            state.pending.append(event)
            return (true, wakeNow && state.takeParkedWriter())
        }
        if wake { wakeUp.signal() }
        return queued
    }

    /// The most events `syncPendingHere` syncs on the caller's thread; with
    /// more pending it wakes the writer thread instead.
    static let mostEventsOnCaller = 4

    /// Called soon after `append(_:wakeWriter: false)`, on a thread that may
    /// block for one sync: if a few events (`mostEventsOnCaller`) are
    /// pending and the writer thread is parked, writes and syncs them here,
    /// as the thread would, and then wakes the thread if more arrived
    /// meanwhile; with more pending it wakes the thread. When the thread is
    /// at work it does nothing: the thread takes what is pending next.
    public func syncPendingHere() {
        guard syncsOnCaller else { return }
        let (events, wakeInstead) = state.withLock { state -> ([Event]?, Bool) in
            guard state.writerIdle, !state.batchOnCaller, state.failure == nil, !state.pending.isEmpty else {
                return (nil, false)
            }
            // More than a few: the server is busy, the two wake-ups are
            // shared by many events, and the caller has better to do than
            // wait for a sync.
            guard state.pending.count <= Self.mostEventsOnCaller else { return (nil, state.takeParkedWriter()) }
            state.batchOnCaller = true
            defer { state.pending = [] }
            return (state.pending, false)
        }
        if wakeInstead { wakeUp.signal() }
        guard let events else { return }
        runBatch(events, onCaller: true)
        let wake = state.withLock { state in
            state.batchOnCaller = false
            let owed = !state.pending.isEmpty || state.stopping || state.failure != nil
            return owed && state.takeParkedWriter()
        }
        if wake { wakeUp.signal() }
    }

    /// Returns once the line with `seq` is on stable storage (at once if it
    /// is already). Throws `.closed` if the writer failed or shut down first.
    /// Not cancellable: the answer depends on the disk, not on the caller.
    public func waitDurable(through seq: Int64) async throws(JournalError) {
        if let settled = state.withLock({ $0.settled(seq) }) { return try settled.get() }
        let result = await withCheckedContinuation { (continuation: Waiter.Continuation) in
            let settled = state.withLock { state in
                let settled = state.settled(seq)
                if settled == nil { state.waiters.append(Waiter(seq: seq, continuation: continuation)) }
                return settled
            }
            if let settled { continuation.resume(returning: settled) }
        }
        try result.get()
    }

    /// The last `seq` on stable storage. Sequentially consistent: a reader
    /// that then finds nothing scheduled for it knows the writer will see
    /// what it published before this load.
    public var durableSeq: Int64 { durable.load(ordering: .sequentiallyConsistent) }

    /// Called after every synced batch and once on failure, on the thread
    /// that ran the batch (the writer's, or a caller's in
    /// `syncPendingHere`), so the owner can release what waited for the disk
    /// with one job per batch. Set it before the first `append`.
    public func onProgress(_ handler: @escaping @Sendable (JournalProgress) -> Void) {
        state.withLock { $0.progressHandler = handler }
    }

    /// The write or sync error that stopped the writer, if one did.
    public var failure: JournalError? { state.withLock { $0.failure } }

    public func statistics() -> JournalStatistics {
        let (statistics, hash) = state.withLock { ($0.statistics, $0.durableHash) }
        var result = statistics
        result.lastHash = String(decoding: hash, as: UTF8.self)
        return result
    }

    /// Writes and syncs what is pending, then stops the writer thread. Later
    /// appends are dropped and their waiters throw `.closed`.
    public func shutdown() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let (exited, wake) = state.withLock { state in
                state.stopping = true
                if state.threadExited { return (true, false) }
                state.exitWaiters.append(continuation)
                return (false, state.takeParkedWriter())
            }
            if wake { wakeUp.signal() }
            if exited { continuation.resume() }
        }
    }

    // MARK: The writer thread

    private enum Step {
        case write([Event])
        case park
        case exit
    }

    /// What one turn of the writer did.
    enum Turn {
        /// Wrote and synced a batch, or failed doing so.
        case wrote
        /// Nothing pending (a thread parks until `append` wakes it).
        case idle
        /// Failed earlier, or stopping with nothing pending: every waiter
        /// has been answered.
        case exited
    }

    /// The writer thread: it alone holds the end of the hash chain.
    private func run() {
        while true {
            switch turn() {
            case .wrote: continue
            case .idle: wakeUp.wait()
            case .exited: return
            }
        }
    }

    /// Without a thread (`threaded: false`): takes everything pending and
    /// writes and syncs it as one batch, exactly as the thread would, on the
    /// caller's thread. What `.idle` and `.exited` mean is as for the thread.
    func step() -> Turn {
        precondition(!threaded, "a threaded writer runs its own batches")
        return turn()
    }

    /// One batch: the writer's whole work between two parks.
    private func turn() -> Turn {
        let step = state.withLock { state -> Step in
            if state.failure != nil { return .exit }
            if !state.pending.isEmpty {
                defer { state.pending = [] }
                return .write(state.pending)
            }
            if state.stopping { return .exit }
            if threaded { state.writerIdle = true }
            return .park
        }
        switch step {
        case .park:
            return .idle
        case .exit:
            finish()
            return .exited
        case let .write(events):
            runBatch(events, onCaller: false)
            return .wrote
        }
    }

    /// Encodes `events` onto the chain, writes them with one append, syncs
    /// once, and then publishes or fails: one batch, on whichever thread
    /// took it (only one at a time does).
    private func runBatch(_ events: [Event], onCaller: Bool) {
        let written = chain.withLock {
            chain -> Result<(bytes: Int, nanoseconds: Int64, hash: [UInt8]), JournalError> in
            chain.bytes.removeAll(keepingCapacity: true)
            // By index: a `for … in` would copy each event, retaining its strings.
            for index in events.indices {
                JournalEncoder.appendLine(events[index], chainHash: &chain.hash, to: &chain.bytes)
            }
            do {
                let started = DispatchTime.now().uptimeNanoseconds
                try storage.append(chain.bytes)
                try storage.sync()
                let took = Int64(clamping: DispatchTime.now().uptimeNanoseconds &- started)
                return .success((chain.bytes.count, took, chain.hash))
            } catch {
                return .failure(error as? JournalError ?? .io("\(error)"))
            }
        }
        switch written {
        case let .success(written):
            complete(
                JournalBatch(
                    events: events, bytes: written.bytes, syncNanoseconds: written.nanoseconds,
                    ranOnCaller: onCaller),
                lastHash: written.hash)
        case let .failure(error): fail(error)
        }
    }

    private func complete(_ batch: JournalBatch, lastHash: [UInt8]) {
        let lastSeq = batch.events[batch.events.count - 1].seq
        let (ready, handler) = state.withLock { state in
            state.durableSeq = lastSeq
            durable.store(lastSeq, ordering: .sequentiallyConsistent)
            state.statistics.syncs += 1
            if batch.ranOnCaller { state.statistics.syncsOnCaller += 1 }
            state.statistics.eventsSynced += batch.events.count
            state.statistics.fileSize += Int64(batch.bytes)
            state.statistics.lastSeq = lastSeq
            state.durableHash = lastHash
            var ready: [Waiter] = []
            state.waiters.removeAll { waiter in
                guard waiter.seq <= lastSeq else { return false }
                ready.append(waiter)
                return true
            }
            return (ready, state.progressHandler)
        }
        handler?(.durable(through: lastSeq, batch: batch))
        for waiter in ready { waiter.continuation.resume(returning: .success(())) }
    }

    private func fail(_ error: JournalError) {
        let (waiters, handler) = state.withLock { state in
            state.failure = error
            state.pending = []
            defer { state.waiters = [] }
            return (state.waiters, state.progressHandler)
        }
        handler?(.failed)
        for waiter in waiters { waiter.continuation.resume(returning: .failure(.closed)) }
    }

    private func finish() {
        let (waiters, exitWaiters) = state.withLock { state in
            state.threadExited = true
            defer {
                state.waiters = []
                state.exitWaiters = []
            }
            return (state.waiters, state.exitWaiters)
        }
        for waiter in waiters { waiter.continuation.resume(returning: .failure(.closed)) }
        for continuation in exitWaiters { continuation.resume() }
    }
}
