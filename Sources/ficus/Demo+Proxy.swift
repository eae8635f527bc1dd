import CoreMetrics
import FicusCore
import FicusProxy
import FicusStore
import Foundation
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle

/// The proxy of `ficus demo`, wired to its store the way `ficus serve` wires it, and run inside the demo's process.
///
/// The same pieces as Serve.swift (StoreFeed for revisions, ShadowComparer and ShadowFeed for comparisons and
/// metric windows, ProxyServer for traffic), so what the demo shows is what a deployment does; only the admin
/// listener, the access log and the signal handling are left out, because the demo drives its own shutdown.
final class DemoProxy: Sendable {
    let routing: RoutingState
    private let proxy: ProxyServer
    private let serviceGroup: ServiceGroup
    private let running: Task<Void, any Error>

    /// Starts the proxy on 127.0.0.1 and a free port, serving the store's newest revision and following new ones.
    ///
    /// Returns once the listener is bound, so the caller can send traffic at once.
    static func start(
        store: SQLiteConfigurationStore,
        group: EventLoopGroup,
        logger: Logger
    ) async throws -> DemoProxy {
        let factory = PrometheusMetricsFactory(registry: PrometheusCollectorRegistry())
        guard let latest = try await store.latest() else {
            throw CLIError.failed("the store has no configuration")
        }
        let table = try RoutingTable(configuration: latest.configuration, revision: latest.number)
        // A short poll and window: flips should show at once, and a half-minute demo should fill a few windows.
        let feed = StoreFeed(
            store: store,
            routing: RoutingState(table),
            logger: logger,
            metrics: factory,
            pollInterval: 0.005,
            heartbeatInterval: 3,
            listen: "127.0.0.1:0"
        )
        var configuration = ProxyConfiguration()
        configuration.listenHost = "127.0.0.1"
        configuration.listenPort = 0
        configuration.threads = 1
        configuration.accessLog = false
        configuration.drainTimeout = .seconds(5)
        let metrics = ProxyMetrics(factory: factory)
        let routing = feed.routing
        let optionsCache = CompareOptionsCache(routing: routing)
        let comparer = ShadowComparer(
            sink: StoreShadowSink(store: feed.shadowStore),
            logger: logger,
            metrics: factory,
            coverage: metrics.coverage
        ) { route in optionsCache.options(for: route) }
        let shadowFeed = ShadowFeed(
            comparer: comparer,
            metrics: metrics,
            store: feed.shadowStore,
            proxyID: feed.proxyID,
            windowInterval: 5,
            logger: logger
        )
        let proxy = ProxyServer(
            configuration: configuration,
            routing: routing,
            metrics: metrics,
            logger: logger,
            group: group,
            shadowSink: comparer
        )
        let service = ProxyService(proxy: proxy, admin: nil, logger: logger)
        let serviceGroup = ServiceGroup(services: [feed, shadowFeed, service], logger: logger)
        let running = Task { try await serviceGroup.run() }
        let demo = DemoProxy(routing: routing, proxy: proxy, serviceGroup: serviceGroup, running: running)
        try await demo.waitUntilListening()
        return demo
    }

    private init(
        routing: RoutingState,
        proxy: ProxyServer,
        serviceGroup: ServiceGroup,
        running: Task<Void, any Error>
    ) {
        self.routing = routing
        self.proxy = proxy
        self.serviceGroup = serviceGroup
        self.running = running
    }

    /// Where the proxy listens.
    var port: Int { self.proxy.localAddress?.port ?? 0 }

    private func waitUntilListening() async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while self.proxy.localAddress == nil {
            guard ContinuousClock.now < deadline else {
                await self.stop()
                throw CLIError.failed("the proxy did not start listening within 10 s")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Waits until the proxy serves `revision` (the store is polled every few milliseconds).
    func waitForRevision(_ revision: Int, timeout: Duration = .seconds(10)) async throws {
        let deadline = ContinuousClock.now + timeout
        while self.routing.current.revision != revision {
            guard ContinuousClock.now < deadline else {
                let serving = self.routing.current.revision
                throw CLIError.failed("the proxy still serves revision \(serving), not \(revision), after \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Drains the proxy, stores the comparisons and metric windows still queued, and stops following the store.
    ///
    /// Services stop in reverse order, as under `ficus serve`: the proxy first, so nothing is compared after the
    /// comparer has finished.
    func stop() async {
        await self.serviceGroup.triggerGracefulShutdown()
        _ = await self.running.result
    }
}
