import CarteiraTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("carteira-server --tls-cert and carteira --tls, as processes")
struct TLSProcessTests {
    /// Certificates made in `directory`, and a server on a fresh journal there
    /// serving TLS with them.
    static func tlsServer(in directory: String) async throws -> (TestCertificates, ServerProcess) {
        let certificates = try TestCertificates(in: directory)
        let server = try await ServerProcess(
            journal: directory + "/journal",
            extra: ["--no-console", "--tls-cert", certificates.serverCertificate, "--tls-key", certificates.serverKey])
        return (certificates, server)
    }

    @Test("carteira --tls-ca registers and pays over TLS; a wrong CA is refused with a sentence and exit 3")
    func clientOverTLS() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (certificates, server) = try await Self.tlsServer(in: directory)
        #expect(server.child.output.text.contains("(TLS)"))
        let state = directory + "/state"
        let tls = ["--tls-ca", certificates.caCertificate]
        let bob = try await carteira(["register", "--json"] + tls, machine: "bob", port: server.port, state: state)
        #expect(bob.status == 0, "\(bob.errors)")
        let bobKey = try #require(try bob.object()["key"] as? String)
        let alice = try await carteira(["register"] + tls, machine: "alice", port: server.port, state: state)
        #expect(alice.status == 0, "\(alice.errors)")
        let paid = try await carteira(
            ["send", bobKey, "12,50", "--json", "--tls", "--tls-ca", certificates.caCertificate], machine: "alice",
            port: server.port, state: state)
        #expect(paid.status == 0, "\(paid.errors)")
        #expect(try paid.object()["balance_cents"] as? Int == 10_000 - 1250)

        let wrong = try await carteira(
            ["balance", "--tls-ca", certificates.otherCACertificate], machine: "alice", port: server.port, state: state)
        #expect(wrong.status == 3)
        #expect(wrong.errors.contains("presented a certificate not signed by the CA in"), "\(wrong.errors)")
        for word in ["NIOSSL", "BoringSSL", "error:", "handshakeFailed"] { #expect(!wrong.errors.contains(word)) }

        let plain = try await carteira(["balance"], machine: "alice", port: server.port, state: state)
        #expect(plain.status != 0)
        #expect(plain.errors.contains("This port speaks TLS only"), "\(plain.errors)")
        #expect(await server.stop() == 0)
    }

    @Test("the documented openssl s_client line talks to the TLS port")
    func opensslClient() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (certificates, server) = try await Self.tlsServer(in: directory)
        let client = try ChildProcess(
            "/usr/bin/env",
            [
                "openssl", "s_client", "-connect", "127.0.0.1:\(server.port)", "-quiet", "-CAfile",
                certificates.caCertificate, "-verify_return_error",
            ])
        client.write("PING\nREGISTER|carol\n")
        let answered = await client.waitForOutput { $0.contains("OK|PONG") && $0.contains("OK|carol|") }
        #expect(answered, "s_client printed: \(client.output.text) \(client.errors.text)")
        client.write("QUIT\n")
        _ = await client.exitStatus(within: 10)
        #expect(await server.stop() == 0)
    }

    @Test("--host 0.0.0.0 without TLS refuses to start and says why; --insecure-plaintext starts it")
    func nonLoopbackRefusal() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let refused = try ChildProcess(
            "carteira-server", ["--host", "0.0.0.0", "--port", "0", "--journal", directory + "/j", "--no-console"])
        #expect(await refused.exitStatus() == 1)
        _ = await eventually(within: 2) { refused.errors.isClosed }
        #expect(refused.errors.text.contains("refusing to listen on 0.0.0.0 without TLS"), "\(refused.errors.text)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/j/ledger.journal"))

        let unpaired = try ChildProcess(
            "carteira-server", ["--port", "0", "--journal", directory + "/j", "--tls-cert", "x.pem", "--no-console"])
        #expect(await unpaired.exitStatus() != 0)
        _ = await eventually(within: 2) { unpaired.errors.isClosed }
        #expect(unpaired.errors.text.contains("--tls-cert and --tls-key go together"))

        let allowed = try await ServerProcess(
            journal: directory + "/j", extra: ["--host", "0.0.0.0", "--insecure-plaintext", "--no-console"])
        let socket = try LineSocket(port: allowed.port)
        #expect(socket.request("PING") == "OK|PONG")
        #expect(await allowed.stop() == 0)
    }
}
