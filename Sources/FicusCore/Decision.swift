/// Where one request goes, and why.
///
/// A plain value returned by `RoutingTable.decide`: the proxy acts on it, metrics label with it, and `explain` shows
/// the steps behind it.
public struct Decision: Sendable, Equatable {
    /// Why the upstream was chosen.
    ///
    /// Lets metrics and logs tell rule traffic from default traffic and kill-switch traffic without string checks.
    public enum Reason: String, Sendable, Equatable {
        /// No route matched; `upstream` is empty and the proxy answers 404.
        case noRoute = "no_route"
        /// The global kill switch is on; the route's legacy upstream serves.
        case killed
        /// A rule matched.
        case rule
        /// No rule matched; the route's default upstream serves.
        case routeDefault = "default"
    }

    /// The name of the serving upstream; empty when no route matched.
    ///
    /// A name, not addresses: the proxy resolves it with `RoutingTable.upstream(named:)` against the same table.
    public var upstream: String

    /// The upstream to mirror the request to, or nil.
    ///
    /// Set only when the route has a shadow policy, the method is shadowed and the request falls in the sample;
    /// never the serving upstream.
    public var shadow: String?

    /// The upstream that answers this request a second time to learn noise if the proxy draws it as a noise
    /// sample, or nil when it cannot be one (not shadowed, not a safe method, or noise sampling off).
    ///
    /// The draw is the proxy's, per request and independent of who sends it or which URL: every one of an
    /// endpoint's first shadowed safe requests is a noise sample (a floor, default 20), then `noisePercent` of them.
    /// A hash of user and URL would give an endpoint with few distinct URLs, or one client, all or nothing.
    public var noise: String?

    /// The share (0–100) of this request's endpoint's shadowed safe requests drawn as noise samples past the floor.
    public var noisePercent: Double = 0

    /// The idle blue-green slot this request previews, or nil.
    ///
    /// Set when the chosen upstream has slots and the request asked for the idle one (`X-Ficus-Preview` from a
    /// trusted client) or is in the upstream's preview segment; `upstream` is then the preview name
    /// (`orders@green`). Previews are never shadowed.
    public var preview: BlueGreenSlots.Slot?

    /// The matched route's name; nil when no route matched.
    public var route: String?

    /// The matched rule's name; nil when the route default (or the kill switch) applied.
    public var rule: String?

    /// The sticky bucket (1...100) of the last rule whose percentage condition was evaluated, or nil.
    ///
    /// When a percentage rule matched, this is its bucket.
    public var bucket: Int?

    /// The whole 32-bit hash `bucket` was taken from (the rule's seed and its sticky value), or nil.
    ///
    /// Distinct sticky values give distinct hashes (but for rare collisions), so proxies count the distinct hashes
    /// a route's requests carry to tell whether a canary's split rests on enough different users
    /// (`MetricWindow.identityHashes`); the value itself never leaves the routing decision.
    public var stickyHash: UInt32?

    /// The rewrite configured for the serving upstream on this route, or nil.
    public var rewrite: RequestRewrite?

    /// The upstream a failed request goes to instead (the route's legacy), or nil: the route has `fallback: off`,
    /// the request already goes to legacy, or the kill switch is on.
    public var fallback: String?

    /// The chosen upstream's answer statuses that send the request to `fallback` (empty without one).
    public var fallbackStatuses: [Int] = []

    /// The route's retry plan, or nil: the route has no `retry` (docs/PROXY.md, Retries).
    public var retry: RetryPlan?

    /// How long a stale answer may stand in for a failure, in milliseconds; nil: the route has no `stale_if_error`.
    public var staleIfErrorMilliseconds: Int?

    /// The route's rate limit, or nil: the proxy checks it before leasing an upstream connection.
    ///
    /// Set whichever upstream serves (the kill switch included): a limit protects the route, not one side.
    public var rateLimit: RateLimitPolicy?

    /// The route's timeout overrides; empty when no route matched.
    public var timeouts: RouteTimeouts

    /// Why the upstream was chosen.
    public var reason: Reason

    /// Creates a decision.
    ///
    /// Mostly for tests; the routing table builds decisions itself.
    public init(
        upstream: String,
        shadow: String? = nil,
        route: String?,
        rule: String? = nil,
        bucket: Int? = nil,
        stickyHash: UInt32? = nil,
        rewrite: RequestRewrite? = nil,
        timeouts: RouteTimeouts = RouteTimeouts(),
        reason: Reason
    ) {
        self.upstream = upstream
        self.shadow = shadow
        self.route = route
        self.rule = rule
        self.bucket = bucket
        self.stickyHash = stickyHash
        self.rewrite = rewrite
        self.timeouts = timeouts
        self.reason = reason
    }

    /// The decision for a request that matched no route.
    ///
    /// The proxy answers it with 404 instead of guessing an upstream.
    public static let noRoute = Decision(upstream: "", route: nil, reason: .noRoute)
}
