import CarteiraCore
import CarteiraJournal
import CarteiraProtocol
import NIOCore
import Synchronization

/// One event loop's share of the group commit: the connections on it whose
/// next answer waits for the journal. After each sync the journal thread
/// schedules one job per loop that has any (`durable()`), which releases
/// every answer up to the durable `seq` and flushes each affected connection
/// once, like Redis's `beforeSleep`.
///
/// A request's event does not wake a parked journal thread: the loop runs
/// one job at the end of its turn (`syncSoon`), after every connection's
/// lines of that turn, which syncs the batch on the loop itself when the
/// journal thread is still parked, and does nothing when it is at work.
final class LoopRelease: Sendable {
    /// Loop-confined state.
    final class Local {
        var waiting: [ObjectIdentifier: ConnectionHandler] = [:]
        var requestRate = RequestRate()
        /// A `syncSoon` job is on its way.
        var syncScheduled = false
    }

    let eventLoop: any EventLoop
    let local: NIOLoopBoundBox<Local>
    private let writer: JournalWriter
    /// True while `waiting` may be non-empty and no job is on its way.
    private let scheduled = Atomic<Bool>(false)

    /// Must be called on `eventLoop`.
    init(eventLoop: any EventLoop, writer: JournalWriter) {
        self.eventLoop = eventLoop
        self.writer = writer
        local = NIOLoopBoundBox(Local(), eventLoop: eventLoop)
    }

    /// On the loop: a connection queued an answer that waits for an event
    /// this turn appended. One job a turn, after the lines of every
    /// connection: `JournalWriter.syncPendingHere()`.
    func syncSoon() {
        guard !local.value.syncScheduled else { return }
        local.value.syncScheduled = true
        eventLoop.execute { [self] in
            local.value.syncScheduled = false
            writer.syncPendingHere()
        }
    }

    /// On the loop: `handler` has an answer waiting for the journal. The
    /// caller must then look at the durable `seq` once more: either it sees
    /// the sync that it raced with, or that sync's writer sees this flag.
    func wait(_ handler: ConnectionHandler) {
        local.value.waiting[ObjectIdentifier(handler)] = handler
        scheduled.store(true, ordering: .sequentiallyConsistent)
    }

    /// On the loop: the connection closed.
    func remove(_ handler: ConnectionHandler) {
        local.value.waiting[ObjectIdentifier(handler)] = nil
    }

    /// On the journal thread, after a sync (or once on failure).
    func journalProgressed(failed: Bool) {
        guard scheduled.exchange(false, ordering: .sequentiallyConsistent) || failed else { return }
        eventLoop.execute { self.releaseWaiting() }
    }

    private func releaseWaiting() {
        let handlers = local.value.waiting
        local.value.waiting.removeAll(keepingCapacity: true)
        for handler in handlers.values { handler.journalProgressed() }
    }
}

