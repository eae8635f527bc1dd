/// The token buckets of one route, one per key, at most `maxKeys` of them: the least recently used goes first.
///
/// Pure and not thread-safe (`RateLimiter` holds it under its lock). The recency list is threaded through an array
/// by index, so that a request costs one dictionary lookup and a few index moves, and memory stays bounded however
/// many keys clients invent; an evicted key starts again with a full bucket.
struct RateLimitBuckets {
    /// One key's bucket and its place in the recency list.
    private struct Slot {
        /// The key (`RateLimitPolicy.bucketKey`).
        var key: Int
        /// The key's tokens.
        var bucket: TokenBucket
        /// Towards the most recently used (`head`); -1 at the end.
        var newer: Int
        /// Towards the least recently used (`tail`); -1 at the end.
        var older: Int
    }

    /// The most keys kept.
    let maxKeys: Int
    /// Where each key's slot is in `slots`.
    private var index: [Int: Int] = [:]
    /// The buckets; a slot is reused, never removed, when its key is evicted.
    private var slots: [Slot] = []
    /// The most recently used slot, or -1.
    private var head = -1
    /// The least recently used slot, or -1.
    private var tail = -1
    /// Keys evicted to make room, ever.
    private(set) var evictions = 0

    /// An empty set; `maxKeys` is at least 1.
    init(maxKeys: Int) {
        self.maxKeys = max(1, maxKeys)
    }

    /// How many keys have a bucket.
    var count: Int { self.slots.count }

    /// Whether `key` has a bucket (without making it recently used).
    func contains(_ key: Int) -> Bool { self.index[key] != nil }

    /// The keys from most to least recently used.
    var keysByRecency: [Int] {
        var keys: [Int] = []
        var slot = self.head
        while slot >= 0 {
            keys.append(self.slots[slot].key)
            slot = self.slots[slot].older
        }
        return keys
    }

    /// Runs `body` on `key`'s bucket (a full one, `capacity` tokens, for a key not seen or evicted), which becomes
    /// the most recently used.
    mutating func withBucket<T>(
        _ key: Int,
        now: UInt64,
        capacity: Double,
        _ body: (inout TokenBucket) -> T
    ) -> T {
        let slot: Int
        if let found = self.index[key] {
            slot = found
            self.unlink(slot)
        } else if self.slots.count < self.maxKeys {
            slot = self.slots.count
            self.slots.append(Slot(key: key, bucket: TokenBucket(capacity: capacity, now: now), newer: -1, older: -1))
            self.index[key] = slot
        } else {
            slot = self.tail
            self.unlink(slot)
            self.index[self.slots[slot].key] = nil
            self.slots[slot].key = key
            self.slots[slot].bucket = TokenBucket(capacity: capacity, now: now)
            self.index[key] = slot
            self.evictions += 1
        }
        self.pushFront(slot)
        return body(&self.slots[slot].bucket)
    }

    /// Takes `slot` out of the recency list (it stays in `slots`).
    private mutating func unlink(_ slot: Int) {
        let newer = self.slots[slot].newer
        let older = self.slots[slot].older
        if newer >= 0 { self.slots[newer].older = older } else { self.head = older }
        if older >= 0 { self.slots[older].newer = newer } else { self.tail = newer }
        self.slots[slot].newer = -1
        self.slots[slot].older = -1
    }

    /// Makes `slot` the most recently used.
    private mutating func pushFront(_ slot: Int) {
        self.slots[slot].older = self.head
        self.slots[slot].newer = -1
        if self.head >= 0 { self.slots[self.head].newer = slot }
        self.head = slot
        if self.tail < 0 { self.tail = slot }
    }
}
