import CarteiraTestSupport
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// One run of `carteira` with its own state directory.
struct ClientRun {
    var status: Int32?
    var output: String
    var errors: String
    var seconds: Double

    /// The standard output as one JSON object.
    func object() throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
    }

    /// The standard error as one JSON object.
    func errorObject() throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(errors.utf8)) as? [String: Any])
    }
}

/// Runs `carteira --server 127.0.0.1:PORT --state-dir STATE --machine MACHINE ARGS`.
func carteira(
    _ arguments: [String], machine: String, port: Int, state: String, host: String = "127.0.0.1", input: String? = nil
) async throws -> ClientRun {
    let started = ContinuousClock.now
    let run = try await runToEnd(
        "carteira", ["--server", "\(host):\(port)", "--state-dir", state, "--machine", machine] + arguments,
        input: input)
    let elapsed = ContinuousClock.now - started
    return ClientRun(
        status: run.status, output: run.output, errors: run.errors,
        seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
}

/// A listening socket on 127.0.0.1 that never accepts: the kernel completes
/// connections into its backlog, so a client connects and then hears
/// nothing, as from a server stopped with SIGSTOP.
final class SilentListener {
    let descriptor: Int32
    let port: Int

    /// `listening: false` only binds the port: connections to it are
    /// refused, and no other test's server can take it meanwhile.
    init(listening: Bool = true) throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.descriptor = descriptor
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, !listening || listen(descriptor, 16) == 0 else { throw CocoaError(.fileWriteUnknown) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// Accepts one connection, writes `banner` and closes it, on a thread
    /// of its own: a server that is not Carteira.
    func answerOnce(with banner: String) {
        let descriptor = descriptor
        Thread.detachNewThread {
            let client = accept(descriptor, nil, nil)
            guard client >= 0 else { return }
            var buffer = [UInt8](repeating: 0, count: 512)
            _ = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            let bytes = Array(banner.utf8)
            _ = bytes.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            close(client)
        }
    }

    deinit { close(descriptor) }
}

/// A server, a state directory, and alice and bob registered on it.
struct TwoPeers {
    let directory: String
    let server: ServerProcess
    var state: String { directory + "/state" }
    var port: Int { server.port }
    let bobKey: String

    static func start(serverArguments: [String] = ["--no-console"]) async throws -> TwoPeers {
        let directory = try makeTemporaryDirectory()
        let server = try await ServerProcess(journal: directory + "/journal", extra: serverArguments)
        for machine in ["alice", "bob"] {
            let run = try await carteira(["register"], machine: machine, port: server.port, state: directory + "/state")
            try #require(run.status == 0, "register \(machine): \(run.errors)")
        }
        let key = try await carteira(["key"], machine: "bob", port: server.port, state: directory + "/state")
        return TwoPeers(
            directory: directory, server: server, bobKey: key.output.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    func run(_ arguments: [String], as machine: String, input: String? = nil) async throws -> ClientRun {
        try await carteira(arguments, machine: machine, port: port, state: state, input: input)
    }

    func balanceCents(of machine: String) async throws -> Int? {
        try await run(["--json", "balance"], as: machine).object()["balance_cents"] as? Int
    }

    func stop() async {
        _ = await server.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

@Suite("The carteira client never hangs and never pays twice", .timeLimit(.minutes(2)))
struct ClientTrustTests {
    @Test("a listener that accepts and never answers: send gives up within --timeout, exit 3, naming the request id")
    func hangingServer() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let listener = try SilentListener()
        defer { withExtendedLifetime(listener) {} }
        // A saved token, so the client logs in (and waits for the answer).
        let folder = directory + "/state/127.0.0.1_\(listener.port)"
        try FileManager.default.createDirectory(
            atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let token = folder + "/alice.token"
        try "5be1c0c3a9f04e1d8f1b2c3d4e5f6a7b\n".write(toFile: token, atomically: false, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: token)

        let run = try await carteira(
            [
                "--connect-timeout", "2", "--timeout", "1", "send", "7c1e9b2a-4d3f-4e8a-b1c2-d3e4f5a6b7c8", "5",
                "--request-id", "X1",
            ],
            machine: "alice", port: listener.port, state: directory + "/state")
        #expect(run.status == 3)
        #expect(run.seconds < 6, "took \(run.seconds) s")
        #expect(run.errors.contains("did not answer within 1 s"))
        #expect(run.errors.contains("--request-id X1"))
        #expect(run.errors.contains("Nothing was sent"))
        let json = try await carteira(
            ["--json", "--timeout", "1", "balance"], machine: "alice", port: listener.port, state: directory + "/state")
        #expect(json.status == 3)
        #expect(try json.errorObject()["error"] as? String == "timed_out")
    }

    @Test("a server stopped with SIGSTOP: send gives up within --timeout, and after SIGCONT no money has moved")
    func stoppedServer() async throws {
        let peers = try await TwoPeers.start()
        peers.server.child.signal(SIGSTOP)
        let run = try await peers.run(
            ["--connect-timeout", "2", "--timeout", "1", "send", peers.bobKey, "5", "--request-id", "S1"], as: "alice")
        peers.server.child.signal(SIGCONT)
        #expect(run.status == 3)
        #expect(run.seconds < 6, "took \(run.seconds) s")
        #expect(run.errors.contains("--request-id S1"))
        #expect(try await peers.balanceCents(of: "bob") == 10_000)
        #expect(try await peers.balanceCents(of: "alice") == 10_000)
        await peers.stop()
    }

    /// The server's half of "a request given up on is never carried out
    /// later from the same connection": the client resets the connection
    /// (SO_LINGER 0) when it gives up. Linux still hands the unread bytes to a
    /// reader after the reset, and NIO reads them before it closes; the
    /// server handles a read's lines only after the loop's I/O events, by
    /// when the reset has closed the connection, so they are dropped.
    @Test(
        "a SEND written to a stopped server by a client that then reset the connection is not carried out after SIGCONT"
    )
    func resetConnectionIsNotCarriedOut() async throws {
        let peers = try await TwoPeers.start()
        let token = try String(contentsOfFile: peers.state + "/127.0.0.1_\(peers.port)/alice.token", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let script = #"""
            import socket, struct, sys, time, os, signal
            port, token, key, pid = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
            c = socket.create_connection(("127.0.0.1", port))
            c.sendall(("LOGIN|alice|%s\n" % token).encode()); c.recv(200)
            def state():
                return open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0]
            os.kill(pid, signal.SIGSTOP)
            deadline = time.time() + 10
            while state() != "T" and time.time() < deadline: time.sleep(0.01)
            # Loopback queues the bytes, then the reset, in the stopped server's socket.
            c.sendall(("SEND|%s|5|given-up\n" % key).encode())
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); c.close()
            os.kill(pid, signal.SIGCONT)
            """#
        let driver = try ChildProcess(
            "/usr/bin/env",
            [
                "python3", "-c", script, String(peers.port), token, peers.bobKey,
                String(peers.server.child.process.processIdentifier),
            ])
        #expect(await driver.exitStatus() == 0)
        #expect(try await peers.balanceCents(of: "bob") == 10_000)
        await peers.stop()
    }

    @Test("re-running send with the same request id says it was already sent and that no money moved")
    func retriedSend() async throws {
        let peers = try await TwoPeers.start()
        let first = try await peers.run(["send", peers.bobKey, "5", "--request-id", "R1"], as: "alice")
        #expect(first.status == 0)
        #expect(first.output.hasPrefix("Sent R$ 5,00"))
        let again = try await peers.run(["send", peers.bobKey, "5,00", "--request-id", "R1"], as: "alice")
        #expect(again.status == 0)
        #expect(again.output.contains("Already sent earlier (tx "))
        #expect(again.output.contains("no money moved now"))
        let json = try await peers.run(["--json", "send", peers.bobKey, "5", "--request-id", "R1"], as: "alice")
        #expect(try json.object()["already_done"] as? Bool == true)
        let fresh = try await peers.run(["--json", "send", peers.bobKey, "1"], as: "alice")
        #expect(try fresh.object()["already_done"] as? Bool == false)
        #expect(try await peers.balanceCents(of: "bob") == 10_600)
        await peers.stop()
    }

    @Test("a payment request is paid once however often it is paid; a changed or expired code is refused")
    func payTwice() async throws {
        let peers = try await TwoPeers.start()
        let request = try await peers.run(["request", "12,50", "--id", "PED1", "--city", "Recife"], as: "bob")
        #expect(request.status == 0)
        let code = request.output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(code.hasPrefix("000201"))
        #expect(code.contains("br.gov.bcb.pix0136\(peers.bobKey)"))
        #expect(code.contains("540512.50"))
        #expect(code.contains("6006RECIFE"))
        #expect(code.contains("62080504PED1"))
        #expect(request.errors.contains("key expires in"))

        let declined = try await peers.run(["pay", code], as: "alice", input: "n\n")
        #expect(declined.status == 1)
        #expect(declined.output.contains("Pay R$ 12,50 to bob, reference PED1? [y/N]"))
        #expect(declined.errors.contains("Nothing sent"))
        let paid = try await peers.run(["pay", code], as: "alice", input: "y\n")
        #expect(paid.status == 0)
        #expect(paid.output.contains("Sent R$ 12,50 to bob"))
        let twice = try await peers.run(["pay", code, "--yes"], as: "alice")
        #expect(twice.status == 0)
        #expect(twice.output.contains("Already sent earlier"))
        let json = try await peers.run(["--json", "pay", code, "--yes"], as: "alice")
        #expect(try json.object()["already_done"] as? Bool == true)
        #expect(try json.object()["request_id"] as? String == "PED1")
        #expect(try await peers.balanceCents(of: "bob") == 11_250)
        #expect(try await peers.balanceCents(of: "alice") == 8_750)

        // One changed character: the CRC no longer matches; usage error, nothing sent.
        let tampered = code.replacingOccurrences(of: "540512.50", with: "540599.50")
        let bad = try await peers.run(["pay", tampered, "--yes"], as: "alice")
        #expect(bad.status == 2)
        #expect(bad.errors.contains("damaged or was changed"))
        // Paying one's own request is refused.
        let own = try await peers.run(["pay", code, "--yes"], as: "bob")
        #expect(own.status == 1)
        #expect(own.errors.contains("That is your own payment request"))
        await peers.stop()
    }

    @Test("a code whose key has expired is refused with a clear message")
    func expiredRequest() async throws {
        let peers = try await TwoPeers.start(serverArguments: ["--no-console", "--key-ttl", "1", "--key-grace", "0"])
        let request = try await peers.run(["request", "3"], as: "bob")
        let code = request.output.trimmingCharacters(in: .whitespacesAndNewlines)
        // The key rotates within a second; wait until bob's key is another one.
        let rotated = await eventually(within: 10) {
            let key = try? await peers.run(["key"], as: "bob").output.trimmingCharacters(in: .whitespacesAndNewlines)
            return key != nil && !code.contains(key ?? "")
        }
        #expect(rotated)
        let run = try await peers.run(["pay", code, "--yes"], as: "alice")
        #expect(run.status == 1)
        #expect(run.errors.contains("This payment request has expired"))
        #expect(try await peers.balanceCents(of: "alice") == 10_000)
        await peers.stop()
    }

    @Test("history is a statement: direction, sign and the balance after each transfer; JSON keeps the fields")
    func statement() async throws {
        let peers = try await TwoPeers.start()
        #expect(try await peers.run(["send", peers.bobKey, "50"], as: "alice").status == 0)
        let aliceKey = try await peers.run(["key"], as: "alice").output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try await peers.run(["send", aliceKey, "5"], as: "bob").status == 0)
        let text = try await peers.run(["history"], as: "bob")
        let lines = text.output.split(separator: "\n").map(String.init)
        let sent = try #require(lines.first { $0.contains("sent to alice") })
        let received = try #require(lines.first { $0.contains("received from alice") })
        #expect(sent.contains("\u{2212}R$ 5,00") && sent.contains("R$ 145,00"))
        #expect(received.contains("+R$ 50,00") && received.contains("R$ 150,00"))
        #expect(try #require(lines.firstIndex(of: sent)) < (try #require(lines.firstIndex(of: received))))
        let json = try await peers.run(["--json", "history"], as: "bob").object()
        let transfers = try #require(json["transfers"] as? [[String: Any]])
        #expect(transfers.map { $0["direction"] as? String } == ["sent", "received"])
        #expect(transfers.map { $0["change_cents"] as? Int } == [-500, 5000])
        #expect(transfers.map { $0["balance_after_cents"] as? Int } == [14_500, 15_000])
        #expect(json["balance_cents"] as? Int == 14_500)
        await peers.stop()
    }
}
