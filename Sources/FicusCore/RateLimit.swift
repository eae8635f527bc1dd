/// A route's rate limit: token buckets of `requests` per `per`, holding at most `burst`, one per key.
///
/// Kept as configured text (`per: 1s`, `key: client_ip`, `mode: observe`) so that a bad value is a validation error
/// naming the field, never a decoding failure; the parsed forms are computed properties. The limit is for the whole
/// fleet: each proxy enforces its share (docs/PROXY.md, Rate limiting).
public struct RateLimit: Sendable, Equatable {
    /// How many requests a key may make per `per`, fleet-wide; at least 1.
    public var requests: Int

    /// The period of `requests`: `500ms`, `1s`, `1m`, `1h` (or a whole number of seconds), 1 ms to 24 h.
    public var per: String

    /// The most requests a key may make at once after being idle; nil: `requests`.
    ///
    /// A bucket holds `burst` tokens and refills at `requests` per `per`.
    public var burst: Int?

    /// What a bucket is kept per: `none` (nil, the default: one bucket for the route), `client_ip`, `header:NAME`
    /// or `identity` (the store-wide identity sticky routing uses).
    public var key: String?

    /// `enforce` (nil, the default: a limited request is answered 429) or `observe` (it is counted and let through).
    public var mode: String?

    /// Distinct keys a proxy keeps buckets for per route; the least recently used bucket goes first.
    ///
    /// Bounds memory (about 100 bytes a key) whatever keys clients send; an evicted key starts again with a full
    /// bucket.
    public static let maxKeys = 10_000

    /// The most requests or burst a limit may name: beyond it a limit is no limit.
    public static let maxRequests = 1_000_000_000

    /// What a bucket is kept per, parsed.
    public enum Key: Sendable, Equatable, CustomStringConvertible {
        /// One bucket for every request of the route.
        case none
        /// One bucket per client address (after `--trusted-proxy`).
        case clientIP
        /// One bucket per value of a request header; requests without it share one bucket.
        case header(String)
        /// One bucket per identity: the store-wide identity (`Configuration.identity`), or the client address.
        case identity

        /// Parses `none`, `client_ip`, `header:NAME` or `identity`; nil for anything else.
        ///
        /// The kind is case-insensitive, as `Attribute`'s is.
        public init?(_ text: String) {
            switch text.lowercased() {
            case "none": self = .none
            case "client_ip": self = .clientIP
            case "identity": self = .identity
            default:
                guard text.lowercased().hasPrefix("header:") else { return nil }
                let name = String(text.dropFirst("header:".count))
                guard !name.isEmpty else { return nil }
                self = .header(name)
            }
        }

        /// The text `init?(_:)` reads.
        public var description: String {
            switch self {
            case .none: return "none"
            case .clientIP: return "client_ip"
            case .header(let name): return "header:\(name)"
            case .identity: return "identity"
            }
        }
    }

    /// Creates a limit; see the properties for the defaults.
    public init(requests: Int, per: String = "1s", burst: Int? = nil, key: String? = nil, mode: String? = nil) {
        self.requests = requests
        self.per = per
        self.burst = burst
        self.key = key
        self.mode = mode
    }

    /// `per` in milliseconds, or nil when it is not a duration from 1 ms to 24 h.
    public var perMilliseconds: Int? { DurationText.milliseconds(self.per) }

    /// `burst`, or its default (`requests`).
    public var effectiveBurst: Int { self.burst ?? self.requests }

    /// `key` parsed (nil: `none`); nil when it is not a key.
    public var parsedKey: Key? { Key(self.key ?? "none") }

    /// Whether limited requests are only counted (`mode: observe`).
    public var observes: Bool { self.mode == "observe" }

    /// `100/1s burst 200 key client_ip enforce`: the limit on one line, as `route show` and `explain` print it.
    public var oneLine: String {
        "\(self.requests)/\(self.per) burst \(self.effectiveBurst) key \(self.key ?? "none") \(self.mode ?? "enforce")"
    }
}

extension RateLimit: Codable {
    /// The keys of rules files and stored snapshots (`rate_limit: {requests, per, burst, key, mode}`).
    private enum CodingKeys: String, CodingKey {
        case requests
        case per
        case burst
        case key
        case mode
    }

