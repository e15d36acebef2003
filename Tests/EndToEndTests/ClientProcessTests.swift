import CarteiraTestSupport
import Foundation
import Testing

/// Runs `carteira` against `server` with its own state directory.
struct ClientRunner {
    let port: Int
    let stateDirectory: String

    func run(_ arguments: [String], machine: String) async throws -> (status: Int32?, output: String, errors: String) {
        try await runToEnd(
            "carteira",
            ["--server", "127.0.0.1:\(port)", "--state-dir", stateDirectory, "--machine", machine] + arguments)
    }
}

@Suite("The carteira client run as a process against a real server", .timeLimit(.minutes(2)))
struct ClientProcessTests {
    @Test("Every subcommand works end to end and exits 0; refusals exit 1, bad usage 2, no server 3")
    func subcommandsAndExitCodes() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try await ServerProcess(journal: directory + "/journal")
        let client = ClientRunner(port: server.port, stateDirectory: directory + "/state")

        let registered = try await client.run(["register"], machine: "alice")
        #expect(registered.status == 0)
        #expect(registered.output.contains("R$ 100,00"))
        let bobJSON = try await client.run(["register", "--json"], machine: "bob")
        #expect(bobJSON.status == 0)
        let bob = try #require(
            try JSONSerialization.jsonObject(with: Data(bobJSON.output.utf8)) as? [String: Any])
        #expect(bob["balance_cents"] as? Int == 10_000)

        // The token file is private to its owner.
        let tokenFiles = try FileManager.default.subpathsOfDirectory(atPath: directory + "/state")
            .filter { $0.hasSuffix("alice.token") }
        let tokenPath = directory + "/state/" + (try #require(tokenFiles.first))
        let mode = try #require(FileManager.default.attributesOfItem(atPath: tokenPath)[.posixPermissions] as? Int)
        #expect(mode == 0o600)

        let key = try await client.run(["key"], machine: "bob")
        #expect(key.status == 0)
        let bobKey = key.output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(bobKey.count == 36)

        #expect(try await client.run(["check", bobKey], machine: "alice").output.contains("bob"))
        let sent = try await client.run(["send", bobKey, "50", "--request-id", "pay-1"], machine: "alice")
        #expect(sent.status == 0)
        #expect(sent.output.contains("R$ 50,00"))
        // The same request id again pays nothing more.
        #expect(try await client.run(["send", bobKey, "50,00", "--request-id", "pay-1"], machine: "alice").status == 0)
        let balance = try await client.run(["balance", "--json"], machine: "bob")
        let balanceObject = try #require(
            try JSONSerialization.jsonObject(with: Data(balance.output.utf8)) as? [String: Any])
        #expect(balanceObject["balance_cents"] as? Int == 15_000)
        #expect(try await client.run(["whoami"], machine: "alice").output.contains("R$ 50,00"))
        #expect(try await client.run(["history"], machine: "bob").output.contains("alice"))
        let rotated = try await client.run(["rotate"], machine: "bob")
        #expect(rotated.status == 0)
        #expect(rotated.output.trimmingCharacters(in: .whitespacesAndNewlines) != bobKey)

        // Refusals: exit 1 with the code on standard error (JSON with --json).
        let poor = try await client.run(["send", bobKey, "500"], machine: "alice")
        #expect(poor.status == 1)
        #expect(poor.errors.contains("insufficient_funds"))
        let poorJSON = try await client.run(["--json", "send", bobKey, "500"], machine: "alice")
        #expect(poorJSON.status == 1)
        let refusal = try #require(
            try JSONSerialization.jsonObject(with: Data(poorJSON.errors.utf8)) as? [String: Any])
        #expect(refusal["error"] as? String == "insufficient_funds")
        let unknown = try await client.run(["check", "0f8d3c1e-6b2a-4c9e-9a7d-3e5f1b2c4d6e"], machine: "alice")
        #expect(unknown.status == 1 && unknown.errors.contains("unknown_key"))
        let stranger = try await client.run(["balance"], machine: "carol")
        #expect(stranger.status == 1 && stranger.errors.contains("register"))

        // Bad usage: exit 2.
        #expect(try await client.run(["send", bobKey], machine: "alice").status == 2)
        #expect(try await client.run(["send", bobKey, "1,234"], machine: "alice").status == 2)

        #expect(await server.stop() == 0)
        // Nobody listens any more: exit 3.
        let unreachable = try await client.run(["--connect-timeout", "1", "balance"], machine: "alice")
        #expect(unreachable.status == 3)
    }

    @Test("watch prints each push as it arrives")
    func watch() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try await ServerProcess(journal: directory + "/journal")
        let client = ClientRunner(port: server.port, stateDirectory: directory + "/state")
        #expect(try await client.run(["register"], machine: "alice").status == 0)
        #expect(try await client.run(["register"], machine: "bob").status == 0)
        let bobKey = try await client.run(["key"], machine: "bob").output
            .trimmingCharacters(in: .whitespacesAndNewlines)

        let watcher = try ChildProcess(
            "carteira",
            [
                "--server", "127.0.0.1:\(server.port)", "--state-dir", directory + "/state", "--machine", "bob",
                "watch", "--json",
            ])
        // The watcher is logged in once its session shows up on the server;
        // until then, a payment's push could be missed, so pay until one arrives.
        var round = 0
        let seen = await eventually(within: 15) {
            round += 1
            _ = try? await client.run(["send", bobKey, "1", "--request-id", "w\(round)"], machine: "alice")
            return watcher.output.text.contains("received")
        }
        #expect(seen)
        let line = try #require(watcher.output.text.split(separator: "\n").first { $0.contains("received") })
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["from"] as? String == "alice")
        watcher.signal(SIGINT)
        _ = await watcher.exitStatus()
        #expect(await server.stop() == 0)
    }
}
