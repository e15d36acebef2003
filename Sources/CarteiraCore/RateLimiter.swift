/// The per-connection bucket against key scraping and token guessing
/// (PROTOCOL.md, Limits): 30 tokens, one more every 2 seconds.
public struct TokenBucket: Sendable, Hashable {
    public static let defaultCapacity = 30
    public static let defaultRefillMilliseconds: Int64 = 2000

    public let capacity: Int
    public let refillMilliseconds: Int64
    private var tokens: Int
    private var lastRefill: Timestamp

    public init(
        now: Timestamp,
        capacity: Int = TokenBucket.defaultCapacity,
        refillMilliseconds: Int64 = TokenBucket.defaultRefillMilliseconds
    ) {
        precondition(capacity > 0 && refillMilliseconds > 0, "a bucket needs room and a refill rate")
        self.capacity = capacity
        self.refillMilliseconds = refillMilliseconds
        self.tokens = capacity
        self.lastRefill = now
    }

    private mutating func refill(now: Timestamp) {
        guard now > lastRefill else { return }
        // A full bucket earns nothing: time spent full must not count towards
        // the next token, or a burst gets one token more than the rate allows.
        guard tokens < capacity else {
            lastRefill = now
            return
        }
        let earned = (now.milliseconds - lastRefill.milliseconds) / refillMilliseconds
        guard earned > 0 else { return }
        if tokens + Int(clamping: earned) >= capacity {
            tokens = capacity
            lastRefill = now
        } else {
            tokens += Int(earned)
            lastRefill = lastRefill.adding(milliseconds: earned * refillMilliseconds)
        }
    }

    /// True while the bucket has nothing left: guarded commands are refused.
    public mutating func isEmpty(now: Timestamp) -> Bool {
        refill(now: now)
        return tokens == 0
    }

    /// Takes one token for a charged answer.
    public mutating func charge(now: Timestamp) {
        refill(now: now)
        if tokens > 0 { tokens -= 1 }
    }

    public mutating func remaining(now: Timestamp) -> Int {
        refill(now: now)
        return tokens
    }
}
