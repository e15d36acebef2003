import CarteiraTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// User plus system CPU seconds of process `pid`, from /proc.
private func cpuSeconds(_ pid: Int32) throws -> Double {
    let text = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
    let fields = try #require(text.split(separator: ")").last).split(separator: " ")
    let ticks = try #require(Double(fields[11])) + (try #require(Double(fields[12])))
    return ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
}

private func openDescriptors(_ pid: Int32) -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? 0
}

@Suite("Out of file descriptors (ulimit -n lowered)")
struct DescriptorLimitTests {
    @Test(
        "under a low ulimit -n the server caps its connections below it: extra peers are refused with ERR, it never spins, and serves again when others leave"
    )
    func lowDescriptorLimit() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let limit = 64
        let server = productsDirectory.appendingPathComponent("carteira-server").path
        let child = try ChildProcess(
            "/bin/sh",
            [
                "-c",
                "ulimit -n \(limit) && exec '\(server)' --port 0 --journal '\(directory)/journal' --no-console",
            ])
        let started = await child.waitForOutput { $0.contains("listening on") }
        try #require(started, "server did not start: \(child.errors.text)")
        let portText = try #require(
            child.output.text.split(separator: "\n").first { $0.contains("listening on") }?
                .split(separator: ":").dropFirst().first?.split(separator: " ").first)
        let port = try #require(Int(portText))
        let pid = child.process.processIdentifier
        #expect(child.errors.text.contains("Serving at most"), "\(child.errors.text)")

        // More peers than the server has descriptors for, each asking PING.
        var served: [LineSocket] = []
        var refused = 0
        for _ in 0..<(limit + 40) {
            let peer = try LineSocket(port: port)
            let answer = peer.request("PING")
            if answer == "OK|PONG" {
                served.append(peer)
            } else {
                #expect(answer == "ERR|unavailable|too many connections or shutting down")
                #expect(peer.readLine() == nil)
                refused += 1
            }
        }
        #expect(!served.isEmpty)
        #expect(refused >= 40)
        #expect(openDescriptors(pid) < limit)
        #expect(!child.errors.text.contains("Cannot accept new connections"))

        // Full, it stays idle: a spinning accept loop would burn a core here.
        let before = try cpuSeconds(pid)
        let window = ContinuousClock.now
        // A measurement window, not a wait for a condition.
        try await Task.sleep(for: .seconds(1))
        let elapsed = ContinuousClock.now - window
        let used = try cpuSeconds(pid) - before
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        #expect(used < 0.3 * seconds, "the server used \(used) s of CPU in \(seconds) s while full")

        // Once others leave, a new peer is served.
        served.removeAll()
        #expect(await eventually(within: 10) { (try? LineSocket(port: port).request("PING")) == "OK|PONG" })
        #expect(child.process.isRunning)
        child.signal(SIGTERM)
        #expect(await child.exitStatus() == 0)
    }
}