    /// Decodes a limit; `per` may be text (`1s`) or a whole number of seconds (read as `10s`), and defaults to `1s`.
    ///
    /// A YAML `per: 10` is an integer to the decoder; reading it as seconds keeps the obvious spelling working.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let per = try container.decodeDurationIfPresent(forKey: .per) ?? "1s"
        self.init(
            requests: try container.decode(Int.self, forKey: .requests),
            per: per,
            burst: try container.decodeIfPresent(Int.self, forKey: .burst),
            key: try container.decodeIfPresent(String.self, forKey: .key),
            mode: try container.decodeIfPresent(String.self, forKey: .mode)
        )
    }

    /// Encodes the configured text, leaving out what is not set.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.requests, forKey: .requests)
        try container.encode(self.per, forKey: .per)
        try container.encodeIfPresent(self.burst, forKey: .burst)
        try container.encodeIfPresent(self.key, forKey: .key)
        try container.encodeIfPresent(self.mode, forKey: .mode)
    }
}

/// A route's rate limit compiled for the proxy: numbers parsed, the key's source resolved.
///
/// A class, so that a decision carries it as one reference; a route without a limit costs the proxy a nil check.
public final class RateLimitPolicy: Sendable, Equatable, CustomStringConvertible {
    /// Where a request's key comes from.
    public enum KeySource: Sendable, Equatable {
        /// One bucket for the route.
        case none
        /// The client address.
        case clientIP
        /// A header (lower-cased name); requests without it share one bucket.
        case header(String)
        /// An attribute of the store-wide identity; requests without it fall back to the client address, as sticky
        /// routing does.
        case identity(Attribute)
    }

    /// The route the limit belongs to; also the policy's name in `RateLimit-Policy`.
    public let route: String
    /// Requests per period, fleet-wide.
    public let requests: Int
    /// The period, in milliseconds.
    public let periodMilliseconds: Int
    /// Tokens a bucket holds at most, fleet-wide.
    public let burst: Int
    /// Where a request's bucket key comes from.
    public let key: KeySource
    /// Whether limited requests are only counted.
    public let observes: Bool
    /// The limit as configured (`100/1s burst 200 key client_ip enforce`).
    public let description: String

    /// Compiles `limit` for `route`; `identity` is the store-wide identity (`Configuration.identity`).
    ///
    /// Expects a validated limit; values a store that skipped validation holds are clamped rather than trusted.
    public init(route: String, limit: RateLimit, identity: Attribute?) {
        self.route = route
        self.requests = min(max(limit.requests, 1), RateLimit.maxRequests)
        self.periodMilliseconds = limit.perMilliseconds ?? 1000
        self.burst = min(max(limit.effectiveBurst, 1), RateLimit.maxRequests)
        switch limit.parsedKey ?? .none {
        case .none: self.key = .none
        case .clientIP: self.key = .clientIP
        case .header(let name): self.key = .header(name.lowercased())
        case .identity:
            switch identity {
            case nil, .clientIP?: self.key = .clientIP
            case let attribute?: self.key = .identity(attribute)
            }
        }
        self.observes = limit.observes
        self.description = limit.oneLine
    }

    /// The bucket `request` is counted in: equal for requests of one key, different (but for 64-bit hash
    /// collisions) for requests of different keys.
    ///
    /// A hash rather than the value, so that a bucket's memory does not depend on what a client sends.
    public func bucketKey<R: RoutableRequest>(_ request: R) -> Int {
        var hasher = Hasher()
        switch self.key {
        case .none:
            return 0
        case .clientIP:
            Self.combineAddress(request, into: &hasher)
        case .header(let name):
            if let value = request.header(name) {
                hasher.combine(1 as UInt8)
                hasher.combine(value)
            } else {
                hasher.combine(0 as UInt8)
            }
        case .identity(let attribute):
            let value: String?
            switch attribute {
            case .header(let name): value = request.header(name.lowercased())
            case .cookie(let name): value = request.cookie(name)
            case .query(let name): value = QueryString.value(named: name, in: request.query)
            case .clientIP: value = nil
            case .clientCertSubject: value = request.clientCertificateSubject
            }
            if let value, !value.isEmpty {
                hasher.combine(1 as UInt8)
                hasher.combine(value)
            } else {
                Self.combineAddress(request, into: &hasher)
            }
        }
        return hasher.finalize()
    }

    /// Adds the client address (or, when unknown, only the tag that says so) to `hasher`.
    private static func combineAddress<R: RoutableRequest>(_ request: R, into hasher: inout Hasher) {
        hasher.combine(2 as UInt8)
        if let address = request.clientAddress?.unmapped {
            hasher.combine(address)
        }
    }

    /// Whether two policies limit the same way (the proxy keeps a route's buckets while this holds).
    public static func == (lhs: RateLimitPolicy, rhs: RateLimitPolicy) -> Bool {
        lhs.route == rhs.route && lhs.requests == rhs.requests && lhs.periodMilliseconds == rhs.periodMilliseconds
            && lhs.burst == rhs.burst && lhs.key == rhs.key && lhs.observes == rhs.observes
    }
}
