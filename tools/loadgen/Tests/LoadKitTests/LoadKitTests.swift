import Foundation
import NIOCore
import Testing
@testable import LoadKit

@Test("The server address must be the loopback address with a valid port")
func endpointIsLoopbackOnly() {
    #expect(ServerEndpoint("127.0.0.1:7070")?.port == 7070)
    #expect(ServerEndpoint("localhost:1")?.host == "127.0.0.1")
    #expect(ServerEndpoint("10.0.0.1:7070") == nil)
    #expect(ServerEndpoint("example.com:7070") == nil)
    #expect(ServerEndpoint("127.0.0.1:0") == nil)
    #expect(ServerEndpoint("127.0.0.1") == nil)
}

@Test("Percentiles are nearest-rank over the sorted samples")
func percentilesAreNearestRank() {
    var samples = (1...100).reversed().map(UInt64.init)
    let summary = LatencySummary(samples: &samples)
    #expect(summary.count == 100)
    #expect(summary.p50 == 50)
    #expect(summary.p90 == 90)
    #expect(summary.p99 == 99)
    #expect(summary.max == 100)
    var one: [UInt64] = [7]
    #expect(LatencySummary(samples: &one).p50 == 7)
    var none: [UInt64] = []
    #expect(LatencySummary(samples: &none).max == 0)
}

@Test("Answers are classified by their first bytes and pushes are skipped")
func answersAreClassified() {
    #expect(Outcome(.init(string: "EVT|received|T1|a|1|2")) == nil)
    guard case .ok = Outcome(.init(string: "OK|T000000000001|9999")) else {
        Issue.record("OK not classified as ok")
        return
    }
    guard case let .error(code) = Outcome(.init(string: "ERR|insufficient_funds|balance ...")) else {
        Issue.record("ERR not classified as an error")
        return
    }
    #expect(code == "insufficient_funds")
}

@Test("Each SEND pays one centavo to another wallet, with a fresh request id when asked")
func sendsPayOthersWithFreshRequestIDs() throws {
    let keys = [
        "0f8d3c1e-6b2a-4c9e-9a7d-3e5f1b2c4d6e", "7c1e9b2a-4d3f-4e8a-b1c2-d3e4f5a6b7c8",
        "5be1c0c3-a9f0-4e1d-8f1b-2c3d4e5f6a7b",
    ]
    var random = FastRandom(seed: 42)
    let plain = RequestTable(mode: .send, payeeKeys: keys, requestIDPrefix: nil)
    var seen = Set<String>()
    for sent in 1...200 {
        var buffer = ByteBuffer()
        plain.write(into: &buffer, index: 0, payer: 1, sent: sent, random: &random)
        let line = String(buffer: buffer)
        #expect(line != "SEND|\(keys[1])|0,01\n", "a wallet never pays itself")
        #expect(line.hasSuffix("|0,01\n"))
        seen.insert(line)
    }
    #expect(seen == ["SEND|\(keys[0])|0,01\n", "SEND|\(keys[2])|0,01\n"])

    let withIDs = RequestTable(mode: .send, payeeKeys: Array(keys.prefix(2)), requestIDPrefix: "lgtest")
    var buffer = ByteBuffer()
    withIDs.write(into: &buffer, index: 3, payer: 0, sent: 1, random: &random)
    withIDs.write(into: &buffer, index: 3, payer: 0, sent: 2, random: &random)
    #expect(String(buffer: buffer) == "SEND|\(keys[1])|0,01|lgtest-3-1\nSEND|\(keys[1])|0,01|lgtest-3-2\n")

    var ping = ByteBuffer()
    RequestTable(mode: .ping, payeeKeys: [], requestIDPrefix: nil).write(
        into: &ping, index: 0, payer: 0, sent: 1, random: &random)
    #expect(String(buffer: ping) == "PING\n")
}

@Test("The histogram is exact below 128 ns and within 1/64 above, with nearest-rank percentiles")
func histogramPercentiles() {
    var exact = LatencyHistogram()
    for value in (1...100).reversed() { exact.record(UInt64(value)) }
    let summary = LatencySummary(histogram: exact)
    #expect(summary.count == 100)
    #expect(summary.p50 == 50)
    #expect(summary.p90 == 90)
    #expect(summary.p99 == 99)
    #expect(summary.max == 100)
    #expect(LatencySummary(histogram: LatencyHistogram()).p99 == 0)

    var random = FastRandom(seed: 7)
    var samples: [UInt64] = []
    var histogram = LatencyHistogram()
    var other = LatencyHistogram()
    for index in 0..<10_000 {
        let value = random.next() % 500_000_000 + 1
        samples.append(value)
        if index.isMultiple(of: 2) { histogram.record(value) } else { other.record(value) }
    }
    histogram.merge(other)
    let sorted = samples.sorted()
    for percent in [50, 90, 99] {
        let truth = Double(LatencySummary.percentile(percent, ofSorted: sorted))
        let reported = Double(histogram.percentile(percent))
        #expect(reported >= truth && reported <= truth * (1 + 1.0 / 64), "p\(percent)")
    }
    #expect(histogram.max == sorted.last)
    #expect(histogram.count == 10_000)
    // Every bucket's upper bound is below the next bucket's values.
    for value: UInt64 in [127, 128, 255, 256, 1 << 40, UInt64.max] {
        let bucket = LatencyHistogram.bucket(of: value)
        #expect(LatencyHistogram.upperBound(ofBucket: bucket) >= value)
        if bucket > 0 { #expect(LatencyHistogram.upperBound(ofBucket: bucket - 1) < value) }
    }
}

@Test("The wallets file keeps name, token and key, one wallet a line")
func walletFileRoundTrip() throws {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("wallets-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    #expect(try WalletFile.load(path).isEmpty)
    let wallets = [
        Wallet(name: "w-1", token: String(repeating: "ab", count: 16), key: "0f8d3c1e-6b2a-4c9e-9a7d-3e5f1b2c4d6e"),
        Wallet(name: "w-2", token: String(repeating: "cd", count: 16), key: "7c1e9b2a-4d3f-4e8a-b1c2-d3e4f5a6b7c8"),
    ]
    try WalletFile.save(wallets, to: path)
    #expect(try WalletFile.load(path) == wallets)
    try "w-1 nottoken key\n".write(toFile: path, atomically: true, encoding: .utf8)
    #expect(throws: WalletFileError.self) { try WalletFile.load(path) }
}

@Test("Fresh prefixes are 12 characters and differ from run to run")
func prefixesAreFresh() {
    let first = LoadPlan.freshPrefix()
    #expect(first.count == 12)
    #expect(first != LoadPlan.freshPrefix())
}
