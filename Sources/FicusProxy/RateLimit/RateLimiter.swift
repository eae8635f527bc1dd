import FicusCore
import NIOConcurrencyHelpers

/// What a rate limit check found: whether the request may pass, and what its answer's fields say.
struct RateLimitVerdict: Equatable {
    /// Whether a token was taken (in `observe` mode the request passes either way).
    var allowed: Bool
    /// Whole tokens left in the key's bucket on this proxy.
    var remaining: Int
    /// Seconds until the bucket holds a token again (0 when it does), rounded up.
    var resetSeconds: Int
}

/// The rate limit state of one proxy: every limited route's buckets, shared by all its event loops under one lock.
///
/// One lock-protected set rather than one per event loop: a key's requests arrive on whichever loop accepted their
/// connection, and per-loop shares would let a client that opens one connection per loop through `loops` times its
/// share. The lock is held for a dictionary lookup and a few arithmetic operations, and only for routes that have a
/// limit; a route without one never reaches it. Each proxy enforces its share of the fleet's limit: the limit
/// divided by the proxies alive (`setProxies`), so that adding a proxy does not raise it.
public final class RateLimiter: Sendable {
    /// One route's limit (as last seen) and its buckets.
    private struct RouteState {
        /// The policy the buckets were made for; a different one starts them afresh.
        var policy: RateLimitPolicy
        /// The route's buckets on this proxy.
        var buckets: RateLimitBuckets
    }

    /// Everything behind the lock.
    private struct State {
        /// The proxies alive, this one included: every limit is divided by it.
        var proxies = 1
        /// Limited routes by name; `keepOnly` drops the routes a new revision no longer limits.
        var routes: [String: RouteState] = [:]
    }

    /// The most keys each route keeps buckets for.
    public let maxKeys: Int
    /// The proxy count and every limited route's buckets, under one lock.
    private let state = NIOLockedValueBox(State())

    /// A limiter for one proxy, counting itself alone until told otherwise.
    public init(maxKeys: Int = RateLimit.maxKeys) {
        self.maxKeys = max(1, maxKeys)
    }

    /// The proxies the fleet's limits are divided by.
    public var proxies: Int { self.state.withLockedValue { $0.proxies } }

    /// Sets the number of proxies sharing every limit (at least 1); whether it changed.
    ///
    /// Buckets are kept: each refills at the new rate, and holds at most the new capacity, from its next request on.
    @discardableResult
    public func setProxies(_ count: Int) -> Bool {
        let count = max(1, count)
        return self.state.withLockedValue { state in
            defer { state.proxies = count }
            return state.proxies != count
        }
    }

    /// This proxy's refill rate (tokens per nanosecond) and bucket capacity for `policy` among `proxies`.
    ///
    /// A bucket holds at least one token, so a share smaller than one request still lets requests through.
    static func rates(_ policy: RateLimitPolicy, proxies: Int) -> (perNanosecond: Double, capacity: Double) {
        let share = 1 / Double(max(1, proxies))
        let period = Double(policy.periodMilliseconds) * 1_000_000
        return (Double(policy.requests) * share / period, max(1, Double(policy.burst) * share))
    }

    /// Takes a token for `key` of `policy`'s route at `now` (nanoseconds of a monotonic clock).
    ///
    /// A route whose policy changed (a new revision) starts again with empty memory: its buckets were sized for
    /// another limit.
    func check(_ policy: RateLimitPolicy, key: Int, now: UInt64) -> RateLimitVerdict {
        self.state.withLockedValue { state in
            let (rate, capacity) = Self.rates(policy, proxies: state.proxies)
            // One hash of the route's name when the policy is the one last seen (every request but the first after a
            // new table).
            let index: [String: RouteState].Index
            if let found = state.routes.index(forKey: policy.route), state.routes.values[found].policy === policy {
                index = found
            } else if let found = state.routes.index(forKey: policy.route), state.routes.values[found].policy == policy {
                state.routes.values[found].policy = policy  // the same limit in a new table: the buckets stay
                index = found
            } else {
                let buckets = RateLimitBuckets(maxKeys: self.maxKeys)
                state.routes[policy.route] = RouteState(policy: policy, buckets: buckets)
                index = state.routes.index(forKey: policy.route)!
            }
            // Changed in place through the dictionary: no copy of the buckets.
            return state.routes.values[index].buckets.withBucket(key, now: now, capacity: capacity) { bucket in
                let allowed = bucket.take(now: now, rate: rate, capacity: capacity)
                let wait = bucket.nanosecondsUntilToken(rate: rate)
                let seconds = wait == 0 ? 0 : Int(min((wait + 999_999_999) / 1_000_000_000, 86_400))
                return RateLimitVerdict(allowed: allowed, remaining: Int(bucket.tokens), resetSeconds: seconds)
            }
        }
    }

    /// Drops the buckets of every route not in `routes` (the routes the table in force limits), so that a removed
    /// limit gives its memory back.
    public func keepOnly(routes: Set<String>) {
        self.state.withLockedValue { state in
            state.routes = state.routes.filter { routes.contains($0.key) }
        }
    }

    /// How many keys `route` has buckets for (for tests and diagnostics).
    func keys(route: String) -> Int {
        self.state.withLockedValue { $0.routes[route]?.buckets.count ?? 0 }
    }
}

/// The fields of a 429 answer: `Retry-After` and the IETF draft's `RateLimit-Policy` and `RateLimit`.
///
/// draft-ietf-httpapi-ratelimit-headers (the structured-field form of draft 08 on): `RateLimit-Policy` names the
/// policy (the route) with its quota `q` per window `w` seconds, `RateLimit` the quota remaining `r` and the seconds
/// `t` until it is available again. The policy is the fleet's limit, as configured; `r` and `t` are this proxy's.
enum RateLimitFields {
    /// The header lines (each ending in CRLF) for a request `policy` limited.
    static func lines(_ policy: RateLimitPolicy, _ verdict: RateLimitVerdict) -> String {
        let name = Self.structuredString(policy.route)
        let (quota, window) = Self.quota(policy)
        let reset = max(1, verdict.resetSeconds)
        return "retry-after: \(reset)\r\n"
            + "ratelimit-policy: \(name);q=\(quota);w=\(window)\r\n"
            + "ratelimit: \(name);r=\(max(0, verdict.remaining));t=\(reset)\r\n"
    }

    /// The quota over a whole number of seconds: `w` is an integer in the draft, so a period under a second (or not
    /// a whole number of them) is scaled to the next whole second.
    static func quota(_ policy: RateLimitPolicy) -> (quota: Int, window: Int) {
        let milliseconds = max(1, policy.periodMilliseconds)
        if milliseconds % 1000 == 0 { return (policy.requests, milliseconds / 1000) }
        let window = (milliseconds + 999) / 1000
        // requests ≤ 10^9 and window ≤ 86,400: the product stays far inside Int64.
        return (max(1, policy.requests * window * 1000 / milliseconds), window)
    }

    /// `text` as a structured-field string (RFC 9651 3.3.3): quoted, `"` and `\` escaped, other bytes outside
    /// printable ASCII replaced by `_`.
    static func structuredString(_ text: String) -> String {
        var out = "\""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                out.append("\\")
                out.append(Character(Unicode.Scalar(byte)))
            case 0x20...0x7E:
                out.append(Character(Unicode.Scalar(byte)))
            default:
                out.append("_")
            }
        }
        return out + "\""
    }
}
