import CarteiraTestSupport
import Foundation
import Testing

@Suite("watch across server restarts", .timeLimit(.minutes(2)))
struct ClientWatchTests {
    /// Lines of `text` that are JSON objects.
    private func objects(_ text: String) -> [[String: Any]] {
        text.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    @Test("a payment made while watch was reconnecting after a real restart is shown, once, before live pushes resume")
    func gapFilledAfterRestart() async throws {
        let peers = try await TwoPeers.start()
        let journal = peers.directory + "/journal"
        let port = peers.port
        let watcher = try ChildProcess(
            "carteira",
            ["--server", "127.0.0.1:\(port)", "--state-dir", peers.state, "--machine", "bob", "--json", "watch"])
        defer { watcher.signal(SIGINT) }
        #expect(await eventually(within: 10) { watcher.errors.text.contains("\"watching\"") })

        // A live payment first.
        #expect(try await peers.run(["send", peers.bobKey, "1"], as: "alice").status == 0)
        #expect(
            await eventually(within: 10) { objects(watcher.output.text).contains { $0["amount_cents"] as? Int == 100 } }
        )

        // Restart: stop the server; while watch reconnects, the same journal is
        // served on another port, where alice pays 7; then it comes back on the first port.
        #expect(await peers.server.stop() == 0)
        #expect(await eventually(within: 10) { watcher.errors.text.contains("\"reconnecting\"") })
        let elsewhere = try await ServerProcess(journal: journal)
        let folder = peers.state + "/127.0.0.1_\(elsewhere.port)"
        try FileManager.default.createDirectory(
            atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try FileManager.default.copyItem(
            atPath: peers.state + "/127.0.0.1_\(port)/alice.token", toPath: folder + "/alice.token")
        let gapPayment = try await carteira(
            ["send", peers.bobKey, "7"], machine: "alice", port: elsewhere.port, state: peers.state)
        #expect(gapPayment.status == 0, "\(gapPayment.errors)")
        #expect(await elsewhere.stop() == 0)
        #expect(!objects(watcher.output.text).contains { $0["amount_cents"] as? Int == 700 })
        let back = try await ServerProcess(journal: journal, port: port)
        defer { back.child.signal(SIGTERM) }

        #expect(await eventually(within: 15) { watcher.errors.text.contains("\"reconnected\"") })
        #expect(
            await eventually(within: 10) { objects(watcher.output.text).contains { $0["amount_cents"] as? Int == 700 } }
        )
        // Live pushes resume after the missed payment.
        let bobKey = try await carteira(["key"], machine: "bob", port: port, state: peers.state).output
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(
            try await carteira(["send", bobKey, "3"], machine: "alice", port: port, state: peers.state).status == 0)
        #expect(
            await eventually(within: 10) { objects(watcher.output.text).contains { $0["amount_cents"] as? Int == 300 } }
        )

        let shown = objects(watcher.output.text).filter { $0["event"] as? String == "received" }
        #expect(shown.map { $0["amount_cents"] as? Int } == [100, 700, 300])
        #expect(shown[1]["missed"] as? Bool == true)
        #expect(shown[1]["from"] as? String == "alice")
        watcher.signal(SIGINT)
        _ = await watcher.exitStatus()
        _ = await back.stop()
        try? FileManager.default.removeItem(atPath: peers.directory)
    }
}
