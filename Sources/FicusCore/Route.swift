/// A request match (host, path, methods) with where its traffic came from, where it goes now, and the rules between.
///
/// The unit of migration: one route is moved from the monolith to a new service by rules, flips and rollbacks,
/// independently of every other route.
public struct Route: Sendable, Equatable {
    /// The route's unique name.
    ///
    /// Commands, metrics and reports refer to routes by name.
    public var name: String

    /// The host the route serves: exact (`api.example.com`), a wildcard (`*.example.com`), or nil (the default) for
    /// every host.
    ///
    /// Compared without regard to case. A wildcard matches one or more labels in front of the suffix, never the
    /// suffix alone. An exact host beats a wildcard, a longer wildcard beats a shorter one, and both beat nil.
    public var host: String?

    /// The path the route serves: a prefix (`/orders`) or a template (`/orders/{id}`, `/static/**`). Defaults to `/`.
    ///
    /// A path without wildcards is a prefix on segment boundaries (`/orders` matches `/orders` and `/orders/7`,
    /// not `/ordersx`). A template matches whole paths: `{name}` or `*` is exactly one segment, and a final `**` is
    /// any number of further segments, including none. Empty segments (`//`, a trailing `/`) are ignored and paths
    /// are compared byte for byte, not percent-decoded. When several routes match, the most specific wins: at each
    /// segment a literal beats `{name}`, which beats `**`/prefix, and deeper beats shallower.
    public var path: String

    /// The methods the route serves, in upper case; empty (the default) for every method.
    ///
    /// Lets `POST /orders` move to a new service before `GET /orders`. At the same host and path, a route that lists
    /// methods is tried before one that does not; a route whose methods do not include the request's is skipped and
    /// a less specific route may match instead.
    public var methods: [String]

    /// The upstream the route's traffic came from; never changed by a flip.
    ///
    /// The global `killed` switch and rollbacks send traffic here.
    public var legacy: String

    /// The upstream that serves requests matching no rule; a flip changes this. Encoded as `default`.
    ///
    /// Starts equal to `legacy` and becomes the new service once the migration is complete.
    public var defaultUpstream: String

    /// The rules, tried in order; the first match wins. Defaults to none.
    ///
    /// See `Rule`.
    public var rules: [Rule]

    /// Request rewrites keyed by the upstream they apply to. Defaults to none.
    ///
    /// Keyed by upstream rather than by rule so that a rewrite for the new service applies whether a rule or the
    /// default sends traffic there.
    public var rewrites: [String: RequestRewrite]

    /// Timeout overrides for the route. Defaults to none.
    ///
    /// See `RouteTimeouts`.
    public var timeouts: RouteTimeouts

    /// How the route's traffic is mirrored and compared; nil: not shadowed.
    ///
    /// Optional and decoded only when present, so snapshots stored before shadowing existed stay readable.
    public var shadow: ShadowPolicy?

    /// `legacy` (nil, the default) or `off`: whether a request whose chosen upstream is not legacy and fails before
    /// any byte reached the client is sent to legacy instead, when that is safe (docs/PROXY.md, Fallback).
    public var fallback: String?

    /// The answer statuses of the chosen upstream that send a request to legacy; nil: 502, 503 and 504.
    public var fallbackOn: [Int]?

    /// The route's rate limit, or nil (the default): not limited.
    ///
    /// Optional and decoded only when present, so snapshots stored before rate limits existed stay readable.
    public var rateLimit: RateLimit?

    /// The statuses fallback applies to when `fallbackOn` is not set.
    public static let defaultFallbackStatuses = [502, 503, 504]

    /// Whether requests fall back to legacy (`fallback` is `legacy` or not set).
    public var fallsBackToLegacy: Bool { (self.fallback ?? "legacy") == "legacy" }

    /// How requests are tried again when their upstream fails before answering, or nil (the default): never, apart
    /// from the one safe re-send after a reused connection was found closed (docs/PROXY.md, Retries).
    public var retry: RetryPolicy?

    /// How long (`60s`) a recent 200 answer to a GET may stand in when the upstream, and its fallback, fail; nil
    /// (the default): never (docs/PROXY.md, Stale answers).
    public var staleIfError: String?

    /// `fallbackOn`, or its default.
    public var fallbackStatuses: [Int] { self.fallbackOn ?? Self.defaultFallbackStatuses }

    /// Creates a route.
    ///
    /// `defaultUpstream` defaults to `legacy`: a new route starts where its traffic came from.
    public init(
        name: String,
        host: String? = nil,
        path: String = "/",
        methods: [String] = [],
        legacy: String,
        defaultUpstream: String? = nil,
        rules: [Rule] = [],
        rewrites: [String: RequestRewrite] = [:],
        timeouts: RouteTimeouts = RouteTimeouts(),
        shadow: ShadowPolicy? = nil,
        fallback: String? = nil,
        fallbackOn: [Int]? = nil,
        retry: RetryPolicy? = nil,
        staleIfError: String? = nil,
        rateLimit: RateLimit? = nil
    ) {
        self.name = name
        self.host = host
        self.path = path
        self.methods = methods
        self.legacy = legacy
        self.defaultUpstream = defaultUpstream ?? legacy
        self.rules = rules
        self.rewrites = rewrites
        self.timeouts = timeouts
        self.shadow = shadow
        self.fallback = fallback
        self.fallbackOn = fallbackOn
        self.retry = retry
        self.staleIfError = staleIfError
        self.rateLimit = rateLimit
    }
}

extension Route: Codable {
    private enum CodingKeys: String, CodingKey {
        case name
        case host
        case path
        case methods
        case legacy
        case defaultUpstream = "default"
        case rules
        case rewrites
        case timeouts
        case shadow
        case fallback
        case fallbackOn = "fallback_on"
        case retry
        case staleIfError = "stale_if_error"
        case rateLimit = "rate_limit"
    }

    /// Decodes a route with the documented defaults; a missing `default` is `legacy`.
    ///
    /// See the properties.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let legacy = try container.decode(String.self, forKey: .legacy)
        self.init(
            name: try container.decode(String.self, forKey: .name),
            host: try container.decodeIfPresent(String.self, forKey: .host),
            path: try container.decodeIfPresent(String.self, forKey: .path) ?? "/",
            methods: try container.decodeIfPresent([String].self, forKey: .methods) ?? [],
            legacy: legacy,
            defaultUpstream: try container.decodeIfPresent(String.self, forKey: .defaultUpstream),
            rules: try container.decodeIfPresent([Rule].self, forKey: .rules) ?? [],
            rewrites: try container.decodeIfPresent([String: RequestRewrite].self, forKey: .rewrites) ?? [:],
            timeouts: try container.decodeIfPresent(RouteTimeouts.self, forKey: .timeouts) ?? RouteTimeouts(),
            shadow: try container.decodeIfPresent(ShadowPolicy.self, forKey: .shadow),
            fallback: try container.decodeIfPresent(String.self, forKey: .fallback),
            fallbackOn: try container.decodeIfPresent([Int].self, forKey: .fallbackOn),
            retry: try container.decodeIfPresent(RetryPolicy.self, forKey: .retry),
            staleIfError: try container.decodeDurationIfPresent(forKey: .staleIfError),
            rateLimit: try container.decodeIfPresent(RateLimit.self, forKey: .rateLimit)
        )
    }
}

