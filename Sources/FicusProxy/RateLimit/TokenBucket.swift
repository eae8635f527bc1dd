/// One key's tokens: refilled at a rate up to a capacity, one taken per request.
///
/// Pure: the time is passed in (nanoseconds of a monotonic clock) and the rate and capacity with it, so that a
/// change of the proxy's share applies to every bucket at its next use without visiting them all.
struct TokenBucket: Equatable {
    /// Tokens held now (as of `updated`); fractions accumulate between requests.
    private(set) var tokens: Double
    /// When `tokens` was last brought up to date.
    private(set) var updated: UInt64

    /// A full bucket at `now`: a key seen for the first time may use its whole burst.
    init(capacity: Double, now: UInt64) {
        self.tokens = capacity
        self.updated = now
    }

    /// Adds what `rate` (tokens per nanosecond) refilled since the last update, up to `capacity`.
    ///
    /// A clock that goes backwards adds nothing rather than a negative amount.
    mutating func refill(now: UInt64, rate: Double, capacity: Double) {
        if now > self.updated {
            self.tokens = min(capacity, self.tokens + Double(now - self.updated) * rate)
            self.updated = now
        } else {
            self.tokens = min(capacity, self.tokens)
        }
    }

    /// A token less this much counts as whole: refills are sums of products of doubles, and a bucket that is one
    /// rounding error short of a token at the time a client was told to come back must not refuse it.
    static let tolerance = 1e-9

    /// Takes one token if there is one; whether there was.
    mutating func take(now: UInt64, rate: Double, capacity: Double) -> Bool {
        self.refill(now: now, rate: rate, capacity: capacity)
        guard self.tokens >= 1 - Self.tolerance else { return false }
        self.tokens = max(0, self.tokens - 1)
        return true
    }

    /// Nanoseconds until the bucket holds a whole token at `rate` (to the nearest nanosecond); 0 when it does.
    func nanosecondsUntilToken(rate: Double) -> UInt64 {
        guard self.tokens < 1 - Self.tolerance else { return 0 }
        guard rate > 0 else { return UInt64(Int64.max) }
        let wait = ((1 - self.tokens) / rate).rounded()
        return wait >= Double(Int64.max) ? UInt64(Int64.max) : UInt64(wait)
    }
}
