import CarteiraClient
import CarteiraCore
import CarteiraProtocol
import CarteiraServer
import CarteiraTestSupport
import Logging
import NIOPosix
import Testing

private let timeout = Duration.seconds(3)

/// The servers' own loops, apart from the singleton the clients use: a
/// server syncs its journal on its loop when idle, and in production no
/// client shares that loop (as `serverEventLoops` in CarteiraServerTests).
private let serverEventLoops = MultiThreadedEventLoopGroup(numberOfThreads: 1)

/// A real server on 127.0.0.1 (TLS when `tls` is given), with certificates
/// made at run time; stopped and removed after `body`.
private func withServer(
    tls: Bool = true, host: String = "127.0.0.1", misnamed: Bool = false,
    _ body: (CarteiraServer, TestCertificates) async throws -> Void
) async throws {
    let directory = try TemporaryDirectory(prefix: "carteira-tls")
    defer { directory.remove() }
    let certificates = try TestCertificates(in: directory.path)
    var logger = Logger(label: "tls-test")
    logger.logLevel = .critical
    var configuration = ServerConfiguration(host: host, port: 0, journalDirectory: directory.path + "/journal")
    if tls {
        configuration.tls =
            misnamed
            ? ServerTLS(certificatePath: certificates.misnamedCertificate, keyPath: certificates.misnamedKey)
            : ServerTLS(certificatePath: certificates.serverCertificate, keyPath: certificates.serverKey)
    }
    let server = try await CarteiraServer.start(
        configuration: configuration, logger: logger, eventLoopGroup: serverEventLoops)
    let task = Task { try await server.run() }
    do {
        try await body(server, certificates)
    } catch {
        server.shutdown()
        _ = try? await task.value
        throw error
    }
    server.shutdown()
    try await task.value
}

private func local(_ server: CarteiraServer, host: String = "127.0.0.1") -> ServerAddress {
    ServerAddress(host: host, port: server.port)
}

/// The error `connect` throws; a connection that wrongly opens is recorded
/// as an issue and closed properly.
private func connectError(_ address: ServerAddress, tls: ClientTLS, timeout: Duration = timeout) async -> ClientError? {
    do {
        let connection = try await CarteiraConnection.connect(to: address, timeout: timeout, tls: tls)
        Issue.record("connected to \(address), expected a refusal")
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await connection.run() }
            connection.close()
        }
        return nil
    } catch {
        return error
    }
}

/// No library's own words reach people.
private func expectHuman(_ message: String) {
    for word in ["NIOSSL", "BoringSSL", "error:", "OPENSSL", "handshakeFailed", "sslError"] {
        #expect(!message.contains(word), "\(message) shows \(word)")
    }
}

