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

@Test("Each SEND carries a fresh request id and pays one centavo")
func sendsHaveFreshRequestIDs() throws {
    let endpoint = try #require(ServerEndpoint("127.0.0.1:7070"))
    let plan = LoadPlan(endpoint: endpoint, connections: 2, seconds: 1, pipeline: 1, mode: .send, prefix: "lgtest")
    let key = "0f8d3c1e-6b2a-4c9e-9a7d-3e5f1b2c4d6e"
    var source = RequestSource(index: 3, plan: plan, payeeKey: .init(key))
    #expect(source.next() == "SEND|\(key)|0,01|lgtest-3-1\n")
    #expect(source.next() == "SEND|\(key)|0,01|lgtest-3-2\n")
}

@Test("Fresh prefixes are 12 characters and differ from run to run")
func prefixesAreFresh() {
    let first = LoadPlan.freshPrefix()
    #expect(first.count == 12)
    #expect(first != LoadPlan.freshPrefix())
}
