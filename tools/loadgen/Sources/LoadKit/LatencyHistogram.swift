/// Request latencies in nanoseconds, counted into a fixed array of
/// log-linear buckets: exact below 128 ns, then 64 buckets per power of two
/// (each at most 1/64 = 1.6 % wide). Recording is an index computation and
/// one increment, with no allocation, so the hot loop can count every answer.
public struct LatencyHistogram: Sendable, Hashable {
    /// Values below this are counted exactly, one bucket each.
    static let linearLimit: UInt64 = 128
    /// Buckets per power of two above `linearLimit`.
    static let subBuckets = 64
    /// Enough buckets for every `UInt64`.
    static let bucketCount = Int(linearLimit) + (63 - 6) * subBuckets

    public private(set) var counts: [UInt64]
    public private(set) var count: UInt64 = 0
    public private(set) var max: UInt64 = 0

    public init() {
        counts = Array(repeating: 0, count: Self.bucketCount)
    }

    static func bucket(of value: UInt64) -> Int {
        if value < linearLimit { return Int(value) }
        let highestBit = 63 - value.leadingZeroBitCount  // 7 or more
        let shift = highestBit - 6  // 1 or more
        let top = Int(value >> UInt64(shift))  // 64...127
        return Int(linearLimit) + (shift - 1) * subBuckets + (top - subBuckets)
    }

    /// The largest value that falls in `bucket`.
    static func upperBound(ofBucket bucket: Int) -> UInt64 {
        if bucket < Int(linearLimit) { return UInt64(bucket) }
        let offset = bucket - Int(linearLimit)
        let shift = offset / subBuckets + 1
        let top = UInt64(subBuckets + offset % subBuckets)
        let next = (top + 1) << UInt64(shift)
        return next == 0 ? UInt64.max : next - 1  // the last bucket ends at UInt64.max
    }

    @inline(__always)
    public mutating func record(_ value: UInt64) {
        counts[Self.bucket(of: value)] &+= 1
        count &+= 1
        if value > max { max = value }
    }

    public mutating func merge(_ other: LatencyHistogram) {
        for index in counts.indices { counts[index] &+= other.counts[index] }
        count &+= other.count
        max = Swift.max(max, other.max)
    }

    /// Nearest rank: the bucket holding the smallest value with at least
    /// `percent`% of the values at or below it, reported as that bucket's
    /// upper bound (never above the largest value recorded).
    public func percentile(_ percent: Int) -> UInt64 {
        guard count > 0 else { return 0 }
        let rank = Swift.max((UInt64(percent) * count + 99) / 100, 1)
        var seen: UInt64 = 0
        for (bucket, bucketCount) in counts.enumerated() where bucketCount > 0 {
            seen += bucketCount
            if seen >= rank { return Swift.min(Self.upperBound(ofBucket: bucket), max) }
        }
        return max
    }
}
