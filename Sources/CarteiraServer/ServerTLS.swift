import CarteiraCore
import CarteiraProtocol
public import NIOCore
import NIOSSL

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Why the server did not start, written for people.
public struct ServerStartFailure: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The certificate and key `--tls-cert` and `--tls-key` name (PEM files).
public struct ServerTLS: Sendable, Hashable {
    public var certificatePath: String
    public var keyPath: String

    public init(certificatePath: String, keyPath: String) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
    }

    /// Reads both files and builds the context every connection shares.
    /// A file that is missing or not PEM is named in the failure.
    func makeContext() throws(ServerStartFailure) -> NIOSSLContext {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificatePath)
        } catch {
            throw ServerStartFailure(
                "cannot read the TLS certificate \(certificatePath): \(readProblem(certificatePath, "a PEM certificate"))"
            )
        }
        guard !chain.isEmpty else {
            throw ServerStartFailure("the TLS certificate file \(certificatePath) holds no PEM certificate")
        }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
        } catch {
            throw ServerStartFailure("cannot read the TLS key \(keyPath): \(readProblem(keyPath, "a PEM private key"))")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw ServerStartFailure(
                "the TLS key \(keyPath) does not belong to the certificate \(certificatePath), or one of them is unusable"
            )
        }
    }
}

/// The TLS context every connection of a listener shares, built once from
/// `ServerTLS`'s files (the server's listener, and a standby's).
public struct ServerTLSContext: Sendable {
    private let context: NIOSSLContext

    /// Reads and checks the files; the failure names the one at fault.
    public init(_ tls: ServerTLS) throws(ServerStartFailure) {
        context = try tls.makeContext()
    }

    /// TLS only: a plaintext peer is told so and closed.
    public func addHandlers(to pipeline: ChannelPipeline.SynchronousOperations) throws {
        try pipeline.addHandlers(PlaintextOnTLSPortGuard(), NIOSSLServerHandler(context: context))
    }
}

/// Why a file could not be read: its own errno, or "not <form>".
private func readProblem(_ path: String, _ form: String) -> String {
    if access(path, F_OK) != 0 { return "no such file" }
    if access(path, R_OK) != 0 { return "permission denied" }
    return "it is not \(form)"
}

/// Whether `host` (a `--host` value) can only be reached from this machine:
/// `localhost`, 127.0.0.0/8 or `::1`.
public func isLoopbackHost(_ host: String) -> Bool {
    if host == "localhost" { return true }
    var v4 = in_addr()
    if inet_pton(AF_INET, host, &v4) == 1 {
        return UInt32(bigEndian: v4.s_addr) >> 24 == 127
    }
    var v6 = in6_addr()
    if inet_pton(AF_INET6, host, &v6) == 1 {
        let bytes = withUnsafeBytes(of: v6) { Array($0) }
        return bytes.dropLast().allSatisfy { $0 == 0 } && bytes.last == 1
    }
    return false
}

/// First in a TLS port's pipeline: a connection whose first byte is not a
/// TLS handshake record (a plaintext peer, `nc`) gets one plain answer that
/// says so and is closed, instead of a TLS alert it cannot read. A TLS
/// peer's bytes pass on untouched and this handler leaves the pipeline.
final class PlaintextOnTLSPortGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    static let answer = Response.error(
        Rejection(.badRequest, "this port speaks TLS only; connect with TLS (carteira --tls)")
    ).wire

    /// The content type of a TLS handshake record.
    private static let handshakeRecord: UInt8 = 0x16
    private var decided = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !decided else {
            context.fireChannelRead(data)
            return
        }
        let bytes = unwrapInboundIn(data)
        guard let first = bytes.getInteger(at: bytes.readerIndex, as: UInt8.self) else { return }
        decided = true
        if first == Self.handshakeRecord {
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        var reply = context.channel.allocator.buffer(capacity: Self.answer.utf8.count)
        reply.writeString(Self.answer)
        // Written from this context, nearest the socket: the TLS handler
        // after it never sees it.
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(reply)).whenComplete { _ in channel.close(promise: nil) }
    }
}
