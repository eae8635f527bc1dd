import Logging

/// What one client connection shares with every other connection of its proxy.
final class ProxyContext: Sendable {
    let configuration: ProxyConfiguration
    let routing: RoutingState
    let metrics: ProxyMetrics?
    let logger: Logger
    /// Sends shadow copies from its own event loop; nil when the proxy has no shadow sink.
    let shadow: ShadowDispatcher?
    /// Where access log lines go as bytes; nil: through `logger` (slower: a metadata dictionary per request).
    let accessLogSink: AccessLogSink?
    /// The prefix of every connection's request ids; nil: random per connection (a harness fixes it).
    let requestIDPrefix: String?
    /// The retry budgets of every upstream, shared by the proxy's event loops.
    let retryBudget = RetryBudget()
    /// Recent answers of routes with `stale_if_error`, shared by the proxy's event loops.
    let staleAnswers: StaleAnswers
    /// The fraction (0 ..< 1) of a retry's back-off ceiling to wait: random (full jitter); a harness fixes it.
    let retryJitter: @Sendable () -> Double
    /// The proxy's rate limit buckets, shared by every event loop; used only by routes that have a limit.
    let rateLimiter: RateLimiter
    /// Which addresses are out of rotation (shared by every loop's pool) and the retries in flight, per upstream.
    let health: UpstreamHealth
    /// Client TLS contexts for `https://` upstreams, shared by every event loop's pool, the shadow loop's and the
    /// health checks.
    let upstreamTLS: UpstreamTLSContexts
    /// The WebSocket tunnels open, shared by every event loop.
    let tunnels = TunnelCounter()

    init(
        configuration: ProxyConfiguration,
        routing: RoutingState,
        metrics: ProxyMetrics?,
        logger: Logger,
        shadow: ShadowDispatcher? = nil,
        accessLogSink: AccessLogSink? = nil,
        requestIDPrefix: String? = nil,
        rateLimiter: RateLimiter = RateLimiter(),
        health: UpstreamHealth? = nil,
        upstreamTLS: UpstreamTLSContexts = UpstreamTLSContexts(),
        retryJitter: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }
    ) {
        self.retryJitter = retryJitter
        self.upstreamTLS = upstreamTLS
        self.health = health ?? UpstreamHealth(metrics: metrics, logger: logger)
        self.configuration = configuration
        self.routing = routing
        self.metrics = metrics
        self.logger = logger
        self.accessLogSink = accessLogSink
        self.requestIDPrefix = requestIDPrefix
        self.shadow = shadow
        self.rateLimiter = rateLimiter
        self.staleAnswers = StaleAnswers(
            limits: .init(
                maxBytes: configuration.staleAnswers.maxBytes, maxEntryBytes: configuration.staleAnswers.maxEntryBytes))
    }
}
