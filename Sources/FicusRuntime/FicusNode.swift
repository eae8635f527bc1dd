import CoreMetrics
import FicusCore
import FicusProxy
import FicusStore
import Logging
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle

/// One Ficus proxy with everything around it: the store feed, the shadow comparer, the metric windows, the canary
/// controller, the rollout gauges and the admin listener, composed from one `Configuration`.
///
/// `ficus serve` and `ficus demo` both build one, so what the demo shows is what a deployment does. The node never
/// prints: it reports through its logger, its metrics (the registry `/metrics` shows) and `/healthz`. Its services
/// start in order and stop in reverse, so the proxy drains first and nothing is compared after the comparer has
/// finished; the node runs them until a graceful shutdown (of the service group it runs in) or a failure.
public final class FicusNode: Service, Sendable {
    public let configuration: Configuration
    /// The routing table in force.
    public let routing: RoutingState
    /// Where the rules come from, as `/healthz` and the start-up log name it: the store's path or `in-memory`.
    public let sourceName: String
    /// The registry `/metrics` shows.
    public let registry: PrometheusCollectorRegistry
    private let proxy: ProxyServer
    private let admin: AdminServer?
    private let services: [any Service]
    private let logger: Logger
    /// Event-loop groups this node created, shut down when it stops.
    private let ownedGroups: [EventLoopGroup]

    /// Builds a node serving `source`'s rules; nothing listens or runs until `run`.
    ///
    /// - Parameters:
    ///   - eventLoopGroup: the loops of the proxy and admin listeners; nil creates `proxy.threads` loops (one per
    ///     core when 0), which the node shuts down when it stops.
    ///   - clock: what the store feed, the metric windows and the canary controller read the time from and wait on.
    ///   - registry: where the node's metrics go (another component may add its own).
    /// - Throws: when the store cannot be read or its newest revision cannot be compiled.
    public init(
        configuration: Configuration = Configuration(),
        source: Source,
        eventLoopGroup: EventLoopGroup? = nil,
        clock: any NodeClock = SystemNodeClock(),
        registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
        logger: Logger
    ) async throws {
        var proxyConfiguration = configuration.proxy
        if proxyConfiguration.threads < 1 {
            proxyConfiguration.threads = System.coreCount
        }
        let factory = PrometheusMetricsFactory(registry: registry)
        let metrics = ProxyMetrics(factory: factory)
        let routing: RoutingState
        let rateLimiter = RateLimiter()
        var feed: StoreFeed?
        var comparer: ShadowComparer?
        var services: [any Service] = []
        switch source {
        case .store(let store):
            let path = store.location
            let start = try await Self.startingRevision(store: store, cache: configuration.storeFeed.cache, logger: logger)
            let table: RoutingTable
            if let latest = start.revision {
                table = try RoutingTable(configuration: latest.configuration, revision: latest.number)
            } else {
                logger.warning(
                    "the store has no configuration yet: every request gets 404 until one is committed",
                    metadata: ["store": "\(path)"]
                )
                table = try RoutingTable(configuration: FicusCore.Configuration(), revision: 0)
            }
            routing = RoutingState(table)
            self.sourceName = path
            var feedConfiguration = configuration.storeFeed
            if feedConfiguration.advertisedListen == nil {
                feedConfiguration.advertisedListen = "\(proxyConfiguration.listenHost):\(proxyConfiguration.listenPort)"
            }
            let storeFeed = StoreFeed(
                store: store,
                routing: routing,
                configuration: feedConfiguration,
                clock: clock,
                logger: logger,
                metrics: factory,
                rateLimiter: rateLimiter
            )
            if let problem = start.storeProblem {
                storeFeed.startedFromCache(problem)
            } else if let latest = start.revision {
                storeFeed.cacheServed(latest)
            }
            feed = storeFeed
            services.append(storeFeed)
            guard store.storesTelemetry else {
                // Shadow records and metric windows would be refused on every write, and canary gates read them.
                logger.warning(
                    "this store keeps no telemetry yet: no shadow comparison, metric windows or canary driving here",
                    metadata: ["store": "\(path)"]
                )
                break
            }
            let windowFailures = WindowFailures()
            let shadow = Self.shadowFeed(
                store: store,
                feed: storeFeed,
                metrics: metrics,
                factory: factory,
                windowFailures: windowFailures,
                configuration: configuration,
                clock: clock,
                logger: logger
            )
            comparer = shadow.comparer
            services.append(shadow)
            if configuration.canary.enabled {
                services.append(
                    CanaryController(
                        store: store,
                        holder: storeFeed.proxyID,
                        configuration: configuration.canary,
                        windows: configuration.windows,
                        clock: clock,
                        windowFailures: windowFailures,
                        changes: storeFeed.changes,
                        logger: logger
                    )
                )
            }
        case .inMemory(let rules):
            let table = try RoutingTable(configuration: rules, revision: 0)
            routing = RoutingState(table)
            self.sourceName = "in-memory"
            Gauge(label: "ficus_config_revision", factory: factory).record(table.revision)
        }

        var ownedGroups: [EventLoopGroup] = []
        let group: EventLoopGroup
        if let eventLoopGroup {
            group = eventLoopGroup
        } else {
            group = MultiThreadedEventLoopGroup(numberOfThreads: proxyConfiguration.threads)
            ownedGroups.append(group)
        }
        // Shadow copies get a loop of their own, whose thread the dispatcher demotes to SCHED_IDLE.
        var shadowGroup: EventLoopGroup?
        if comparer != nil {
            let created = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            ownedGroups.append(created)
            shadowGroup = created
        }
        let proxy = ProxyServer(
            configuration: proxyConfiguration,
            routing: routing,
            metrics: metrics,
            logger: logger,
            group: group,
            shadowSink: comparer,
            shadowGroup: shadowGroup,
            accessLogSink: configuration.accessLogSink,
            rateLimiter: rateLimiter
        )
        let sourceName = self.sourceName
        let admin = configuration.admin.map { admin in
            AdminServer(
                host: admin.host,
                port: admin.port,
                sources: AdminServer.Sources(
                    health: { [feed] in
                        Self.health(draining: proxy.isDraining, feed: feed, routing: routing, source: sourceName)
                    },
                    metrics: { registry.emitToBuffer() },
                    upstreams: { proxy.upstreamStatesJSON() }
                ),
                group: group
            )
        }
        let started = Self.announcement(
            proxy: proxy,
            admin: admin,
            configuration: proxyConfiguration,
            adminConfiguration: configuration.admin,
            routing: routing,
            source: sourceName,
            logger: logger
        )
        services.append(ProxyService(proxy: proxy, admin: admin, logger: logger, onStarted: started))
        // Always: `https://` upstreams may name files (`ca_file`, `client_cert`, `client_key`) in any revision; with
        // none in use a check reads nothing.
        services.append(
            CertificateWatch(
                proxy: proxy,
                interval: configuration.certificateReloadInterval,
                clock: clock,
                logger: logger
            )
        )
        self.configuration = configuration
        self.routing = routing
        self.registry = registry
        self.proxy = proxy
        self.admin = admin
        self.services = services
        self.logger = logger
        self.ownedGroups = ownedGroups
    }

