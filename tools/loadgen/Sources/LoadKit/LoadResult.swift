import Foundation

/// The outcome of a run: counts, rate and latency.
public struct LoadResult: Sendable, Codable {
    public var mode: LoadMode
    public var connections: Int
    public var pipeline: Int
    public var seconds: Int
    /// From the start line to the last answer, drained requests included.
    public var elapsedSeconds: Double
    public var ok: Int
    public var errors: [String: Int]
    public var requestsPerSecond: Double
    public var latencyNanoseconds: LatencySummary

    /// Wallets the connections logged in as and paid (0 for `ping`).
    public var wallets: Int
    public var threads: Int
    public var requestIDs: Bool
    /// Seconds to get the wallets and open and log in every connection.
    public var setupSeconds: Double
    /// CPU (user + system, all threads) this process used from the start
    /// line to the last answer, and that as a share of one core.
    public var cpuSeconds: Double
    public var cpuPercent: Double

    init(plan: LoadPlan, start: UInt64, tallies: [ConnectionTally], cpuSeconds: Double, setupSeconds: Double) {
        mode = plan.mode
        connections = plan.connections
        pipeline = plan.pipeline
        seconds = plan.seconds
        wallets = plan.mode.needsMachine ? plan.wallets : 0
        threads = plan.threads
        requestIDs = plan.requestIDs
        var histogram = LatencyHistogram()
        var errors: [String: Int] = [:]
        var end = start
        for tally in tallies {
            histogram.merge(tally.histogram)
            errors.merge(tally.errors, uniquingKeysWith: +)
            end = Swift.max(end, tally.lastAnswer)
        }
        self.errors = errors
        ok = tallies.reduce(0) { $0 + $1.ok }
        elapsedSeconds = Double(end - start) / 1e9
        let answered = Double(histogram.count)
        requestsPerSecond = elapsedSeconds > 0 ? answered / elapsedSeconds : 0
        latencyNanoseconds = LatencySummary(histogram: histogram)
        self.setupSeconds = setupSeconds
        self.cpuSeconds = cpuSeconds
        cpuPercent = elapsedSeconds > 0 ? cpuSeconds / elapsedSeconds * 100 : 0
    }

    public var errorCount: Int { errors.values.reduce(0, +) }

    public var text: String {
        func ms(_ nanoseconds: UInt64) -> String { String(format: "%.3f", Double(nanoseconds) / 1e6) }
        let latency = latencyNanoseconds
        var lines = [
            "mode \(mode.rawValue), \(connections) connection(s), pipeline \(pipeline), \(seconds) s"
                + (wallets > 0 ? ", \(wallets) wallets" : ""),
            "answers: \(ok) OK, \(errorCount) ERR in \(String(format: "%.2f", elapsedSeconds)) s"
                + " = \(String(format: "%.0f", requestsPerSecond)) requests/s",
            "latency ms: p50 \(ms(latency.p50))  p90 \(ms(latency.p90))  p99 \(ms(latency.p99))  max \(ms(latency.max))",
            "load generator CPU: \(String(format: "%.2f", cpuSeconds)) s = \(String(format: "%.0f", cpuPercent)) % of one core"
                + " (\(threads) thread(s)); setup \(String(format: "%.2f", setupSeconds)) s",
        ]
        for (code, count) in errors.sorted(by: { $0.key < $1.key }) {
            lines.append("ERR \(code): \(count)")
        }
        return lines.joined(separator: "\n")
    }

    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}
