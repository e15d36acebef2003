import CarteiraCore
public import CarteiraProtocol
import NIOCore
import NIOExtras
import NIOPosix

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A server's answer to one request, as read off the wire.
public enum ServerReply: Sendable, Hashable {
    /// `OK|field|...`: the fields after `OK`.
    case ok([String])
    /// `ERR|code|message`.
    case error(code: String, message: String)
    /// The `OK|n` of `HISTORY` and the n `TX|` lines after it.
    case history([HistoryEntry])
}

/// One TCP connection to the server.
///
/// `request(_:)` may be called from many tasks at once: answers come back in
/// request order and are matched to the requests in the order they were
/// written, so requests pipeline. `EVT|` lines go to `pushes`. Nothing moves
/// until `run()` is running; `withConnection` does both.
public final class CarteiraConnection: Sendable {
    /// Server pushes in the order they arrived; finishes when the connection closes.
    public let pushes: AsyncStream<Push>
    private let pushSink: AsyncStream<Push>.Continuation
    private let outgoing: AsyncStream<ByteBuffer>
    private let outgoingSink: AsyncStream<ByteBuffer>.Continuation
    private let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
    private let state = Locked(State())
    /// The server this connection goes to, for messages.
    public let address: ServerAddress

    /// A server line never legitimately comes near this; it bounds what a
    /// misbehaving server can make us buffer.
    static let maximumBufferBytes = 4 * maximumLineBytes

    private struct Pending {
        var isHistory: Bool
        var continuation: CheckedContinuation<ServerReply, any Error>
    }

    private struct State {
        var pending: [Pending] = []
        /// A `HISTORY` answer whose `TX|` lines are still arriving.
        var collecting: (pending: Pending, remaining: Int, entries: [HistoryEntry])?
        /// Set once the connection is closed: later requests fail with it.
        var closedReason: ClientError?
    }

    private init(channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>, address: ServerAddress) {
        self.channel = channel
        self.address = address
        (pushes, pushSink) = AsyncStream.makeStream(of: Push.self)
        (outgoing, outgoingSink) = AsyncStream.makeStream(of: ByteBuffer.self)
    }

