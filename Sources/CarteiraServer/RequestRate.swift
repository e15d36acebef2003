import CarteiraCore

/// Requests counted per second over the last minute, for the console's
/// `stats`. A fixed ring of 60 counters: no allocation per request.
struct RequestRate: Sendable {
    private var counts = [Int](repeating: 0, count: 60)
    private var seconds = [Int64](repeating: -1, count: 60)

    /// Counts `count` requests answered at `now`.
    mutating func record(at now: Timestamp, count: Int = 1) {
        let second = now.milliseconds / 1000
        let slot = Int(second % 60 + 60) % 60
        if seconds[slot] != second {
            seconds[slot] = second
            counts[slot] = 0
        }
        counts[slot] += count
    }

    /// Requests in the 60 seconds up to `now`.
    func lastMinute(at now: Timestamp) -> Int {
        let second = now.milliseconds / 1000
        var total = 0
        for slot in 0..<60 where seconds[slot] > second - 60 && seconds[slot] <= second {
            total += counts[slot]
        }
        return total
    }
}
