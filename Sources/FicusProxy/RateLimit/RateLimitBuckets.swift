/// The token buckets of one route, one per key, at most `maxKeys` of them: the least recently used goes first.
///
/// Pure and not thread-safe (`RateLimiter` holds it under its lock). The recency list is threaded through an array
/// by index, so that a request costs one dictionary lookup and a few index moves, and memory stays bounded however
/// many keys clients invent; an evicted key starts again with a full bucket.
struct RateLimitBuckets {
    /// The most keys kept.
    let maxKeys: Int
    /// The buckets by key (`RateLimitPolicy.bucketKey`), most recently used first.
    private var buckets = RecencyList<Int, TokenBucket>()
    /// Keys evicted to make room, ever.
    private(set) var evictions = 0

    /// An empty set; `maxKeys` is at least 1.
    init(maxKeys: Int) {
        self.maxKeys = max(1, maxKeys)
    }

    /// How many keys have a bucket.
    var count: Int { self.buckets.count }

    /// Whether `key` has a bucket (without making it recently used).
    func contains(_ key: Int) -> Bool { self.buckets.contains(key) }

    /// The keys from most to least recently used.
    var keysByRecency: [Int] { self.buckets.keysByRecency }

    /// Runs `body` on `key`'s bucket (a full one, `capacity` tokens, for a key not seen or evicted), which becomes
    /// the most recently used.
    mutating func withBucket<T>(
        _ key: Int,
        now: UInt64,
        capacity: Double,
        _ body: (inout TokenBucket) -> T
    ) -> T {
        if let result = self.buckets.withValue(key, body) {
            return result
        }
        if self.buckets.count >= self.maxKeys, self.buckets.removeLeastRecent() != nil {
            self.evictions += 1
        }
        self.buckets.set(key, TokenBucket(capacity: capacity, now: now))
        return self.buckets.withValue(key, body)!
    }
}