    /// Opens a connection; one attempt, bounded by `timeout`. With `tls` the
    /// TLS handshake (and the server's certificate check) must also finish
    /// within `timeout`, before anything is sent.
    public static func connect(
        to address: ServerAddress,
        timeout: Duration,
        tls: ClientTLS? = nil
    ) async throws(ClientError) -> CarteiraConnection {
        let milliseconds = max(
            1, timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        let handshake: EventLoopPromise<Void>?
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            let group = MultiThreadedEventLoopGroup.singleton
            let promise = tls.map { _ in group.any().makePromise(of: Void.self) }
            handshake = promise
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(.milliseconds(milliseconds))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connect(host: address.host, port: address.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls, let promise {
                            try channel.pipeline.syncOperations.addHandlers(
                                try tls.makeHandler(host: address.host), HandshakeWaiter(promise: promise))
                        }
                        try channel.pipeline.syncOperations.addHandler(
                            ByteToMessageHandler(LineBasedFrameDecoder(), maximumBufferSize: maximumBufferBytes))
                        return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw .cannotConnect(address, reason: describeConnectFailure(error, to: address, timeout: timeout))
        }
        if let tls, let handshake {
            let timer = channel.channel.eventLoop.scheduleTask(in: .milliseconds(milliseconds)) {
                handshake.fail(HandshakeTimeout())
            }
            do {
                try await handshake.futureResult.get()
                timer.cancel()
            } catch {
                timer.cancel()
                // Closes the socket and finishes the async channel's writer.
                try? await channel.executeThenClose { _, _ in }
                if error is HandshakeTimeout {
                    throw .tlsFailed(
                        reason: "no TLS handshake with \(address) within \(formatSeconds(timeout.seconds)): "
                            + "is the server started with --tls-cert and --tls-key?")
                }
                throw .tlsFailed(reason: describeHandshakeFailure(error, to: address, tls: tls))
            }
        }
        return CarteiraConnection(channel: channel, address: address)
    }

    /// Connects, runs `body` with the connection, then closes it.
    public static func withConnection<Result: Sendable>(
        to address: ServerAddress,
        timeout: Duration,
        tls: ClientTLS? = nil,
        _ body: (CarteiraConnection) async throws -> Result
    ) async throws -> Result {
        let connection = try await connect(to: address, timeout: timeout, tls: tls)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await connection.run() }
            defer { connection.close() }
            return try await body(connection)
        }
    }

    /// Moves lines both ways until the connection closes (by either side, by
    /// `close()`, or on a protocol violation), then fails what is still waiting.
    public func run() async {
        var reason = ClientError.connectionLost
        do {
            try await channel.executeThenClose { inbound, outbound in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await line in self.outgoing { try await outbound.write(line) }
                    }
                    for try await frame in inbound {
                        if let violation = self.receive(String(buffer: frame)) { throw violation }
                    }
                    group.cancelAll()
                }
            }
        } catch let error as ClientError {
            reason = error
        } catch {
            // A read or write failure is the connection going away.
        }
        finish(reason)
    }

    /// Closes the connection; waiting requests fail with `connectionLost`.
    public func close() {
        outgoingSink.finish()
        channel.channel.close(promise: nil)
    }

    /// Gives up on the connection: waiting requests fail with `reason`, and
    /// the socket is reset (`SO_LINGER` 0) rather than closed in order, so
    /// nothing still queued towards the server is delivered after we stopped
    /// waiting for it, and the server sees the connection fail at once.
    public func abandon(because reason: ClientError) {
        state.withLock { state in
            if state.closedReason == nil { state.closedReason = reason }
        }
        outgoingSink.finish()
        let channel = channel.channel
        guard let socket = channel as? any SocketOptionProvider else {
            channel.close(promise: nil)
            return
        }
        socket.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
    }

    /// Whether the connection has closed.
    public var isClosed: Bool { state.withLock { $0.closedReason != nil } }

    /// Sends `request` and waits for its answer.
    public func request(_ request: Request) async throws -> ServerReply {
        let line = ByteBuffer(string: request.line)
        let isHistory = if case .history = request { true } else { false }
        return try await withCheckedThrowingContinuation { continuation in
            let refusal: ClientError? = state.withLock { state in
                if let reason = state.closedReason { return reason }
                // Queued and written under one lock: the queue order is the wire order.
                state.pending.append(Pending(isHistory: isHistory, continuation: continuation))
                outgoingSink.yield(line)
                return nil
            }
            if let refusal { continuation.resume(throwing: refusal) }
        }
    }

    /// Sends `request` and decodes its answer; an `ERR` answer throws `ClientError.refused`.
    public func perform(_ request: Request) async throws -> Response {
        try Response(reply: try await self.request(request), to: request)
    }

    /// `perform(_:)` with a deadline: when no answer came by then, the
    /// connection is abandoned (see `abandon(because:)`) and this throws
    /// `timeoutError`. A request given up on is never carried out later from
    /// this connection, because the connection is gone.
    public func perform(
        _ request: Request, deadline: ContinuousClock.Instant, timeoutError: ClientError
    ) async throws -> Response {
        try await withThrowingTaskGroup(of: Response?.self) { group in
            group.addTask { try await self.perform(request) }
            group.addTask {
                // Cancelled when the answer came first: then nothing is abandoned.
                do { try await Task.sleep(until: deadline, clock: .continuous) } catch { return nil }
                self.abandon(because: timeoutError)
                return nil
            }
            while let result = try await group.next() {
                if let response = result {
                    group.cancelAll()
                    return response
                }
            }
            throw timeoutError
        }
    }

    private enum Delivery {
        case none
        case answer(Pending, ServerReply)
        case violation(Pending?, ClientError)
    }

    /// Handles one line; returns a violation that ends the connection.
    private func receive(_ text: String) -> ClientError? {
        let line = ServerLine.parse(text[...])
        switch line {
        case let .push(push):
            pushSink.yield(push)
            return nil
        case let .unknown(raw) where raw.hasPrefix("EVT|"):
            return nil  // an event of a kind this client does not know
        default:
            break
        }
        let delivery: Delivery = state.withLock { state in
            if var collecting = state.collecting {
                guard case let .historyEntry(entry) = line else {
                    state.collecting = nil
                    return .violation(
                        collecting.pending, .protocolViolation("expected a TX line, got: \(text.prefix(80))"))
                }
                collecting.entries.append(entry)
                collecting.remaining -= 1
                guard collecting.remaining == 0 else {
                    state.collecting = collecting
                    return .none
                }
                state.collecting = nil
                return .answer(collecting.pending, .history(collecting.entries))
            }
            guard !state.pending.isEmpty else {
                return .violation(nil, .protocolViolation("an answer with no request: \(text.prefix(80))"))
            }
            let head = state.pending.removeFirst()
            switch line {
            case let .ok(fields) where head.isHistory:
                guard fields.count == 1, let count = Int(fields[0]), (0...HistoryLimit.range.upperBound).contains(count)
                else {
                    return .violation(head, .protocolViolation("bad HISTORY count: \(text.prefix(80))"))
                }
                if count == 0 { return .answer(head, .history([])) }
                state.collecting = (head, count, [])
                return .none
            case let .ok(fields):
                return .answer(head, .ok(fields))
            case let .error(code, message):
                return .answer(head, .error(code: code, message: message))
            default:
                return .violation(head, .protocolViolation("not an answer: \(text.prefix(80))"))
            }
        }
        switch delivery {
        case .none:
            return nil
        case let .answer(pending, reply):
            pending.continuation.resume(returning: reply)
            return nil
        case let .violation(pending, error):
            pending?.continuation.resume(throwing: error)
            return error
        }
    }

    private func finish(_ reason: ClientError) {
        let (waiting, reason): ([Pending], ClientError) = state.withLock { state in
            if state.closedReason == nil { state.closedReason = reason }
            let reason = state.closedReason ?? reason
            var waiting = state.pending
            if let collecting = state.collecting { waiting.insert(collecting.pending, at: 0) }
            state.pending = []
            state.collecting = nil
            return (waiting, reason)
        }
        outgoingSink.finish()
        pushSink.finish()
        for pending in waiting { pending.continuation.resume(throwing: reason) }
    }
}

