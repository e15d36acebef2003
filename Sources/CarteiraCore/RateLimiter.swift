import Synchronization

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

extension TokenBucket {
    /// While the bucket is empty, when its next token comes.
    public mutating func emptyUntil(now: Timestamp) -> Timestamp? {
        refill(now: now)
        return tokens == 0 ? lastRefill.adding(milliseconds: refillMilliseconds) : nil
    }

    /// Whether the bucket is full at `now`: then it is exactly a fresh
    /// bucket, and forgetting it loses nothing.
    public mutating func isFull(now: Timestamp) -> Bool {
        refill(now: now)
        return tokens == capacity
    }
}

/// Buckets shared by every connection, keyed by who is charged: a remote
/// address, or a machine name (PROTOCOL.md, Limits; docs/protocol.md). A key
/// with no bucket has a full one. Only charged answers make a bucket, so an
/// honest server holds none; a bucket that has refilled is forgotten, and
/// at most `maximumKeys` are held (keys past that while every bucket is
/// still draining share one overflow bucket), so what an attacker makes the
/// server remember stays bounded. Safe from any thread.
public final class SharedBuckets<Key: Hashable & Sendable>: Sendable {
    public let capacity: Int
    public let refillMilliseconds: Int64
    public let maximumKeys: Int

    private struct State {
        var buckets: [Key: TokenBucket] = [:]
        /// Charged to when `buckets` is full of draining buckets.
        var overflow: TokenBucket?
        var sweepAt: Int
        /// While every bucket is draining, sweeping again before one could
        /// have refilled is wasted work: not before this.
        var nextFullSweep = Timestamp(milliseconds: Int64.min)
        /// Guarded requests refused because one of these buckets was empty.
        var refusals: Int64 = 0
    }

    private let state: Locked<State>
    /// `buckets.count` (plus one for the overflow), read without the lock:
    /// zero on a server nobody is scanning, so the check costs one load.
    private let tracked = Atomic<Int>(0)

    public init(capacity: Int, refillMilliseconds: Int64, maximumKeys: Int = 65_536) {
        precondition(capacity > 0 && refillMilliseconds > 0 && maximumKeys > 0)
        self.capacity = capacity
        self.refillMilliseconds = refillMilliseconds
        self.maximumKeys = maximumKeys
        state = Locked(State(sweepAt: min(1024, maximumKeys)))
    }

    /// True while `key`'s bucket is empty; counts the refusal that follows.
    public func isEmpty(_ key: Key, now: Timestamp) -> Bool {
        guard tracked.load(ordering: .relaxed) > 0 else { return false }
        return state.withLock { state in
            let empty: Bool
            if var bucket = state.buckets[key] {
                empty = bucket.isEmpty(now: now)
                if !empty, bucket.isFull(now: now) {
                    state.buckets[key] = nil
                } else {
                    state.buckets[key] = bucket
                }
            } else if state.buckets.count >= maximumKeys, var overflow = state.overflow {
                empty = overflow.isEmpty(now: now)
                state.overflow = overflow
            } else {
                empty = false
            }
            if empty { state.refusals += 1 }
            publish(state)
            return empty
        }
    }

    /// Takes one token from `key`'s bucket.
    public func charge(_ key: Key, now: Timestamp) {
        state.withLock { state in
            if var bucket = state.buckets[key] {
                bucket.charge(now: now)
                state.buckets[key] = bucket
            } else {
                if state.buckets.count >= state.sweepAt,
                    state.buckets.count < maximumKeys || now >= state.nextFullSweep
                {
                    sweep(&state, now: now)
                }
                if state.buckets.count < maximumKeys {
                    var bucket = TokenBucket(now: now, capacity: capacity, refillMilliseconds: refillMilliseconds)
                    bucket.charge(now: now)
                    state.buckets[key] = bucket
                } else {
                    var overflow =
                        state.overflow
                        ?? TokenBucket(now: now, capacity: capacity, refillMilliseconds: refillMilliseconds)
                    overflow.charge(now: now)
                    state.overflow = overflow
                }
            }
            publish(state)
        }
    }

    /// Forgets every refilled bucket; the next sweep comes when the map has
    /// doubled, so sweeping costs O(1) a charge on average.
    private func sweep(_ state: inout State, now: Timestamp) {
        state.buckets = state.buckets.filter { _, bucket in
            var bucket = bucket
            return !bucket.isFull(now: now)
        }
        if var overflow = state.overflow, overflow.isFull(now: now) { state.overflow = nil }
        state.sweepAt = min(maximumKeys, max(1024, 2 * state.buckets.count))
        if state.buckets.count >= maximumKeys { state.nextFullSweep = now.adding(milliseconds: refillMilliseconds) }
    }

    private func publish(_ state: State) {
        tracked.store(state.buckets.count + (state.overflow == nil ? 0 : 1), ordering: .relaxed)
    }

    /// The keys whose bucket is empty now, and how many keys are tracked
    /// (after forgetting the refilled ones), for the console.
    public func limited(now: Timestamp) -> (keys: [Key], tracked: Int, refusals: Int64) {
        state.withLock { state in
            sweep(&state, now: now)
            publish(state)
            var keys: [Key] = []
            for (key, bucket) in state.buckets {
                var bucket = bucket
                if bucket.isEmpty(now: now) { keys.append(key) }
            }
            return (keys, state.buckets.count, state.refusals)
        }
    }

    /// Whether `key`'s bucket is empty, without counting anything.
    public func isLimited(_ key: Key, now: Timestamp) -> Bool {
        guard tracked.load(ordering: .relaxed) > 0 else { return false }
        return state.withLock { state in
            guard var bucket = state.buckets[key] else { return false }
            return bucket.isEmpty(now: now)
        }
    }

    /// Requests refused because one of these buckets was empty.
    public var refusalCount: Int64 { state.withLock { $0.refusals } }

    /// Buckets held, the overflow included.
    public var trackedCount: Int { tracked.load(ordering: .relaxed) }
}
