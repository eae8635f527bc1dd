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
    /// Which addresses are out of rotation (shared by every loop's pool) and the retries in flight, per upstream.
    let health: UpstreamHealth

    init(
        configuration: ProxyConfiguration,
        routing: RoutingState,
        metrics: ProxyMetrics?,
        logger: Logger,
        shadow: ShadowDispatcher? = nil,
        accessLogSink: AccessLogSink? = nil,
        requestIDPrefix: String? = nil,
        health: UpstreamHealth? = nil
    ) {
        self.health = health ?? UpstreamHealth(metrics: metrics, logger: logger)
        self.configuration = configuration
        self.routing = routing
        self.metrics = metrics
        self.logger = logger
        self.accessLogSink = accessLogSink
        self.requestIDPrefix = requestIDPrefix
        self.shadow = shadow
    }
}
