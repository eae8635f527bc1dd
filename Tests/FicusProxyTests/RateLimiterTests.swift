import FicusCore
import Testing

@testable import FicusProxy

/// Token buckets, their bounded memory and the proxy's share of a fleet's limit, with a manual clock: every time is a
/// number passed in, nothing sleeps.
@Suite("Rate limiting: token buckets, LRU, shares and fields")
struct RateLimiterTests {
    static let second: UInt64 = 1_000_000_000

    /// A policy for route `orders` (the key source does not matter to the buckets).
    static func policy(_ requests: Int, per: String = "1s", burst: Int? = nil, mode: String? = nil) -> RateLimitPolicy {
        RateLimitPolicy(
            route: "orders", limit: RateLimit(requests: requests, per: per, burst: burst, mode: mode), identity: nil)
    }

    @Test func aBucketStartsFullTakesOneATimeAndRefillsAtItsRate() {
        let rate = 10 / Double(Self.second)  // 10 per second
        var bucket = TokenBucket(capacity: 3, now: 0)
        func take(_ now: UInt64) -> Bool { bucket.take(now: now, rate: rate, capacity: 3) }
        #expect([take(0), take(0), take(0)] == [true, true, true])
        #expect(!take(0), "the burst is spent")
        #expect(bucket.nanosecondsUntilToken(rate: rate) == Self.second / 10)
        #expect(!take(Self.second / 10 - 1), "not quite a token yet")
        #expect(take(Self.second / 10))
        // A long idle time refills up to the capacity, never past it.
        bucket.refill(now: 100 * Self.second, rate: rate, capacity: 3)
        #expect(bucket.tokens == 3)
        // A clock that goes backwards adds nothing.
        _ = take(100 * Self.second)
        bucket.refill(now: 50 * Self.second, rate: rate, capacity: 3)
        #expect(bucket.tokens == 2)
    }

    @Test func theLeastRecentlyUsedKeyIsEvictedFirstAndStartsAgainFull() {
        var buckets = RateLimitBuckets(maxKeys: 3)
        for key in [1, 2, 3] {
            _ = buckets.withBucket(key, now: 0, capacity: 1) { $0.take(now: 0, rate: 0, capacity: 1) }
        }
        #expect(buckets.keysByRecency == [3, 2, 1])
        // Using 1 again makes 2 the least recently used.
        let again = buckets.withBucket(1, now: 0, capacity: 1) { $0.take(now: 0, rate: 0, capacity: 1) }
        #expect(!again, "key 1 spent its only token")
        #expect(buckets.keysByRecency == [1, 3, 2])
        _ = buckets.withBucket(4, now: 0, capacity: 1) { $0.take(now: 0, rate: 0, capacity: 1) }
        #expect(buckets.count == 3)
        #expect(!buckets.contains(2) && buckets.contains(4))
        #expect(buckets.keysByRecency == [4, 1, 3])
        #expect(buckets.evictions == 1)
        // Evicted, 2 comes back with a full bucket (the documented cost of bounded memory).
        let returned = buckets.withBucket(2, now: 0, capacity: 1) { $0.take(now: 0, rate: 0, capacity: 1) }
        #expect(returned)
        #expect(!buckets.contains(3))
    }

    @Test func tenThousandKeysAreKeptAndNoMore() {
        let limiter = RateLimiter()
        let policy = Self.policy(1, per: "1h")
        for key in 0..<10_500 {
            _ = limiter.check(policy, key: key, now: 0)
        }
        #expect(limiter.keys(route: "orders") == RateLimit.maxKeys)
        #expect(limiter.check(policy, key: 10_499, now: 0).allowed == false, "a recent key is still remembered")
        #expect(limiter.check(policy, key: 0, now: 0).allowed == true, "the oldest was evicted")
    }

    @Test func aProxyEnforcesItsShareOfTheFleetsLimit() {
        let limiter = RateLimiter()
        let policy = Self.policy(10, per: "1s", burst: 10)
        #expect(limiter.setProxies(2))
        #expect(!limiter.setProxies(2), "unchanged")
        var allowed = 0
        for _ in 0..<20 where limiter.check(policy, key: 0, now: 0).allowed { allowed += 1 }
        #expect(allowed == 5, "half the burst")
        // Half the rate: 5 per second, so one token every 200 ms.
        #expect(!limiter.check(policy, key: 0, now: Self.second / 5 - 1).allowed)
        #expect(limiter.check(policy, key: 0, now: Self.second / 5).allowed)
        // Back alone: the bucket refills at the whole rate, up to the whole burst.
        limiter.setProxies(1)
        var later = 0
        for _ in 0..<20 where limiter.check(policy, key: 0, now: 10 * Self.second).allowed { later += 1 }
        #expect(later == 10)
        // A share under one request still lets one through per bucket.
        limiter.setProxies(50)
        #expect(RateLimiter.rates(policy, proxies: 50).capacity == 1)
        #expect(limiter.proxies == 50)
        limiter.setProxies(0)
        #expect(limiter.proxies == 1, "never fewer than this proxy")
    }

    @Test func aChangedLimitStartsAfreshAndTheSameLimitKeepsItsBuckets() {
        let limiter = RateLimiter()
        let first = Self.policy(1, per: "1h")
        #expect(limiter.check(first, key: 7, now: 0).allowed)
        #expect(!limiter.check(first, key: 7, now: 0).allowed)
        // A new table with the same limit (another object): still limited.
        #expect(!limiter.check(Self.policy(1, per: "1h"), key: 7, now: 0).allowed)
        // A different limit: new buckets.
        #expect(limiter.check(Self.policy(2, per: "1h"), key: 7, now: 0).allowed)
        // A revision without the limit gives the buckets' memory back.
        limiter.keepOnly(routes: ["users"])
        #expect(limiter.keys(route: "orders") == 0)
    }

    @Test func verdictsSayWhatIsLeftAndWhenToRetry() {
        let limiter = RateLimiter()
        let policy = Self.policy(1, per: "10s", burst: 2)
        #expect(limiter.check(policy, key: 0, now: 0) == .init(allowed: true, remaining: 1, resetSeconds: 0))
        #expect(limiter.check(policy, key: 0, now: 0) == .init(allowed: true, remaining: 0, resetSeconds: 10))
        #expect(
            limiter.check(policy, key: 0, now: 3 * Self.second)
                == RateLimitVerdict(allowed: false, remaining: 0, resetSeconds: 7))
    }

    @Test func fieldsFollowTheDraftsStructuredForm() {
        let policy = Self.policy(100, per: "1s", burst: 200)
        let lines = RateLimitFields.lines(policy, RateLimitVerdict(allowed: false, remaining: 0, resetSeconds: 1))
        #expect(
            lines == "retry-after: 1\r\nratelimit-policy: \"orders\";q=100;w=1\r\nratelimit: \"orders\";r=0;t=1\r\n")
        // Periods that are not whole seconds are scaled to the next whole second.
        #expect(RateLimitFields.quota(Self.policy(10, per: "100ms")) == (100, 1))
        #expect(RateLimitFields.quota(Self.policy(3, per: "1500ms")) == (4, 2))
        #expect(RateLimitFields.quota(Self.policy(1000, per: "1m")) == (1000, 60))
        #expect(RateLimitFields.structuredString("a\"b\\c\u{7}é") == "\"a\\\"b\\\\c___\"")
    }
}
