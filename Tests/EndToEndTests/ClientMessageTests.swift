import CarteiraTestSupport
import Foundation
import Testing

@Suite("carteira's messages are for people", .timeLimit(.minutes(2)))
struct ClientMessageTests {
    @Test(
        "usage errors are one line and a hint, JSON with --json; amounts and keys are trimmed; -1 and 1.234,56 are named"
    )
    func usage() async throws {
        let peers = try await TwoPeers.start()
        let missing = try await peers.run(["send", peers.bobKey], as: "alice")
        #expect(missing.status == 2)
        let lines = missing.errors.split(separator: "\n")
        #expect(lines.count == 2, "\(missing.errors)")
        #expect(missing.errors.contains("(see `carteira send --help`)"))
        #expect(!missing.errors.contains("USAGE"))
        let json = try await peers.run(["--json", "send", peers.bobKey], as: "alice")
        #expect(json.status == 2)
        let object = try json.errorObject()
        #expect(object["error"] as? String == "usage")
        #expect(object["hint"] as? String == "see `carteira send --help`")

        let negative = try await peers.run(["send", peers.bobKey, "-1"], as: "alice")
        #expect(negative.status == 2)
        #expect(negative.errors.contains("-1 is a negative amount"))
        let thousands = try await peers.run(["send", peers.bobKey, "1.234,56"], as: "alice")
        #expect(thousands.status == 2)
        #expect(thousands.errors.contains("no thousands separator"))
        let trimmed = try await peers.run(["send", " \(peers.bobKey) ", " 2,50 "], as: "alice")
        #expect(trimmed.status == 0, "\(trimmed.errors)")
        #expect(trimmed.output.contains("Sent R$ 2,50"))

        let version = try await peers.run(["--version"], as: "alice")
        #expect(version.output.hasPrefix("carteira "))
        let help = try await peers.run(["--help"], as: "alice")
        #expect(help.output.contains("Exit status:"))
        #expect(help.output.contains("3  server unreachable, silent past --timeout, or not Carteira"))
        await peers.stop()
    }

    @Test(
        "tokens: none saved is said at once without connecting; a stale one names its file; an open one is refused; localhost shares"
    )
    func tokens() async throws {
        let peers = try await TwoPeers.start()
        // Nothing saved for carol: told at once, although nothing answers on that port.
        let listener = try SilentListener()
        defer { withExtendedLifetime(listener) {} }
        let stranger = try await carteira(
            ["--connect-timeout", "5", "balance"], machine: "carol", port: listener.port, state: peers.state)
        #expect(stranger.status == 1)
        #expect(stranger.seconds < 2)
        #expect(stranger.errors.contains("no saved token"))
        #expect(stranger.errors.contains("carol.token"))

        // localhost is the same server as 127.0.0.1: alice's token is found.
        let local = try await carteira(
            ["balance"], machine: "alice", port: peers.port, state: peers.state, host: "localhost")
        #expect(local.status == 0, "\(local.errors)")

        let token = peers.state + "/127.0.0.1_\(peers.port)/alice.token"
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: token)
        let open = try await peers.run(["balance"], as: "alice")
        #expect(open.status == 1)
        #expect(open.errors.contains("too open"))
        #expect(open.errors.contains("chmod 600 \(token)"))
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: token)

        try "0123456789abcdef0123456789abcdef\n".write(toFile: token, atomically: false, encoding: .utf8)
        let stale = try await peers.run(["balance"], as: "alice")
        #expect(stale.status == 1)
        #expect(stale.errors.contains(token))
        #expect(stale.errors.contains("delete that file and run `carteira register --machine alice`"))
        await peers.stop()
    }

    @Test("connection refused names the address; a server that is not Carteira is exit 3")
    func servers() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let refusing = try SilentListener(listening: false)
        defer { withExtendedLifetime(refusing) {} }
        let closedPort = refusing.port
        let refused = try await carteira(
            ["--connect-timeout", "1", "register"], machine: "alice", port: closedPort, state: directory)
        #expect(refused.status == 3)
        #expect(refused.errors.contains("connection refused: is carteira-server running on 127.0.0.1:\(closedPort)?"))
        #expect(!refused.errors.contains("NIO"))

        let web = try SilentListener()
        defer { withExtendedLifetime(web) {} }
        web.answerOnce(with: "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        let notCarteira = try await carteira(
            ["--connect-timeout", "2", "register"], machine: "alice", port: web.port, state: directory)
        #expect(notCarteira.status == 3)
        #expect(notCarteira.errors.contains("does not speak the Carteira protocol"))
    }
}
