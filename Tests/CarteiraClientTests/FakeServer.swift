import CarteiraCore
import CarteiraTestSupport
import NIOCore
import NIOExtras
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// A scripted stand-in for the server on 127.0.0.1, port 0: every line a
/// client writes goes to `script`, whose action says what to write back.
final class FakeServer: Sendable {
    enum Action: Sendable {
        /// Write this text (any number of lines, each ending in `\n`).
        case reply(String)
        /// Close the connection without answering.
        case close
        /// Write this text, then close the connection.
        case replyThenClose(String)
        /// Read the line and never answer it (a server that hangs).
        case ignore
    }

    /// `line` without its ending; `connection` counts accepted connections from 1.
    typealias Script = @Sendable (_ line: String, _ connection: Int) -> Action

    let port: Int
    private let received = Locked<[(connection: Int, line: String)]>([])
    private let accepted = Locked(0)
    private let ended = Locked(0)

    private init(port: Int) {
        self.port = port
    }

    /// Every line received so far, in order, with its connection number.
    var lines: [(connection: Int, line: String)] { received.withLock { $0 } }
    var connections: Int { accepted.withLock { $0 } }
    /// Connections that ended, by either side.
    var closedConnections: Int { ended.withLock { $0 } }

    static func with<Result: Sendable>(
        _ script: @escaping Script,
        _ body: (FakeServer) async throws -> Result
    ) async throws -> Result {
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineBasedFrameDecoder()))
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let server = FakeServer(port: listener.channel.localAddress?.port ?? 0)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await listener.executeThenClose { inbound in
                    try await withThrowingDiscardingTaskGroup { connections in
                        for try await child in inbound {
                            let number = server.accepted.withLock { count in
                                count += 1
                                return count
                            }
                            connections.addTask { await server.serve(child, number: number, script: script) }
                        }
                    }
                }
            }
            defer {
                group.cancelAll()
                listener.channel.close(promise: nil)
            }
            return try await body(server)
        }
    }

    private func serve(_ child: NIOAsyncChannel<ByteBuffer, ByteBuffer>, number: Int, script: Script) async {
        try? await child.executeThenClose { inbound, outbound in
            for try await frame in inbound {
                let line = String(buffer: frame)
                received.withLock { $0.append((number, line)) }
                switch script(line, number) {
                case let .reply(text): try await outbound.write(ByteBuffer(string: text))
                case .close: return
                case let .replyThenClose(text):
                    try await outbound.write(ByteBuffer(string: text))
                    return
                case .ignore: continue
                }
            }
        }
        ended.withLock { $0 += 1 }
    }
}

/// Canned keys and names the fake answers with.
enum Fixture {
    static let aliceKey = "0f8d3c1e-6b2a-4c9e-9a7d-3e5f1b2c4d6e"
    static let bobKey = "7c1e9b2a-4d3f-4e8a-b1c2-d3e4f5a6b7c8"
    static let token = "5be1c0c3a9f04e1d8f1b2c3d4e5f6a7b"
    static let expires: Int64 = 1_790_000_000_000

    /// What a well-behaved server answers for `alice`; `nil` for lines it has no answer for.
    static func answer(_ line: String) -> String? {
        let fields = line.split(separator: "|", omittingEmptySubsequences: false)
        switch fields.first.map({ $0.uppercased() }) {
        case "PING": return "OK|PONG\n"
        case "REGISTER": return "OK|\(fields.count > 1 ? fields[1] : "")|\(token)|\(aliceKey)|10000\n"
        case "LOGIN": return "OK|\(fields.count > 1 ? fields[1] : "")|\(aliceKey)|10000\n"
        case "WHOAMI": return "OK|alice|\(aliceKey)|10000|\(expires)\n"
        case "BALANCE": return "OK|10000\n"
        case "KEY": return "OK|\(aliceKey)|\(expires)\n"
        case "ROTATE": return "OK|\(bobKey)|\(expires + 180_000)\n"
        case "CHECK":
            return fields.count > 1 && fields[1] == Substring(bobKey) ? "OK|bob\n" : "ERR|unknown_key|no such key\n"
        case "SEND": return "OK|T000000000042|5000\n"
        case "HISTORY":
            return
                "OK|2\nTX|T000000000042|1789000000000|alice|bob|5000\nTX|T000000000041|1788000000000|bob|alice|2500\n"
        case "QUIT": return "OK|BYE\n"
        default: return nil
        }
    }

    static let wellBehaved: FakeServer.Script = { line, _ in .reply(answer(line) ?? "ERR|unknown_command|what?\n") }
}

/// A port on 127.0.0.1 that refuses connections for as long as this lives:
/// bound but never listening, so no other test's server can take it
/// meanwhile (a port freed by closing a listener can be handed out again).
final class RefusingPort {
    let port: Int
    private let descriptor: Int32

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.descriptor = descriptor
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0
            }
        }
        guard bound else { throw RefusingPortError() }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(descriptor) }
}

struct RefusingPortError: Error {}
