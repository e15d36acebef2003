import NIOCore
import NIOTLS
import NIOSSL

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// How the client checks a TLS server (`carteira --tls [--tls-ca FILE]`):
/// its certificate must chain to the system's trusted authorities, or to the
/// certificates in `caFile`, and name the host of `--server` (a DNS name, or
/// an IP address in the certificate's IP entries). Built once; every
/// connection of a session shares it.
public struct ClientTLS: Sendable {
    public let caFile: String?
    let context: NIOSSLContext

    /// Fails with a sentence when `caFile` cannot be read or holds no PEM
    /// certificate.
    public init(caFile: String? = nil) throws(ClientError) {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .fullVerification
        if let caFile {
            let roots: [NIOSSLCertificate]
            do {
                roots = try NIOSSLCertificate.fromPEMFile(caFile)
            } catch {
                let problem =
                    access(caFile, F_OK) != 0
                    ? "no such file" : access(caFile, R_OK) != 0 ? "permission denied" : "it is not a PEM certificate"
                throw .tlsFailed(reason: "cannot read the CA certificate \(caFile) (--tls-ca): \(problem)")
            }
            guard !roots.isEmpty else {
                throw .tlsFailed(reason: "the CA file \(caFile) (--tls-ca) holds no PEM certificate")
            }
            configuration.trustRoots = .certificates(roots)
        }
        do {
            context = try NIOSSLContext(configuration: configuration)
        } catch {
            throw .tlsFailed(reason: "cannot set up TLS: the system's trusted certificates could not be loaded")
        }
        self.caFile = caFile
    }

    /// The pipeline's TLS handler for `host`: SNI and the name check use a
    /// DNS name; an IP address is checked against the certificate's IP
    /// entries (SNI may not carry one).
    func makeHandler(host: String) throws -> NIOSSLClientHandler {
        try NIOSSLClientHandler(context: context, serverHostname: isIPAddress(host) ? nil : host)
    }

    /// Who the client trusts, for messages.
    var trustDescription: String {
        caFile.map { "the CA in \($0)" } ?? "the system's trusted authorities"
    }
}

private func isIPAddress(_ host: String) -> Bool {
    var v4 = in_addr()
    var v6 = in6_addr()
    return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
}

/// After the TLS handler: completes `promise` once the handshake is done,
/// or fails it with the first error (or the close) before that.
final class HandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let promise: EventLoopPromise<Void>
    private var done = false

    init(promise: EventLoopPromise<Void>) {
        self.promise = promise
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls, !done {
            done = true
            promise.succeed()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !done {
            done = true
            promise.fail(error)
        }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !done {
            done = true
            promise.fail(ChannelError.eof)
        }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if !done {
            done = true
            promise.fail(ChannelError.eof)
        }
    }
}

/// A failed TLS handshake for people: never NIOSSL's or BoringSSL's text.
func describeHandshakeFailure(_ error: any Error, to address: ServerAddress, tls: ClientTLS) -> String {
    if let extra = error as? NIOSSLExtraError, extra == .failedToValidateHostname {
        return "the server at \(address) presented a certificate that is not for \(address.host): "
            + "connect with the name or address the certificate was issued for"
    }
    if case let NIOSSLError.handshakeFailed(inner) = error {
        // BoringSSL's reason codes name the cause; only the code is looked at.
        let detail = String(describing: inner)
        if detail.contains("CERTIFICATE_VERIFY_FAILED") {
            return "the server at \(address) presented a certificate not signed by \(tls.trustDescription): "
                + "refusing to send anything to it (use --tls-ca with the server's CA certificate)"
        }
        if detail.contains("WRONG_VERSION_NUMBER") || detail.contains("PACKET_LENGTH_TOO_LONG")
            || detail.contains("UNEXPECTED_RECORD") || detail.contains("HTTP_REQUEST")
        {
            return "the server at \(address) does not speak TLS: is it started with --tls-cert and --tls-key?"
        }
        return
            "the TLS handshake with \(address) failed: the server and this client share no usable TLS version or cipher"
    }
    if case ChannelError.eof = error {
        return "the server at \(address) closed the connection during the TLS handshake: "
            + "is it started with --tls-cert and --tls-key?"
    }
    if case NIOSSLError.uncleanShutdown = error {
        return "the server at \(address) closed the connection during the TLS handshake: "
            + "is it started with --tls-cert and --tls-key?"
    }
    if error is NIOSSLError {
        return "the TLS connection to \(address) failed during the handshake"
    }
    return "the TLS handshake with \(address) failed: the connection broke"
}