    /// Re-reads the listener's certificate files and the upstreams' TLS files now (SIGHUP); new connections use
    /// them, open ones keep theirs.
    ///
    /// Returns whether a context was replaced; a failure is logged and leaves the context in force. `force`
    /// rebuilds the contexts even when the files did not change.
    @discardableResult
    public func reloadCertificates(force: Bool = true) -> Bool {
        CertificateWatch.reload(self.proxy, force: force, logger: self.logger)
    }

    /// The address the proxy is bound to, once it listens.
    public var proxyAddress: SocketAddress? { self.proxy.localAddress }

    /// The address the admin listener is bound to, once it listens.
    public var adminAddress: SocketAddress? { self.admin?.localAddress }

    /// Runs every service until a graceful shutdown of the group this node runs in, then drains and stops them in
    /// reverse order, and shuts down the event loops the node created.
    public func run() async throws {
        let group = ServiceGroup(services: self.services, logger: self.logger)
        do {
            try await group.run()
        } catch {
            await self.shutDownGroups()
            throw error
        }
        await self.shutDownGroups()
    }

    private func shutDownGroups() async {
        for group in self.ownedGroups.reversed() {
            try? await group.shutdownGracefully()
        }
    }

    /// The revision a node starts with: the store's newest, or, when the store cannot be read, the one in `cache`
    /// (with what is wrong with the store). Throws the store's error, and what is wrong with the cache, when neither
    /// can be read.
    static func startingRevision(
        store: any ConfigurationStore,
        cache: ServedConfigurationCache?,
        logger: Logger
    ) async throws -> (revision: StoredRevision?, storeProblem: String?) {
        do {
            return (try await store.latest(), nil)
        } catch {
            guard let cache, let location = (store as? any StoreBackend)?.location else {
                throw error
            }
            let entry: ServedConfigurationCache.Entry
            do {
                entry = try cache.read(store: location)
            } catch let cacheError {
                throw NodeStartError(store: "\(error)", cache: "\(cacheError)")
            }
            let problem =
                "\(error); serving revision \(entry.revision.number) from the configuration cache '\(cache.path)' "
                + "(cached \(entry.cachedAt.ISO8601Format())) until the store can be read"
            logger.warning(
                "starting from the configuration cache: the store cannot be read",
                metadata: [
                    "store": "\(location)", "error": "\(error)", "cache": "\(cache.path)",
                    "revision": "\(entry.revision.number)", "cached_at": "\(entry.cachedAt.ISO8601Format())",
                ]
            )
            return (entry.revision, problem)
        }
    }

