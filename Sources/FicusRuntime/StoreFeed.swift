import CoreMetrics
import FicusCore
import FicusProxy
import FicusRollout
import FicusStore
import Foundation
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle

/// Feeds the proxy every new revision of the store and tells the store that this proxy is alive.
///
/// This is the wiring DESIGN.md asks for: FicusProxy never sees the store, only compiled tables. A revision that
/// fails to load, or a store that cannot be read, leaves the last good table serving; the failure is logged, counted
/// (`ficus_config_errors_total`) and shown on `/healthz`.
public final class StoreFeed: Service, Sendable {
    public struct Health: Sendable {
        public var lastError: String?
        public var lastErrorAt: Date?
    }

    public let store: any ConfigurationStore
    /// The same store, where shadow records and metric windows go.
    public let shadowStore: any ShadowStore
    public let routing: RoutingState
    let logger: Logger
    let configuration: FicusNode.Configuration.StoreFeed
    /// This proxy's name in the store: host, process id and a random suffix.
    public let proxyID: String
    let clock: any NodeClock
    let startedAt: Date
    /// The listen address the heartbeat names (`configuration.advertisedListen`, which the node always sets).
    let listen: String
    private let revisionGauge: Gauge
    /// `ficus_store_up`: 1 while the store delivers revisions, 0 from a failure (unreachable, unreadable) until the
    /// next revision loads.
    private let storeUp: Gauge
    private let errors: Counter
    /// Telemetry the store dropped, by kind (`records`, `windows`, `batches`), as counters.
    private let telemetryDropped: [String: Counter]
    /// The store's drop counts last exported, so that the counters advance by the difference.
    private let exportedDrops = NIOLockedValueBox(TelemetryDrops())
    private let health = NIOLockedValueBox(Health())
    /// Set while the node serves a revision from its configuration cache: the store's first revision is then served
    /// even when its number is the cached one (the store may have been restored to other content since).
    private let servingCache = NIOLockedValueBox(false)
    /// Fired for every revision and every other change the store's watch reports (the canary controller waits on it).
    public let changes = ChangeSignal()
    /// The last failure to write the configuration cache, logged once until a write succeeds.
    private let cacheFailure = NIOLockedValueBox<String?>(nil)
    /// Canary and blue-green gauges, refreshed with every revision and every heartbeat.
    private let rollouts: RolloutGauges
    /// Told after every heartbeat how many proxies are alive, so that each enforces its share of the fleet's rate
    /// limits; nil: not told (a proxy alone).
    let rateLimiter: RateLimiter?
    /// `ficus_rate_limit_proxies`: the proxies this one divides rate limits by.
    private let rateLimitProxies: Gauge

    public init(
        store: any ConfigurationStore & ShadowStore,
        routing: RoutingState,
        configuration: FicusNode.Configuration.StoreFeed,
        clock: any NodeClock = SystemNodeClock(),
        logger: Logger,
        metrics: MetricsFactory,
        rateLimiter: RateLimiter? = nil
    ) {
        self.store = store
        self.shadowStore = store
        self.routing = routing
        self.logger = logger
        self.configuration = configuration
        self.clock = clock
        self.startedAt = clock.now
        self.listen = configuration.advertisedListen ?? ""
        self.proxyID = "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier):\(UUID().uuidString.prefix(8))"
        self.revisionGauge = Gauge(label: "ficus_config_revision", factory: metrics)
        self.storeUp = Gauge(label: "ficus_store_up", factory: metrics)
        self.storeUp.record(1)
        self.errors = Counter(label: "ficus_config_errors_total", factory: metrics)
        var dropped: [String: Counter] = [:]
        for kind in ["records", "windows", "batches"] {
            dropped[kind] = Counter(
                label: "ficus_telemetry_dropped_total", dimensions: [("kind", kind)], factory: metrics)
        }
        self.telemetryDropped = dropped
        self.rollouts = RolloutGauges(factory: metrics)
        self.rateLimiter = rateLimiter
        self.rateLimitProxies = Gauge(label: "ficus_rate_limit_proxies", factory: metrics)
        self.rateLimitProxies.record(rateLimiter?.proxies ?? 1)
        self.revisionGauge.record(routing.current.revision)
        self.rollouts.update(configuration: routing.current.configuration)
    }

