import Foundation

/// What one connection saw during the run.
struct ConnectionTally: Sendable {
    var ok = 0
    /// Answers by error code; `connection_closed` when the server hung up.
    var errors: [String: Int] = [:]
    var latencies: [UInt64] = []
    /// Monotonic time of the last answer, in nanoseconds.
    var lastAnswer: UInt64 = 0
}

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

    init(plan: LoadPlan, start: UInt64, tallies: [ConnectionTally]) {
        mode = plan.mode
        connections = plan.connections
        pipeline = plan.pipeline
        seconds = plan.seconds
        var samples: [UInt64] = []
        samples.reserveCapacity(tallies.reduce(0) { $0 + $1.latencies.count })
        var errors: [String: Int] = [:]
        var end = start
        for tally in tallies {
            samples.append(contentsOf: tally.latencies)
            errors.merge(tally.errors, uniquingKeysWith: +)
            end = Swift.max(end, tally.lastAnswer)
        }
        self.errors = errors
        ok = tallies.reduce(0) { $0 + $1.ok }
        elapsedSeconds = Double(end - start) / 1e9
        let answered = samples.count
        requestsPerSecond = elapsedSeconds > 0 ? Double(answered) / elapsedSeconds : 0
        latencyNanoseconds = LatencySummary(samples: &samples)
    }

    public var errorCount: Int { errors.values.reduce(0, +) }

    public var text: String {
        func ms(_ nanoseconds: UInt64) -> String { String(format: "%.3f", Double(nanoseconds) / 1e6) }
        let latency = latencyNanoseconds
        var lines = [
            "mode \(mode.rawValue), \(connections) connection(s), pipeline \(pipeline), \(seconds) s",
            "answers: \(ok) OK, \(errorCount) ERR in \(String(format: "%.2f", elapsedSeconds)) s"
                + " = \(String(format: "%.0f", requestsPerSecond)) requests/s",
            "latency ms: p50 \(ms(latency.p50))  p90 \(ms(latency.p90))  p99 \(ms(latency.p99))  max \(ms(latency.max))",
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