/// Requests a connection has had answered, readable by the console.
final class RequestCounter: Sendable {
    private let count = Atomic<Int>(0)
    func increment(by count: Int) { self.count.wrappingAdd(count, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}

/// The whole request path of one connection, on its event loop: lines are
/// cut straight from the read buffer, the session's state machine decides
/// what each needs, the ledger owner answers under its lock, and answers go
/// to the connection's output in request order once what they reflect is
/// durable. A change's event joins the journal thread's next batch; nothing
/// else per request crosses a thread, task or actor.
///
/// Backpressure: while the socket does not take output, or `maximumQueued`
/// answers wait, no more lines are read; a connection that stays unwritable
/// for `stuckTimeoutSeconds`, or whose pushes pile up past twice the bound,
/// is closed.
final class ConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let core: ServerCore
    private let release: LoopRelease
    private let counter = RequestCounter()
    private var context: ChannelHandlerContext?
    private var link: ConnectionLink?
    private var session: SessionMachine
    private var framer = LineFrameDecoder(maximumLineBytes: maximumLineBytes)
    /// Bytes read and not yet cut into lines.
    private var inbound: ByteBuffer?
    /// Answers and pushes not yet moved to `output`, in order.
    private var queue = CircularBuffer<Outgoing>(initialCapacity: 4)
    /// Bytes for the next write and flush.
    private var output: ByteBuffer?
    private var inWaitingSet = false
    private var readPending = false
    /// The last answer is in `output`: close once it is written.
    private var closeAfterOutput = false
    /// Shutting down: no more lines; close once everything owed is written.
    private var finishing = false
    /// The peer closed its side: answer the complete lines read, then close.
    private var inputClosed = false
    private var closing = false
    /// A task will cut the lines read so far.
    private var linesScheduled = false
    private var stuckTimer: Scheduled<Void>?

    init(core: ServerCore, release: LoopRelease) {
        self.core = core
        self.release = release
        session = SessionMachine(now: core.clock())
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    // MARK: Life

    func channelActive(context: ChannelHandlerContext) {
        let remote = Self.describe(context.channel.remoteAddress)
        let now = core.clock()
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let channel = context.channel
        let counter = counter
        let rateLimitKey = RateLimits.addressKey(context.channel.remoteAddress)
        link = core.ledger.admit { id in
            ConnectionLink(
                id: id, remoteAddress: remote, connectedAt: now, rateLimitKey: rateLimitKey,
                deliver: { item in bound.eventLoop.run { bound.value.enqueuePush(item) } },
                finish: { bound.eventLoop.run { bound.value.finish() } },
                close: { channel.close(promise: nil) },
                requestsServed: { counter.value })
        }
        if let link { session.share(core.ledger.rateLimits, address: rateLimitKey, state: link.rateState) }
        if link == nil {
            core.metrics?.connectionRefused()
            core.logger.warning("Refused a connection: too many clients or stopping", metadata: ["peer": "\(remote)"])
            closeAfterOutput = true
            appendOutput(Response.error(Rejection(.unavailable, "too many connections or shutting down")).wire)
            flush()
            return
        }
        core.metrics?.connectionAdmitted()
        core.logger.debug("Connection opened", metadata: ["peer": "\(remote)"])
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closing = true
        stuckTimer?.cancel()
        stuckTimer = nil
        release.remove(self)
        queue.removeAll()
        inbound = nil
        if let link {
            core.ledger.connectionClosed(link.id)
            core.metrics?.connectionClosed()
            core.connectionClosed()
        }
        core.logger.debug("Connection closed", metadata: ["peer": "\(link?.remoteAddress ?? "unknown")"])
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        core.logger.debug("Connection failed", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event as? ChannelEvent == .inputClosed {
            inputClosed = true
            processLines()
            flush()
        }
        context.fireUserInboundEventTriggered(event)
    }

    // MARK: Reading

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard link != nil, !closing else { return }
        var bytes = unwrapInboundIn(data)
        if var accumulated = inbound {
            inbound = nil  // keeps `accumulated` unique, so it grows in place
            accumulated.writeBuffer(&bytes)
            inbound = accumulated
        } else {
            inbound = bytes
        }
    }

    /// The lines of a read are handled in a task of this loop, after the
    /// loop's I/O events: when the peer reset the connection, NIO first hands
    /// over the bytes still unread and only then closes, and those lines must
    /// not be carried out (the peer gave up on them: CLIENT.md, timeouts).
    func channelReadComplete(context: ChannelHandlerContext) {
        if inbound != nil, !linesScheduled {
            linesScheduled = true
            context.eventLoop.assumeIsolated().execute { [self] in
                linesScheduled = false
                guard !closing else { return }
                processLines()
                flush()
            }
        }
        context.fireChannelReadComplete()
    }

    /// Holds the read while the connection should not take more input.
    func read(context: ChannelHandlerContext) {
        if wantsInput {
            context.read()
        } else {
            readPending = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            stuckTimer?.cancel()
            stuckTimer = nil
            pump()
        } else if stuckTimer == nil {
            let channel = context.channel
            let logger = core.logger
            stuckTimer = context.eventLoop.scheduleTask(in: .seconds(core.stuckTimeoutSeconds)) {
                logger.info("Closing a connection that stopped reading its answers")
                channel.close(promise: nil)
            }
        }
        context.fireChannelWritabilityChanged()
    }

    private var wantsInput: Bool {
        guard let context, !closing, !finishing, !inputClosed, !session.ended, !closeAfterOutput else { return false }
        return context.channel.isWritable && queue.count < core.maximumQueuedAnswers
    }

    /// Cuts and handles lines while there is room for their answers.
    private func processLines() {
        guard var buffer = inbound, !finishing, let channel = context?.channel else { return }
        inbound = nil
        // One reading of the clock for the lines of one read: they arrived
        // together, and the answers' order is their order.
        let now = core.clock()
        var answered = 0
        // No more lines while the socket does not take what is owed: what
        // the server holds for a peer that does not read stays bounded.
        while !session.ended, queue.count < core.maximumQueuedAnswers, channel.isWritable,
            let frame = framer.nextFrame(in: &buffer)
        {
            if handle(frame, now: now) { answered += 1 }
        }
        // Counted before any of the answers is written (`flush`).
        if answered > 0 {
            counter.increment(by: answered)
            release.local.value.requestRate.record(at: now, count: answered)
        }
        if buffer.readableBytes > 0 {
            if buffer.readerIndex > 1 << 16 { buffer.discardReadBytes() }
            inbound = buffer
        }
        releaseDurable()
    }

    /// Handles one line; false when it gets no answer.
    private func handle(_ frame: InboundFrame, now: Timestamp) -> Bool {
        let action: SessionAction
        var parsed: Result<Request, Rejection>? = nil
        switch frame {
        case .tooLong:
            action = session.receiveTooLong()
        case let .line(line):
            parsed = line.withUnsafeReadableBytes { Request.parse(utf8: $0) }
            action = session.receive(parsed, serving: core.ledger.serving, now: now)
        }
        let response: Response
        let kind: Outgoing.Kind
        var durableThrough: Int64 = 0
        switch action {
        case .ignore:
            return false
        case let .answer(answer):
            (response, kind) = (answer, .answer)
        case let .answerAndClose(answer):
            (response, kind) = (answer, .final)
        case let .ask(query):
            guard let link else { return false }
            let answer = core.ledger.perform(query, for: link, now: now)
            session.answered(answer.response, now: now)
            (response, kind, durableThrough) = (answer.response, .answer, answer.durableThrough)
            // An event a request appends leaves a parked journal thread
            // parked (`LedgerService.record`): this loop syncs it at the end
            // of its turn, or wakes the thread.
            if durableThrough > core.writer.durableSeq { release.syncSoon() }
        }
        // Counted before the answer can be written.
        core.metrics?.request(try? parsed?.get(), answered: response)
        enqueue(Outgoing(response, kind: kind, durableThrough: durableThrough))
        return true
    }

    // MARK: Writing

    private func enqueue(_ item: Outgoing) {
        // The common case needs no queue: nothing is waiting ahead of it and
        // what it reflects is already durable.
        if queue.isEmpty, item.durableThrough <= core.writer.durableSeq, let context, context.channel.isWritable {
            write(item)
        } else {
            queue.append(item)
        }
    }

    /// A push from another session, on this loop.
    func enqueuePush(_ item: Outgoing) {
        guard !closing, !closeAfterOutput, link != nil else { return }
        guard queue.count < 2 * core.maximumQueuedAnswers else {
            core.logger.info("Closing a connection too far behind to take its pushes")
            closing = true
            context?.close(promise: nil)
            return
        }
        queue.append(item)
        // A connection waiting for the journal is released and flushed by
        // its loop's job after the next sync, push included: releasing and
        // flushing here too would split that one write into several.
        guard !inWaitingSet else { return }
        releaseDurable()
        flush()
    }

    /// The journal made progress (or failed): the loop's job calls this.
    func journalProgressed() {
        inWaitingSet = false
        pump()
    }

    /// Shutdown: read no more, write what is owed, then close.
    func finish() {
        finishing = true
        inbound = nil
        pump()
    }

    /// Moves what is releasable to the output, takes more lines if there is
    /// room now, flushes once, and resumes reading if it was held.
    private func pump() {
        guard !closing else { return }
        releaseDurable()
        if inbound != nil { processLines() }
        flush()
        if readPending, wantsInput, let context {
            readPending = false
            context.read()
        }
    }

    /// Moves queued items whose `seq` is durable to the output, in order;
    /// after a journal failure, answers that never became durable turn into
    /// `unavailable` and pushes are dropped.
    private func releaseDurable() {
        // Moving answers to `output` writes nothing to the socket, so the
        // channel's writability cannot change in here.
        guard let context, context.channel.isWritable else { return }
        while true {
            let durable = core.writer.durableSeq
            let failed = core.journalFailed
            // The head's `seq` is read in place: copying the head would
            // retain its text.
            while !queue.isEmpty {
                guard queue[queue.startIndex].durableThrough <= durable else {
                    guard failed else { break }
                    let item = queue.removeFirst()
                    if item.kind != .push {
                        write(Outgoing(text: unavailable, kind: item.kind, durableThrough: 0))
                    }
                    continue
                }
                write(queue.removeFirst())
            }
            guard !queue.isEmpty, queue[queue.startIndex].durableThrough > durable, !failed, !inWaitingSet else {
                return
            }
            inWaitingSet = true
            release.wait(self)
            // A sync may have completed between the load and the flag.
            if core.writer.durableSeq == durable { return }
        }
    }

    private let unavailable = Response.error(ServingState.journalUnavailable).wire

    private func write(_ item: Outgoing) {
        switch item.body {
        case let .text(text): appendOutput(text)
        case let .sent(tx, balance, again): appendSentLine(tx: tx, balance: balance, again: again)
        }
        if item.kind == .final {
            closeAfterOutput = true
            queue.removeAll()
        }
    }

    private func appendSentLine(tx: TxID, balance: Int64, again: Bool) {
        let capacity = Response.sentLineCapacity(txBytes: tx.text.utf8.count)
        makeOutput(capacity: capacity)
        output?.writeWithUnsafeMutableBytes(minimumWritableBytes: capacity) { bytes in
            Response.writeSentLine(tx: tx, balance: balance, again: again, into: bytes)
        }
    }

    private func appendOutput(_ text: String) {
        makeOutput(capacity: text.utf8.count)
        output?.writeString(text)
    }

    /// The output buffer, made on the first write after a flush.
    private func makeOutput(capacity: Int) {
        if output == nil, let context {
            output = context.channel.allocator.buffer(capacity: max(64, capacity))
        }
    }

    /// Writes and flushes the output once; closes the connection when it
    /// has written its last answer.
    private func flush() {
        guard let context, !closing else { return }
        let done =
            closeAfterOutput
            || (queue.isEmpty
                && (finishing || (inputClosed && inbound.map { !$0.readableBytesView.contains(newline) } ?? true)))
        guard let bytes = output, bytes.readableBytes > 0 else {
            if done { close(context) }
            return
        }
        output = nil
        if done {
            closing = true
            let channel = context.channel
            let written = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(wrapOutboundOut(bytes), promise: written)
            written.futureResult.whenComplete { _ in channel.close(promise: nil) }
        } else {
            context.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
        }
    }

    private func close(_ context: ChannelHandlerContext) {
        closing = true
        context.close(promise: nil)
    }

    /// `127.0.0.1:55980`, not SwiftNIO's `[IPv4]127.0.0.1/127.0.0.1:55980`.
    static func describe(_ address: SocketAddress?) -> String {
        guard let address, let ip = address.ipAddress, let port = address.port else { return "unknown" }
        if case .v6 = address { return "[\(ip)]:\(port)" }
        return "\(ip):\(port)"
    }
}

private let newline = UInt8(ascii: "\n")

extension EventLoop {
    /// Runs `body` now when on this loop, else as a job on it.
    func run(_ body: @escaping @Sendable () -> Void) {
        if inEventLoop { body() } else { execute(body) }
    }
}