@Suite("TLS on the wire, over real sockets")
struct TLSTests {
    @Test("a TLS client trusting the server's CA registers, pays and reads its balance")
    func roundTrip() async throws {
        try await withServer { server, certificates in
            let tls = try ClientTLS(caFile: certificates.caCertificate)
            let bobKey = try await CarteiraConnection.withConnection(to: local(server), timeout: timeout, tls: tls) {
                bob in
                guard
                    case let .registered(_, _, key, _) = try await bob.perform(
                        .register(try #require(MachineName("bob"))))
                else { throw TestCertificates.Failure(description: "no registration") }
                return key
            }
            try await CarteiraConnection.withConnection(to: local(server), timeout: timeout, tls: tls) { alice in
                #expect(try await alice.perform(.ping) == .pong)
                _ = try await alice.perform(.register(try #require(MachineName("alice"))))
                let sent = try await alice.perform(
                    .send(keyText: KeyText(bobKey.text), amount: Centavos(2550), requestID: nil))
                guard case let .sent(_, balance, again) = sent else {
                    Issue.record("expected a transfer, got \(sent)")
                    return
                }
                #expect(balance == Centavos(10_000 - 2550))
                #expect(!again)
            }
        }
    }

    @Test("a plaintext client on the TLS port gets one plain answer saying so, and TLS peers are not disturbed")
    func plaintextClientOnTLSPort() async throws {
        try await withServer { server, certificates in
            let tls = try ClientTLS(caFile: certificates.caCertificate)
            try await CarteiraConnection.withConnection(to: local(server), timeout: timeout, tls: tls) { honest in
                #expect(try await honest.perform(.ping) == .pong)
                // `nc` on the TLS port: a plain answer, then the server closes.
                let plain = try LineSocket(port: server.port)
                let answer = try #require(plain.request("PING"))
                #expect(answer == "ERR|bad_request|this port speaks TLS only; connect with TLS (carteira --tls)")
                #expect(plain.readLine() == nil)
                // The client library without --tls says the same, as a refusal.
                let error = await #expect(throws: ClientError.self) {
                    try await CarteiraConnection.withConnection(to: local(server), timeout: timeout) {
                        try await $0.perform(.ping)
                    }
                }
                #expect(error?.message.contains("speaks TLS only") == true)
                // The TLS connection opened before all this still works.
                #expect(try await honest.perform(.ping) == .pong)
                #expect(await eventually(within: 5) { server.openConnectionCount == 1 })
            }
        }
    }

    @Test("a server certificate not signed by the trusted CA is refused with a sentence, before anything is sent")
    func wrongCA() async throws {
        try await withServer { server, certificates in
            let tls = try ClientTLS(caFile: certificates.otherCACertificate)
            let error = await connectError(local(server), tls: tls)
            let message = try #require(error?.message)
            #expect(error?.code == "tls_failed")
            #expect(message.contains("not signed by the CA in \(certificates.otherCACertificate)"))
            expectHuman(message)
            // System trust does not know the test CA either.
            let system = await connectError(local(server), tls: try ClientTLS())
            #expect(system?.message.contains("the system's trusted authorities") == true)
            #expect(await eventually(within: 5) { server.openConnectionCount == 0 })
        }
    }

    @Test("a certificate of the trusted CA issued for another name is refused, by IP address and by host name")
    func hostnameMismatch() async throws {
        try await withServer(misnamed: true) { server, certificates in
            let tls = try ClientTLS(caFile: certificates.caCertificate)
            for host in ["127.0.0.1", "localhost"] {
                let error = await connectError(local(server, host: host), tls: tls)
                let message = try #require(error?.message)
                #expect(message.contains("not for \(host)"), "\(message)")
                expectHuman(message)
            }
        }
    }

    @Test("a TLS client against a plaintext server fails with a sentence naming --tls-cert")
    func tlsClientOnPlaintextServer() async throws {
        try await withServer(tls: false) { server, certificates in
            let tls = try ClientTLS(caFile: certificates.caCertificate)
            let error = await connectError(local(server), tls: tls, timeout: .seconds(1))
            let message = try #require(error?.message)
            #expect(error?.code == "tls_failed")
            #expect(message.contains("--tls-cert"))
            expectHuman(message)
        }
    }

    @Test("a CA file that is missing or not PEM is named in the error")
    func unreadableCA() throws {
        #expect(
            throws: ClientError.tlsFailed(
                reason: "cannot read the CA certificate /nonexistent/ca.pem (--tls-ca): no such file")
        ) {
            try ClientTLS(caFile: "/nonexistent/ca.pem")
        }
        let directory = try TemporaryDirectory(prefix: "carteira-tls")
        defer { directory.remove() }
        let junk = directory.path + "/junk.pem"
        try "not a certificate\n".write(toFile: junk, atomically: true, encoding: .utf8)
        let error = #expect(throws: ClientError.self) { try ClientTLS(caFile: junk) }
        #expect(
            error?.message.contains("it is not a PEM certificate") == true
                || error?.message.contains("holds no PEM") == true)
    }

    @Test("a non-loopback address without TLS refuses to start and says why; --insecure-plaintext or TLS starts it")
    func nonLoopbackNeedsTLS() async throws {
        let directory = try TemporaryDirectory(prefix: "carteira-tls")
        defer { directory.remove() }
        let logger = Logger(label: "tls-test")
        var configuration = ServerConfiguration(host: "0.0.0.0", port: 0, journalDirectory: directory.path + "/j")
        let error = await #expect(throws: ServerStartFailure.self) {
            _ = try await CarteiraServer.start(configuration: configuration, logger: logger)
        }
        #expect(error?.message.contains("refusing to listen on 0.0.0.0 without TLS") == true)
        #expect(error?.message.contains("--insecure-plaintext") == true)
        configuration.insecurePlaintext = true
        let plaintext = try await CarteiraServer.start(
            configuration: configuration, logger: logger, eventLoopGroup: serverEventLoops)
        let task = Task { try await plaintext.run() }
        plaintext.shutdown()
        try await task.value
        try await withServer(host: "0.0.0.0") { server, certificates in
            let tls = try ClientTLS(caFile: certificates.caCertificate)
            try await CarteiraConnection.withConnection(to: local(server), timeout: timeout, tls: tls) {
                connection throws in
                #expect(try await connection.perform(.ping) == .pong)
            }
        }
    }

    @Test("loopback is 127.0.0.0/8, ::1 and localhost; everything else needs TLS")
    func loopbackHosts() {
        for host in ["127.0.0.1", "127.1.2.3", "::1", "localhost"] { #expect(isLoopbackHost(host), "\(host)") }
        for host in ["0.0.0.0", "::", "10.0.0.1", "192.168.1.10", "::ffff:127.0.0.1", "example.org", "128.0.0.1"] {
            #expect(!isLoopbackHost(host), "\(host)")
        }
    }

    @Test("a missing certificate, a missing key and a key of another certificate stop the start with a sentence")
    func badServerFiles() async throws {
        let directory = try TemporaryDirectory(prefix: "carteira-tls")
        defer { directory.remove() }
        let certificates = try TestCertificates(in: directory.path)
        let logger = Logger(label: "tls-test")
        let cases: [(String, String, String)] = [
            (
                "/nonexistent/cert.pem", certificates.serverKey,
                "cannot read the TLS certificate /nonexistent/cert.pem: no such file"
            ),
            (
                certificates.serverCertificate, "/nonexistent/key.pem",
                "cannot read the TLS key /nonexistent/key.pem: no such file"
            ),
            (
                certificates.serverKey, certificates.serverKey,
                "cannot read the TLS certificate \(certificates.serverKey)"
            ),
            (certificates.caCertificate, certificates.serverKey, "does not belong to the certificate"),
        ]
        for (certificate, key, expected) in cases {
            var configuration = ServerConfiguration(port: 0, journalDirectory: directory.path + "/j")
            configuration.tls = ServerTLS(certificatePath: certificate, keyPath: key)
            let error = await #expect(throws: ServerStartFailure.self) {
                _ = try await CarteiraServer.start(configuration: configuration, logger: logger)
            }
            #expect(error?.message.contains(expected) == true, "\(error?.message ?? "-") lacks \(expected)")
        }
    }
}