private struct HandshakeTimeout: Error {}

/// A connection failure for people: never SwiftNIO's own description.
func describeConnectFailure(_ error: any Error, to address: ServerAddress, timeout: Duration) -> String {
    var causes: [any Error] = [error]
    if let failure = error as? NIOConnectionError {
        if failure.connectionErrors.isEmpty, failure.dnsAError != nil || failure.dnsAAAAError != nil {
            return "cannot find the host \(address.host): check the name in --server or $CARTEIRA_SERVER"
        }
        causes = failure.connectionErrors.map(\.error)
    }
    var codes: [Int32] = []
    for cause in causes {
        if let io = cause as? IOError { codes.append(io.errnoCode) }
        if case ChannelError.connectTimeout = cause {
            return
                "no connection to \(address) within \(formatSeconds(timeout.seconds)): is the host up and the port right?"
        }
    }
    if codes.contains(ECONNREFUSED) {
        return "connection refused: is carteira-server running on \(address)?"
    }
    if let code = codes.first {
        return "cannot connect to \(address): \(String(cString: strerror(code)).lowercased())"
    }
    if case ChannelError.connectTimeout = error {
        return
            "no connection to \(address) within \(formatSeconds(timeout.seconds)): is the host up and the port right?"
    }
    return "cannot connect to \(address)"
}

extension Duration {
    /// Whole and fractional seconds.
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
