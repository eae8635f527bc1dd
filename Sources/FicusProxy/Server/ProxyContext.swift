import Logging

/// What one client connection shares with every other connection of its proxy.
final class ProxyContext: Sendable {
    let configuration: ProxyConfiguration
    let routing: RoutingState
    let metrics: ProxyMetrics?
    let logger: Logger
    /// Sends shadow copies from its own event loop; nil when the proxy has no shadow sink.
    let shadow: ShadowDispatcher?

    init(
        configuration: ProxyConfiguration,
        routing: RoutingState,
        metrics: ProxyMetrics?,
        logger: Logger,
        shadowSink: ShadowSink? = nil
    ) {
        self.configuration = configuration
        self.routing = routing
        self.metrics = metrics
        self.logger = logger
        self.shadow = shadowSink.map { ShadowDispatcher(sink: $0, configuration: configuration, metrics: metrics) }
    }
}
