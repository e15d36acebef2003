/// Percentiles of request latencies, in nanoseconds (nearest rank).
public struct LatencySummary: Sendable, Hashable, Codable {
    public var count: Int
    public var p50: UInt64
    public var p90: UInt64
    public var p99: UInt64
    public var max: UInt64

    /// Sorts `samples` in place; an empty list gives all zeros.
    public init(samples: inout [UInt64]) {
        samples.sort()
        count = samples.count
        p50 = Self.percentile(50, ofSorted: samples)
        p90 = Self.percentile(90, ofSorted: samples)
        p99 = Self.percentile(99, ofSorted: samples)
        max = samples.last ?? 0
    }

    /// The smallest sample with at least `percent`% of the samples at or below it.
    public static func percentile(_ percent: Int, ofSorted samples: [UInt64]) -> UInt64 {
        guard !samples.isEmpty else { return 0 }
        let rank = (percent * samples.count + 99) / 100
        return samples[Swift.max(rank, 1) - 1]
    }
}

extension LatencySummary {
    /// The same percentiles from a histogram (each within its bucket's 1.6 %).
    public init(histogram: LatencyHistogram) {
        count = Int(histogram.count)
        p50 = histogram.percentile(50)
        p90 = histogram.percentile(90)
        p99 = histogram.percentile(99)
        max = histogram.max
    }
}