    /// The comparer and the feed that runs it and stores the metric windows.
    private static func shadowFeed(
        store: any StoreBackend,
        feed: StoreFeed,
        metrics: ProxyMetrics,
        factory: MetricsFactory,
        windowFailures: WindowFailures,
        configuration: Configuration,
        clock: any NodeClock,
        logger: Logger
    ) -> ShadowFeed {
        let optionsCache = CompareOptionsCache(routing: feed.routing)
        let comparer = ShadowComparer(
            sink: StoreShadowSink(store: store),
            queueLimit: configuration.shadow.queueLimit,
            batchSize: configuration.shadow.batchSize,
            gatherMilliseconds: Int(configuration.shadow.gather.seconds * 1000),
            logger: logger,
            metrics: factory,
            coverage: metrics.coverage
        ) { route in optionsCache.options(for: route) }
        var shadow = ShadowFeed(
            comparer: comparer,
            metrics: metrics,
            store: store,
            proxyID: feed.proxyID,
            windows: configuration.windows,
            clock: clock,
            logger: logger
        )
        shadow.failures = windowFailures
        if configuration.canary.enabled {
            shadow.canaryIntervals = { await WindowPace.activeCanaryIntervals(store) }
        }
        return shadow
    }

    /// The status and JSON body of `/healthz`.
    ///
    /// A draining proxy answers 503 so that load balancers stop sending while it finishes what it has; a store
    /// error makes it `degraded` (still serving the last good revision).
    static func health(draining: Bool, feed: StoreFeed?, routing: RoutingState, source: String) -> (Int, String) {
        let lastError = feed?.currentHealth.lastError
        let status = draining ? "draining" : lastError == nil ? "ok" : "degraded"
        var body = "{\"status\":\"\(status)\""
        body += ",\"revision\":\(routing.current.revision),\"source\":\"\(JSONEscaping.escape(source))\""
        if let lastError {
            body += ",\"last_error\":\"\(JSONEscaping.escape(lastError))\""
        }
        return (draining ? 503 : 200, body + "}\n")
    }

    /// The log line that says where the node serves, once both listeners are bound.
    private static func announcement(
        proxy: ProxyServer,
        admin: AdminServer?,
        configuration: ProxyConfiguration,
        adminConfiguration: Configuration.Admin?,
        routing: RoutingState,
        source: String,
        logger: Logger
    ) -> @Sendable () -> Void {
        {
            let bound = proxy.localAddress?.port ?? configuration.listenPort
            var metadata: Logger.Metadata = [
                "listen": "\(configuration.listenHost):\(bound)",
                "source": "\(source)",
                "revision": "\(routing.current.revision)",
                "threads": "\(configuration.threads)",
                "max_connections": "\(configuration.maxConnections)",
            ]
            if let adminConfiguration {
                let adminBound = admin?.localAddress?.port ?? adminConfiguration.port
                metadata["admin"] = "\(adminConfiguration.host):\(adminBound)"
            }
            logger.notice("ficus serving", metadata: metadata)
        }
    }
}

/// Neither the store nor the configuration cache could give a node its first revision: it does not start.
public struct NodeStartError: Error, Sendable, CustomStringConvertible {
    /// Why the store could not be read.
    public var store: String
    /// Why the cache could not be served.
    public var cache: String

    public var description: String {
        "\(self.store); and there is no configuration to start from: \(self.cache)"
    }
}
