import CarteiraTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The resident memory of process `pid` in KiB, from `/proc/PID/status`.
func residentKiB(of pid: Int32) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
    }
    return nil
}

@Suite("A peer that pipelines without reading, against the server as a process", .timeLimit(.minutes(1)))
struct SlowReaderMemoryTests {
    @Test(
        "stops being read: the server's memory stays bounded while it pushes 64 MB of requests, and others are served")
    func boundedMemory() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try await ServerProcess(journal: directory + "/journal")
        let alice = try LineSocket(port: server.port)
        let bob = try LineSocket(port: server.port)
        let token = try #require(alice.request("REGISTER|alice")?.split(separator: "|").map(String.init))[2]
        let bobKey = try #require(bob.request("REGISTER|bob")?.split(separator: "|").map(String.init))[3]
        // 300 transfers: each HISTORY|1000 answer is about 18 KB.
        alice.send(String(repeating: "SEND|\(bobKey)|0,01\n", count: 300))
        for _ in 0..<300 { _ = alice.readLine() }
        let pid = server.child.process.processIdentifier
        let before = try #require(residentKiB(of: pid))

        // A socket with a tiny receive buffer that never reads.
        let flood = try LineSocket(port: server.port, receiveBufferBytes: 4096)
        flood.send("LOGIN|alice|\(token)\n")
        let chunk = String(repeating: "HISTORY|1000\n", count: 4096)
        var sent = 0
        var refusedSince: ContinuousClock.Instant?
        let deadline = ContinuousClock.now + .seconds(20)
        while sent < 64 << 20, ContinuousClock.now < deadline {
            let count = flood.sendWithoutWaiting(chunk)
            if count > 0 {
                sent += count
                refusedSince = nil
            } else if let since = refusedSince {
                // The server has stopped reading it for good.
                if ContinuousClock.now - since > .seconds(1) { break }
            } else {
                refusedSince = ContinuousClock.now
            }
            if count <= 0 { try await Task.sleep(for: .milliseconds(5)) }
        }
        let after = try #require(residentKiB(of: pid))
        #expect(sent < 64 << 20, "the server read all \(sent) bytes of a peer that takes none of its answers")
        #expect(after - before < 48 * 1024, "resident memory grew from \(before) KiB to \(after) KiB")
        // Others are served meanwhile.
        bob.send("BALANCE\n")
        var answer = bob.readLine()
        while answer?.hasPrefix("EVT|") == true { answer = bob.readLine() }
        #expect(answer == "OK|10300")
        #expect(alice.request("PING") == "OK|PONG")
        #expect(await server.stop() == 0)
    }
}
