import CarteiraTestSupport
import Foundation
import Testing

/// Fetches `path` from the metrics port with Python's urllib and, for a 200,
/// parses the body with the Prometheus client library's own text-format
/// parser (`prometheus_client`, installed by `.ci/run`). Prints one JSON
/// object: the status, the content type and every sample.
private let scraper = #"""
    import json, sys, urllib.request, urllib.error
    from prometheus_client.parser import text_string_to_metric_families
    port, path, method = sys.argv[1], sys.argv[2], sys.argv[3]
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            status, kind, body = answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as error:
        status, kind, body = error.code, error.headers["Content-Type"], ""
    samples, types = [], {}
    if status == 200 and method == "GET":
        for family in text_string_to_metric_families(body):
            types[family.name] = family.type
            for sample in family.samples:
                samples.append({"name": sample.name, "labels": sample.labels, "value": sample.value})
    print(json.dumps({"status": status, "type": kind, "samples": samples, "types": types}))
    """#

private struct Scrape: Decodable {
    struct Sample: Decodable {
        var name: String
        var labels: [String: String]
        var value: Double
    }
    var status: Int
    var type: String?
    var samples: [Sample]
    var types: [String: String]

    /// The value of the one sample named `name` with these labels.
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { $0.name == name && $0.labels == labels }?.value
    }
}

private func scrape(port: Int, path: String = "/metrics", method: String = "GET") throws -> Scrape {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", scraper, String(port), path, method]
    let output = Pipe()
    let errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    let problem = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    try #require(
        process.terminationStatus == 0,
        "the scraper failed (is prometheus_client installed? `pip install prometheus_client`): \(problem)")
    return try JSONDecoder().decode(Scrape.self, from: data)
}

@Suite("Prometheus metrics")
struct MetricsTests {
    @Test("a scrape parses as Prometheus text and counts requests, transfers, syncs and connections")
    func scrapeCountsWhatHappened() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let server = try await TestServer.start(journal: directory.path, metrics: true)
        let port = try #require(server.server.metricsPort, "metrics are on, so there is a port")
        let alice = try await TestPeer(port: server.port)
        let bob = try await TestPeer(port: server.port)
        _ = try await alice.register("alice")
        let bobKey = try await bob.register("bob").key
        #expect(try await alice.request("SEND|\(bobKey)|12,50|pay-1").hasPrefix("OK|"))
        #expect(try await alice.request("SEND|\(bobKey)|12,50|pay-1").hasSuffix("|again"))
        #expect(errorCode(try await alice.request("SEND|\(bobKey)|1000")) == "insufficient_funds")
        #expect(try await bob.request("PING") == "OK|PONG")
        #expect(errorCode(try await bob.request("FLY|away")) == "unknown_command")

        let metrics = try scrape(port: port)
        #expect(metrics.status == 200)
        #expect(metrics.type == "text/plain; version=0.0.4; charset=utf-8")
        let requests = "carteira_requests_total"
        #expect(metrics.value(requests, ["command": "REGISTER", "result": "ok"]) == 2)
        #expect(metrics.value(requests, ["command": "SEND", "result": "ok"]) == 2, "a retry is answered OK too")
        #expect(metrics.value(requests, ["command": "SEND", "result": "insufficient_funds"]) == 1)
        #expect(metrics.value(requests, ["command": "PING", "result": "ok"]) == 1)
        #expect(metrics.value(requests, ["command": "invalid", "result": "unknown_command"]) == 1)
        #expect(metrics.value(requests, ["command": "SEND", "result": "bad_amount"]) == nil, "none happened")
        #expect(metrics.value("carteira_transfers_total") == 1, "the retry moved no money")
        #expect(metrics.value("carteira_transferred_cents_total") == 1250)
        #expect(metrics.value("carteira_transfer_amount_cents_count") == 1)
        #expect(metrics.value("carteira_transfer_amount_cents_bucket", ["le": "2000.0"]) == 1)
        #expect(metrics.value("carteira_transfer_amount_cents_bucket", ["le": "1000.0"]) == 0)
        #expect(metrics.value("carteira_registrations_total") == 2)
        #expect(metrics.value("carteira_connections_open") == 2)
        #expect(metrics.value("carteira_connections_total", ["result": "accepted"]) == 2)
        // Genesis at start-up, two registrations, one transfer: seq 3.
        #expect(metrics.value("carteira_journal_durable_seq") == 3)
        #expect(metrics.value("carteira_journal_events_total") == 3)
        let syncs = try #require(metrics.value("carteira_journal_syncs_total"))
        #expect((1...3).contains(syncs))
        // One request at a time, long after start-up: the journal thread is
        // parked, so the loop that read a change synced it.
        let onLoop = try #require(metrics.value("carteira_journal_syncs_on_event_loop_total"))
        #expect((1...syncs).contains(onLoop))
        #expect(metrics.value("carteira_journal_sync_seconds_count") == syncs)
        #expect(metrics.value("carteira_journal_events_per_sync_sum") == 3)
        #expect(metrics.types["carteira_journal_sync_seconds"] == "histogram")
        #expect(metrics.types["carteira_requests"] == "counter")
        #expect(metrics.value("carteira_replay_events") == 1, "the genesis line replayed at start-up")
        #expect(metrics.value("carteira_replay_seconds").map { $0 >= 0 } == true)

        await alice.close()
        let closed = await eventually(within: 10) {
            (try? scrape(port: port))?.value("carteira_connections_open") == 1
        }
        #expect(closed, "a closed connection leaves the gauge")
        await bob.close()
        try await server.stop()
    }

    @Test("another path is 404, another method 405, and the server serves on")
    func otherRequestsAreRefused() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let server = try await TestServer.start(journal: directory.path, metrics: true)
        let port = try #require(server.server.metricsPort)
        #expect(try scrape(port: port, path: "/").status == 404)
        #expect(try scrape(port: port, path: "/metrics", method: "POST").status == 405)
        #expect(try scrape(port: port, path: "/metrics?x=1").status == 200)
        #expect(try scrape(port: port, method: "HEAD").status == 200)
        let peer = try await TestPeer(port: server.port)
        #expect(try await peer.request("PING") == "OK|PONG")
        await peer.close()
        try await server.stop()
    }

    @Test("metrics are off unless asked for")
    func offByDefault() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let server = try await TestServer.start(journal: directory.path)
        #expect(server.server.metricsPort == nil)
        try await server.stop()
    }
}
