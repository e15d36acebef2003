import CarteiraCore
import CarteiraJournal
import CarteiraServer
import CarteiraTestSupport
import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing

/// The event loops the tests' servers run on, apart from the singleton the
/// tests' clients use. A server syncs its journal on its own loop when the
/// journal is idle (docs/architecture.md); in production no client shares
/// that loop, so here none does either: a slow disk under many servers at
/// once must not hold up the clients' loops in the same process.
let serverEventLoops = MultiThreadedEventLoopGroup(numberOfThreads: 2)

/// A real server on 127.0.0.1, port 0, with a real journal directory.
struct TestServer {
    let server: CarteiraServer
    let task: Task<Void, any Error>

    var port: Int { server.port }

    static func start(
        journal: String, keyTTLSeconds: Int64 = 180, keyGraceSeconds: Int64 = 30, maximumConnections: Int = 10_000,
        initialBalance: Centavos = Centavos(10_000), maximumQueuedAnswers: Int = 1024,
        stuckConnectionTimeoutSeconds: Int64 = 30, metrics: Bool = false,
        storage: ((String) throws -> any JournalStorage)? = nil, eventLoopGroup: any EventLoopGroup = serverEventLoops
    ) async throws -> TestServer {
        var logger = Logger(label: "test-server")
        logger.logLevel = .warning
        let configuration = ServerConfiguration(
            host: "127.0.0.1", port: 0, journalDirectory: journal, initialBalance: initialBalance,
            keyTTLSeconds: keyTTLSeconds, keyGraceSeconds: keyGraceSeconds, maximumConnections: maximumConnections,
            maximumQueuedAnswersPerConnection: maximumQueuedAnswers,
            stuckConnectionTimeoutSeconds: stuckConnectionTimeoutSeconds, shutdownGraceSeconds: 5,
            metrics: metrics ? ("127.0.0.1", 0) : nil)
        let server = try await CarteiraServer.start(
            configuration: configuration, logger: logger, eventLoopGroup: eventLoopGroup, storage: storage)
        let task = Task { try await server.run() }
        return TestServer(server: server, task: task)
    }

    /// Stops gracefully and waits until the journal is closed.
    func stop() async throws {
        server.shutdown()
        try await task.value
    }
}

/// Hands every line a peer receives to an async stream.
private final class LineCollector: ChannelInboundHandler {
    typealias InboundIn = InboundFrame
    let continuation: AsyncThrowingStream<String, any Error>.Continuation

    init(continuation: AsyncThrowingStream<String, any Error>.Continuation) {
        self.continuation = continuation
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case let .line(buffer) = unwrapInboundIn(data) { continuation.yield(String(buffer: buffer)) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        continuation.finish()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        continuation.finish(throwing: error)
        context.close(promise: nil)
    }
}

/// Runs `body` with a fresh server and two registered peers, alice and bob,
/// given with their keys; closes everything afterwards.
func withPeers(
    maximumConnections: Int = 10_000,
    _ body: (TestServer, TestPeer, TestPeer, String, String) async throws -> Void
) async throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let server = try await TestServer.start(journal: directory.path, maximumConnections: maximumConnections)
    let alice = try await TestPeer(port: server.port)
    let bob = try await TestPeer(port: server.port)
    let aliceKey = try await alice.register("alice").key
    let bobKey = try await bob.register("bob").key
    try await body(server, alice, bob, aliceKey, bobKey)
    await alice.close()
    await bob.close()
    try await server.stop()
}

/// A peer speaking the line protocol over a real socket, as `nc` would.
final class TestPeer {
    private let channel: any Channel
    private var lines: AsyncThrowingStream<String, any Error>.AsyncIterator
    /// `EVT|` lines seen while waiting for answers.
    private(set) var pushes: [String] = []

    init(port: Int) async throws {
        let (stream, continuation) = AsyncThrowingStream<String, any Error>.makeStream()
        self.channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(LineFrameDecoder(maximumLineBytes: 1 << 20)))
                    try channel.pipeline.syncOperations.addHandler(LineCollector(continuation: continuation))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        self.lines = stream.makeAsyncIterator()
    }

    func write(_ text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text))
    }

    func writeBytes(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }

    /// The next line from the server, pushes included; `nil` once closed.
    func nextLine() async throws -> String? {
        try await lines.next()
    }

    /// The next line that is not a push.
    func nextAnswer() async throws -> String? {
        while let line = try await nextLine() {
            if line.hasPrefix("EVT|") { pushes.append(line) } else { return line }
        }
        return nil
    }

    /// Sends one request line and returns its (first) answer line.
    func request(_ line: String) async throws -> String {
        try await write(line + "\n")
        return try #require(try await nextAnswer(), "connection closed before answering \(line)")
    }

    /// The next push, from those already seen or from the wire.
    func nextPush() async throws -> String? {
        if !pushes.isEmpty { return pushes.removeFirst() }
        return try await nextLine()
    }

    func close() async {
        try? await channel.close()
    }

    /// Registers `name`; returns (token, key, cents).
    func register(_ name: String) async throws -> (token: String, key: String, cents: Int64) {
        let fields = try await request("REGISTER|\(name)").split(separator: "|").map(String.init)
        try #require(fields.count == 5 && fields[0] == "OK", "REGISTER failed: \(fields)")
        return (fields[2], fields[3], try #require(Int64(fields[4])))
    }
}

/// Splits an answer into its fields.
func fields(_ line: String) -> [String] {
    line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
}

/// The error code of an `ERR|` line, or `nil`.
func errorCode(_ line: String) -> String? {
    let parts = fields(line)
    return parts.first == "ERR" && parts.count >= 2 ? parts[1] : nil
}

/// Journal storage that works until `failing` is set, then throws on every
/// write: a disk that fills up or goes away. A real file, so a batch may run
/// on an event loop while the journal thread is parked, as with the file.
final class BreakableStorage: JournalStorage {
    private let real: PosixJournalStorage
    let failing = Locked(false)
    var syncsOnCaller: Bool { true }

    init(path: String) throws {
        real = try PosixJournalStorage(path: path)
    }

    func append(_ bytes: [UInt8]) throws {
        if failing.withLock({ $0 }) { throw JournalError.io("injected write failure") }
        try real.append(bytes)
    }

    func sync() throws {
        if failing.withLock({ $0 }) { throw JournalError.io("injected sync failure") }
        try real.sync()
    }

    func truncate(to offset: Int64) throws { try real.truncate(to: offset) }
    func size() throws -> Int64 { try real.size() }
}
