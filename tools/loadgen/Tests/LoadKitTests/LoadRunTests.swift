import CarteiraJournal
import CarteiraServer
import Foundation
import Logging
import Testing

@testable import LoadKit

/// A real server on 127.0.0.1, port 0, over a fresh temporary journal.
private func withServer(_ body: (Int) async throws -> Void) async throws -> VerifySummary {
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("carteira-load-test-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let configuration = ServerConfiguration(host: "127.0.0.1", port: 0, journalDirectory: directory)
    var logger = Logger(label: "carteira-load-test")
    logger.logLevel = .warning
    let server = try await CarteiraServer.start(configuration: configuration, logger: logger)
    let serving = Task { try await server.run() }
    do {
        try await body(server.port)
    } catch {
        server.shutdown()
        try? await serving.value
        throw error
    }
    server.shutdown()
    try await serving.value
    return try JournalVerifier.verify(directory: directory)
}

@Test(
    "A send run journals one transfer per OK; without a wallets file it registers one wallet per connection, at least 2",
    arguments: [(connections: 3, pipeline: 4, machines: 3), (connections: 1, pipeline: 1, machines: 2)])
func sendRunJournalsEveryOK(connections: Int, pipeline: Int, machines: Int) async throws {
    var result: LoadResult?
    let summary = try await withServer { port in
        let endpoint = try #require(ServerEndpoint("127.0.0.1:\(port)"))
        let plan = LoadPlan(
            endpoint: endpoint, connections: connections, seconds: 1, pipeline: pipeline, mode: .send,
            prefix: LoadPlan.freshPrefix())
        result = try await LoadRunner.run(plan)
    }
    let run = try #require(result)
    #expect(run.ok > 0)
    #expect(run.errors.isEmpty)
    #expect(run.latencyNanoseconds.count == run.ok)
    #expect(run.elapsedSeconds >= 1)
    #expect(summary.transfers == run.ok)
    #expect(summary.machines == machines)
    #expect(summary.totalMoney.value == Int64(machines) * 10_000)
}

@Test("Runs sharing a wallets file register the wallets once and log in as them; money stays put")
func walletsFileIsReused() async throws {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("wallets-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    var results: [LoadResult] = []
    let summary = try await withServer { port in
        let endpoint = try #require(ServerEndpoint("127.0.0.1:\(port)"))
        let setup = LoadPlan(
            endpoint: endpoint, connections: 1, seconds: 1, pipeline: 1, mode: .send, prefix: LoadPlan.freshPrefix(),
            wallets: 20, walletsFile: path)
        #expect(try await LoadRunner.prepareWallets(setup).count == 20)
        for (connections, pipeline) in [(4, 1), (3, 8)] {
            let plan = LoadPlan(
                endpoint: endpoint, connections: connections, seconds: 1, pipeline: pipeline, mode: .send,
                prefix: LoadPlan.freshPrefix(), wallets: 20, walletsFile: path, requestIDs: pipeline > 1)
            results.append(try await LoadRunner.run(plan))
        }
    }
    #expect(try WalletFile.load(path).count == 20)
    #expect(summary.machines == 20)
    #expect(summary.totalMoney.value == 20 * 10_000)
    #expect(summary.transfers == results.reduce(0) { $0 + $1.ok })
    for result in results {
        #expect(result.ok > 0)
        #expect(result.errors.isEmpty)
        #expect(result.cpuSeconds > 0)
    }
}

@Test("A ping run answers every request and writes nothing but the genesis line")
func pingRunTouchesNoJournal() async throws {
    var result: LoadResult?
    let summary = try await withServer { port in
        let endpoint = try #require(ServerEndpoint("127.0.0.1:\(port)"))
        let plan = LoadPlan(
            endpoint: endpoint, connections: 4, seconds: 1, pipeline: 8, mode: .ping, prefix: LoadPlan.freshPrefix())
        result = try await LoadRunner.run(plan)
    }
    let run = try #require(result)
    #expect(run.ok > 0)
    #expect(run.errorCount == 0)
    #expect(summary.events == 1)
}

@Test("A run against a port where nothing listens fails instead of hanging")
func runWithoutServerFails() async throws {
    // A port a server listened on a moment ago and no longer does.
    var closedPort = 0
    _ = try await withServer { closedPort = $0 }
    let endpoint = try #require(ServerEndpoint("127.0.0.1:\(closedPort)"))
    let plan = LoadPlan(endpoint: endpoint, connections: 2, seconds: 1, pipeline: 1, mode: .send, prefix: "lgnone")
    await #expect(throws: (any Error).self) { try await LoadRunner.run(plan) }
}