    /// The last store or revision error, if any (for `/healthz`).
    public var currentHealth: Health { self.health.withLockedValue { $0 } }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.followRevisions() }
                group.addTask { await self.beat() }
                await group.waitForAll()
            }
        }
    }

    private func followRevisions() async {
        for await event in self.store.watch(pollInterval: self.configuration.pollInterval.seconds) {
            switch event {
            case .revision(let revision):
                let fromCache = self.servingCache.withLockedValue { $0 }
                guard revision.number != self.routing.current.revision || fromCache else {
                    // The same revision again (a reconnection): rollout rows may have changed meanwhile.
                    self.recovered()
                    self.changes.fire()
                    continue
                }
                self.serve(revision) {
                    self.logger.notice(
                        "serving a new revision",
                        metadata: ["revision": "\(revision.number)", "summary": "\(revision.summary)"]
                    )
                }
            case .replaced(let revision, let detail):
                let previous = self.routing.current.revision
                self.serve(revision) {
                    self.logger.warning(
                        "the store was replaced or restored; serving the newest revision it now holds",
                        metadata: [
                            "detail": "\(detail)", "revision": "\(revision.number)", "previous": "\(previous)",
                            "summary": "\(revision.summary)",
                        ]
                    )
                }
            case .failed(let message):
                self.storeUp.record(0)
                self.failed(message)
            case .changed:
                break
            }
            if case .failed = event {
                continue
            }
            self.changes.fire()
        }
    }

    /// Compiles and swaps in `revision`, then clears a reported error (a later revision loaded: the store works).
    ///
    /// A revision that cannot be compiled is a failure like any other and leaves the last good table serving.
    private func serve(_ revision: StoredRevision, announce: () -> Void) {
        do {
            // Against the table being served: only the routes, segments and upstreams that changed are checked and
            // compiled again (a flip of one route among thousands recompiles one chunk of routes).
            let table = try RoutingTable(
                configuration: revision.configuration,
                revision: revision.number,
                previous: self.routing.current
            )
            self.routing.replace(with: table)
            self.rateLimiter?.keepOnly(
                routes: Set(revision.configuration.routes.filter { $0.rateLimit != nil }.map(\.name)))
            self.revisionGauge.record(revision.number)
            self.rollouts.update(configuration: revision.configuration)
            self.servingCache.withLockedValue { $0 = false }
            self.recovered()
            announce()
            self.cacheServed(revision)
        } catch {
            self.failed("revision \(revision.number) cannot be served: \(error)")
        }
    }

    /// Marks the node as serving its configuration cache because the store cannot be read (`problem` says why):
    /// `/healthz` says `degraded` with it and `ficus_store_up` is 0 until the store delivers a revision.
    public func startedFromCache(_ problem: String) {
        self.servingCache.withLockedValue { $0 = true }
        self.storeUp.record(0)
        self.health.withLockedValue { health in
            health.lastError = problem
            health.lastErrorAt = self.clock.now
        }
    }

    /// Writes `revision` to the configuration cache, if the node keeps one; a failure is logged (once until a write
    /// succeeds) and changes nothing else: serving does not depend on the cache.
    public func cacheServed(_ revision: StoredRevision) {
        guard let cache = self.configuration.cache, let location = (self.store as? any StoreBackend)?.location else {
            return
        }
        do {
            try cache.write(revision, store: location, now: self.clock.now)
            self.cacheFailure.withLockedValue { $0 = nil }
        } catch {
            let message = "\(error)"
            let isNew = self.cacheFailure.withLockedValue { last in
                defer { last = message }
                return last != message
            }
            if isNew {
                self.logger.warning(
                    "the configuration cache cannot be written; a restart without the store would not find this revision",
                    metadata: ["error": "\(message)", "revision": "\(revision.number)"]
                )
            }
        }
    }

    /// Clears the error `/healthz` shows once the store delivered a revision that loads.
    ///
    /// `degraded` means "serving an older revision than the store holds, or blind to the store"; a revision loaded
    /// after the error ends both.
    private func recovered() {
        self.storeUp.record(1)
        self.health.withLockedValue { health in
            health.lastError = nil
        }
    }

    private func failed(_ message: String) {
        self.errors.increment()
        self.health.withLockedValue { health in
            health.lastError = message
            health.lastErrorAt = self.clock.now
        }
        self.logger.error(
            "configuration error; still serving the last good revision",
            metadata: ["error": "\(message)", "revision": "\(self.routing.current.revision)"]
        )
    }

    /// Advances `ficus_telemetry_dropped_total{kind}` by what the store dropped since the last call, and logs once
    /// per call when something was.
    ///
    /// The store counts every batch it could not write; the comparer's own counter only sees shadow records.
    private func exportTelemetryDrops() {
        let drops = self.shadowStore.telemetryDrops
        let previous = self.exportedDrops.withLockedValue { exported in
            defer { exported = drops }
            return exported
        }
        let deltas = [
            "records": drops.records - previous.records, "windows": drops.windows - previous.windows,
            "batches": drops.batches - previous.batches,
        ]
        for (kind, delta) in deltas where delta > 0 {
            self.telemetryDropped[kind]?.increment(by: Int64(delta))
        }
        if let batches = deltas["batches"], batches > 0 {
            self.logger.warning(
                "telemetry dropped: the store could not take it; configuration is unaffected",
                metadata: ["batches": "\(batches)", "error": "\(drops.lastError ?? "")"]
            )
        }
    }

    /// Tells the rate limiter how many proxies have a heartbeat younger than `liveProxyWindow`, this one included.
    ///
    /// A store that cannot be read leaves the count as it was: a proxy never raises its share on a guess.
    private func countProxies() async {
        guard let limiter = self.rateLimiter else { return }
        do {
            let live = try await self.store.proxies(seenWithin: self.configuration.liveProxyWindow.seconds)
            // This proxy counts whether or not its own beat was written.
            let count = live.count + (live.contains { $0.id == self.proxyID } ? 0 : 1)
            self.rateLimitProxies.record(count)
            if limiter.setProxies(count) {
                self.logger.notice(
                    "rate limits are shared by a new number of proxies", metadata: ["proxies": "\(count)"])
            }
        } catch {
            self.logger.warning("counting live proxies failed", metadata: ["error": "\(error)"])
        }
    }

    private func beat() async {
        while !Task.isCancelled {
            let heartbeat = ProxyHeartbeat(
                id: self.proxyID,
                listen: self.listen,
                revision: self.routing.current.revision,
                startedAt: self.startedAt,
                lastSeen: self.clock.now
            )
            do {
                try await self.store.heartbeat(heartbeat)
            } catch {
                self.logger.warning("heartbeat failed", metadata: ["error": "\(error)"])
            }
            await self.countProxies()
            self.exportTelemetryDrops()
            // A canary's weight changes with a revision, its phase (a pause) may not: read them on every beat.
            if let rollouts = self.store as? any RolloutStore {
                await self.rollouts.refresh(from: rollouts)
            }
            try? await self.clock.sleep(for: self.configuration.heartbeatInterval)
        }
    }
}
