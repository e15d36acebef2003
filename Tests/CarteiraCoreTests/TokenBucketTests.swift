import CarteiraCore
import Testing

/// `isEmpty` is mutating (it refills first), which `#expect` cannot call inline.
private func isEmpty(_ bucket: inout TokenBucket, at now: Timestamp) -> Bool {
    bucket.isEmpty(now: now)
}

@Suite("TokenBucket")
struct TokenBucketTests {
    @Test("30 charged answers empty the bucket; 29 leave one")
    func thirtyEmpty() {
        var bucket = TokenBucket(now: startTime)
        for _ in 0..<29 { bucket.charge(now: startTime) }
        #expect(!isEmpty(&bucket, at: startTime))
        #expect(bucket.remaining(now: startTime) == 1)
        bucket.charge(now: startTime)
        #expect(isEmpty(&bucket, at: startTime))
        // Charging an empty bucket is harmless and keeps it empty.
        bucket.charge(now: startTime)
        #expect(bucket.remaining(now: startTime) == 0)
    }

    @Test("an empty bucket earns one token every 2 seconds, exactly")
    func refillRate() {
        var bucket = TokenBucket(now: startTime)
        for _ in 0..<30 { bucket.charge(now: startTime) }
        #expect(isEmpty(&bucket, at: startTime.adding(milliseconds: 1_999)))
        #expect(bucket.remaining(now: startTime.adding(milliseconds: 2_000)) == 1)
        #expect(bucket.remaining(now: startTime.adding(milliseconds: 3_999)) == 1)
        #expect(bucket.remaining(now: startTime.adding(milliseconds: 4_000)) == 2)
        bucket.charge(now: startTime.adding(milliseconds: 5_000))
        // The partial second since 4 s still counts after a charge.
        #expect(bucket.remaining(now: startTime.adding(milliseconds: 6_000)) == 2)
        #expect(bucket.remaining(now: startTime.adding(seconds: 20)) == 9)
    }

    @Test("refills stop at the capacity however long the connection idles")
    func cap() {
        var bucket = TokenBucket(now: startTime)
        for _ in 0..<30 { bucket.charge(now: startTime) }
        #expect(bucket.remaining(now: startTime.adding(seconds: 60)) == 30)
        #expect(bucket.remaining(now: startTime.adding(seconds: 86_400)) == 30)
        for _ in 0..<30 { bucket.charge(now: startTime.adding(seconds: 86_400)) }
        #expect(isEmpty(&bucket, at: startTime.adding(seconds: 86_400)))
    }

    @Test("time spent full earns nothing: after a burst the next token still takes 2 seconds")
    func fullBucketEarnsNothing() {
        var bucket = TokenBucket(now: startTime)
        let burst = startTime.adding(milliseconds: 1_999)
        for _ in 0..<30 { bucket.charge(now: burst) }
        #expect(isEmpty(&bucket, at: startTime.adding(milliseconds: 2_000)))
        #expect(isEmpty(&bucket, at: burst.adding(milliseconds: 1_999)))
        #expect(bucket.remaining(now: burst.adding(milliseconds: 2_000)) == 1)
    }

    @Test("a clock that steps back neither refills nor breaks the bucket")
    func clockBack() {
        var bucket = TokenBucket(now: startTime)
        for _ in 0..<30 { bucket.charge(now: startTime) }
        #expect(isEmpty(&bucket, at: startTime.adding(seconds: -100)))
        #expect(bucket.remaining(now: startTime.adding(seconds: 2)) == 1)
    }

    @Test("the capacity and the refill interval can be chosen")
    func customBucket() {
        var bucket = TokenBucket(now: startTime, capacity: 2, refillMilliseconds: 100)
        bucket.charge(now: startTime)
        bucket.charge(now: startTime)
        #expect(isEmpty(&bucket, at: startTime))
        #expect(bucket.remaining(now: startTime.adding(milliseconds: 100)) == 1)
        #expect(TokenBucket.defaultCapacity == 30)
        #expect(TokenBucket.defaultRefillMilliseconds == 2_000)
    }
}
