import CoreMetrics
import FicusDiff
import NIOConcurrencyHelpers
import NIOCore

/// The proxy's counters and histograms, created once per label set and cached.
///
/// The factory is injected (not `MetricsSystem.bootstrap`, which a process may call once) so that every test and
/// every proxy in a process can own its registry; metric objects are cached because creating one per request is a
/// registry lookup under a lock.
public final class ProxyMetrics: Sendable {
    struct RequestKey: Hashable {
        var route: String
        var upstream: String
        var statusClass: Int
    }

    /// The metrics one kind of finished request updates, looked up once and then reused by a connection.
    final class RequestMetrics: Sendable {
        let counter: Counter
        let duration: CoreMetrics.Timer
        let window: WindowAccumulator

        init(counter: Counter, duration: CoreMetrics.Timer, window: WindowAccumulator) {
            self.counter = counter
            self.duration = duration
            self.window = window
        }

        func record(status: Int, duration: TimeAmount, stickyHash: UInt32? = nil) {
            self.counter.increment()
            self.duration.recordNanoseconds(duration.nanoseconds)
            let microseconds = Int(duration.nanoseconds / 1000)
            let bucket = ProxyMetrics.windowBounds.firstIndex { microseconds <= $0 } ?? ProxyMetrics.windowBounds.count
            self.window.counts.withLockedValue {
                $0.add(serverError: status >= 500, bucket: bucket)
                if let stickyHash { $0.noteIdentity(stickyHash) }
            }
        }
    }

    /// The current window's counts of one route × upstream.
    final class WindowAccumulator: Sendable {
        let key: WindowKey
        let counts = NIOLockedValueBox(WindowCounts())

        init(key: WindowKey) {
            self.key = key
        }
    }

    /// Requests of one route × upstream in the current window.
    struct WindowCounts: Sendable {
        var requests = 0
        var serverErrors = 0
        var buckets = [Int](repeating: 0, count: ProxyMetrics.windowBounds.count + 1)
        /// Distinct sticky hashes seen, the first `MetricWindow.identitySampleLimit` of them.
        var identities: [UInt32] = []

        /// Keeps `hash` while fewer than the limit are kept: a linear look through at most 32 values, and nothing at
        /// all once the window is known to have enough distinct users.
        mutating func noteIdentity(_ hash: UInt32) {
            guard self.identities.count < MetricWindow.identitySampleLimit, !self.identities.contains(hash) else {
                return
            }
            self.identities.append(hash)
        }
    }

    struct WindowKey: Hashable, Sendable {
        var route: String
        var upstream: String
    }

    /// Latency bucket bounds of metric windows, in microseconds (a last bucket holds the rest).
    public static let windowBounds = [
        1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
        10_000_000,
    ]

    private let factory: MetricsFactory
    private let windows = NIOLockedValueBox<(start: Int64, accumulators: [WindowKey: WindowAccumulator])>((0, [:]))
    private let requests = NIOLockedValueBox<[RequestKey: RequestMetrics]>([:])
    private let refusals = NIOLockedValueBox<[HTTPFramingError.Reason: Counter]>([:])
    private let open = NIOLockedValueBox<[String: Meter]>([:])
    private let idle = NIOLockedValueBox<[String: Meter]>([:])
    private let ejectedMeters = NIOLockedValueBox<[String: Meter]>([:])
    /// `ficus_tunnels_active{route,upstream}`, keyed by route and upstream.
    private let tunnelMeters = NIOLockedValueBox<[String: Meter]>([:])
    private let inFlight: Meter
    private let shadow: CounterCache
    private let waitTimers = NIOLockedValueBox<[String: CoreMetrics.Timer]>([:])
    /// Shadow copies not compared, by endpoint, until the runtime stores them.
    public let coverage = ShadowCoverage()

    public init(factory: MetricsFactory) {
        self.factory = factory
        self.shadow = CounterCache(factory: factory)
        self.inFlight = Meter(label: "ficus_requests_in_flight", factory: factory)
    }

    /// Records one finished request.
    func requestFinished(route: String, upstream: String, status: Int, duration: TimeAmount) {
        self.requestMetrics(route: route, upstream: upstream, status: status).record(status: status, duration: duration)
    }

    /// The metrics of requests of `route` × `upstream` answered with `status`'s class.
    func requestMetrics(route: String, upstream: String, status: Int) -> RequestMetrics {
        let key = RequestKey(route: route, upstream: upstream, statusClass: status / 100)
        if let cached = self.requests.withLockedValue({ $0[key] }) { return cached }
        let window = self.windows.withLockedValue { windows -> WindowAccumulator in
            let windowKey = WindowKey(route: route, upstream: upstream)
            if let existing = windows.accumulators[windowKey] { return existing }
            let created = WindowAccumulator(key: windowKey)
            // Requests answered by Ficus itself with no route ("-") are not traffic of any route, and requests a
            // route's rate limit answered (no upstream, "-") are no upstream's: neither belongs in a canary's windows.
            if route != "-" && upstream != "-" { windows.accumulators[windowKey] = created }
            return created
        }
        return self.requests.withLockedValue { cache -> RequestMetrics in
            if let cached = cache[key] { return cached }
            let dimensions = [("route", route), ("upstream", upstream)]
            let created = RequestMetrics(
                counter: Counter(
                    label: "ficus_requests_total",
                    dimensions: dimensions + [("status", "\(status / 100)xx")],
                    factory: self.factory
                ),
                duration: CoreMetrics.Timer(
                    label: "ficus_request_duration_seconds",
                    dimensions: dimensions,
                    factory: self.factory
                ),
                window: window
            )
            cache[key] = created
            return created
        }
    }

    /// Hands over the requests counted since the last call, as one window per route × upstream.
    ///
    /// The windows are what the store keeps for reports and cutover gates; several proxies' windows add up.
    public func takeWindows(proxy: String, now: Int64) -> [MetricWindow] {
        let (start, accumulators) = self.windows.withLockedValue { windows -> (Int64, [WindowAccumulator]) in
            let start = windows.start == 0 ? now : windows.start
            windows.start = now
            return (start, Array(windows.accumulators.values))
        }
        var result: [MetricWindow] = []
        for accumulator in accumulators.sorted(by: { ($0.key.route, $0.key.upstream) < ($1.key.route, $1.key.upstream) }) {
            let counts = accumulator.counts.withLockedValue { counts -> WindowCounts in
                defer { counts = WindowCounts() }
                return counts
            }
            guard counts.requests > 0 else { continue }
            result.append(
                MetricWindow(
                    start: start,
                    durationMilliseconds: Int(max(0, now - start) / 1000),
                    proxy: proxy,
                    route: accumulator.key.route,
                    upstream: accumulator.key.upstream,
                    requests: counts.requests,
                    serverErrors: counts.serverErrors,
                    latencyBucketBounds: Self.windowBounds,
                    latencyBucketCounts: counts.buckets,
                    identityHashes: counts.identities
                )
            )
        }
        return result
    }

    func framingRefused(_ reason: HTTPFramingError.Reason) {
        let counter = self.refusals.withLockedValue { cache -> Counter in
            if let cached = cache[reason] { return cached }
            let created = Counter(
                label: "ficus_framing_refusals_total",
                dimensions: [("reason", reason.rawValue)],
                factory: self.factory
            )
            cache[reason] = created
            return created
        }
        counter.increment()
    }

    /// Time a shadow copy spent inside Ficus before its first byte left (waiting for the shadow loop and a pooled
    /// connection): `ficus_shadow_wait_seconds{route}`, apart from the shadow upstream's own latency.
    func shadowWait(route: String, duration: TimeAmount) {
        let timer = self.waitTimers.withLockedValue { timers -> CoreMetrics.Timer in
            if let existing = timers[route] { return existing }
            let created = CoreMetrics.Timer(
                label: "ficus_shadow_wait_seconds", dimensions: [("route", route)], factory: self.factory)
            timers[route] = created
            return created
        }
        timer.recordNanoseconds(max(0, duration.nanoseconds))
    }

    /// A client connection was closed as soon as it was accepted (`reason`: `max_connections`).
    func connectionRejected(reason: String) {
        self.shadowCounter("ficus_connections_rejected_total", [("reason", reason)]).increment()
    }

    /// A request went to its route's fallback upstream after `from` failed before answering.
    func fallback(route: String, from: String, reason: String) {
        self.shadowCounter("ficus_fallbacks_total", [("route", route), ("from", from), ("reason", reason)]).increment()
    }

    /// A request was sent to `upstream` again by its route's retry policy, after an attempt failed so (`reason`).
    func retry(route: String, upstream: String, reason: String) {
        self.shadowCounter("ficus_retries_total", [("route", route), ("upstream", upstream), ("reason", reason)])
            .increment()
    }

    /// A retry the route's policy allowed was refused by `upstream`'s retry budget.
    func retryRefused(route: String, upstream: String) {
        self.shadowCounter("ficus_retries_refused_total", [("route", route), ("upstream", upstream)]).increment()
    }

    /// A request of `route` found its rate limit's bucket empty: answered 429 (`mode` `enforce`) or let through
    /// and only counted (`observe`).
    func rateLimited(route: String, mode: String) {
        self.shadowCounter("ficus_rate_limited_total", [("route", route), ("mode", mode)]).increment()
    }

    /// An active health check of `upstream` finished (`result`: `ok` or `failed`).
    func healthCheck(upstream: String, result: String) {
        self.shadowCounter("ficus_health_checks_total", [("upstream", upstream), ("result", result)]).increment()
    }

    /// Addresses of `upstream` failing their health checks now (`ficus_upstream_unhealthy_addresses{upstream}`).
    func unhealthyAddresses(upstream: String, delta: Int) {
        self.ejectedAddresses(upstream: upstream, delta: delta, side: "unhealthy")
    }

    /// A recent copy of an answer stood in for a failure of `upstream` (`stale_if_error`).
    func staleAnswer(route: String, upstream: String) {
        self.shadowCounter("ficus_stale_answers_total", [("route", route), ("upstream", upstream)]).increment()
    }

    /// An address was taken out of rotation (`ficus_upstream_ejections_total{upstream,reason}`, or
    /// `ficus_shadow_ejections_total` for the shadow side's own pool), and the gauge of ejected addresses rises.
    func ejection(upstream: String, reason: String, side: String) {
        let prefix = side == "shadow" ? "ficus_shadow" : "ficus_upstream"
        self.shadowCounter("\(prefix)_ejections_total", [("upstream", upstream), ("reason", reason)]).increment()
        self.ejectedAddresses(upstream: upstream, delta: 1, side: side)
    }

    /// Addresses out of rotation now (`ficus_upstream_ejected_addresses{upstream}`); it falls when an ejection
    /// ends, as the next request to the upstream or the next `/upstreams` read notices.
    func ejectedAddresses(upstream: String, delta: Int, side: String) {
        let label =
            switch side {
            case "shadow": "ficus_shadow_ejected_addresses"
            case "unhealthy": "ficus_upstream_unhealthy_addresses"
            default: "ficus_upstream_ejected_addresses"
            }
        let meter = self.ejectedMeters.withLockedValue { cache -> Meter in
            if let cached = cache[label + "\u{0}" + upstream] { return cached }
            let created = Meter(label: label, dimensions: [("upstream", upstream)], factory: self.factory)
            cache[label + "\u{0}" + upstream] = created
            return created
        }
        meter.increment(by: Double(delta))
    }

    /// A request was refused (or made to wait, for `max_connections`) by a circuit breaker of `upstream`:
    /// `ficus_upstream_overflow_total{upstream,reason}`.
    func overflow(upstream: String, reason: String) {
        self.shadowCounter("ficus_upstream_overflow_total", [("upstream", upstream), ("reason", reason)]).increment()
    }

    /// A shadow copy was sent.
    func shadowSent(route: String, upstream: String) {
        self.shadowCounter("ficus_shadow_requests_total", [("route", route), ("upstream", upstream)]).increment()
    }

    /// A request that should have been shadowed was not compared (capacity, body too large, serving side failed):
    /// counted by route and reason in `ficus_shadow_dropped_total`, and by endpoint in `coverage`.
    func shadowDropped(route: String, view: RequestView, reason: String, sent: Bool = false) {
        self.shadowCounter("ficus_shadow_dropped_total", [("route", route), ("reason", reason)]).increment()
        self.coverage.dropped(
            route: route, method: view.head.methodString, target: view.head.target, reason: reason, sent: sent)
    }

    private func shadowCounter(_ label: String, _ dimensions: [(String, String)]) -> Counter {
        self.shadow.counter(label, dimensions)
    }

    func inFlight(delta: Int) {
        if delta > 0 { self.inFlight.increment(by: Double(delta)) } else { self.inFlight.decrement(by: Double(-delta)) }
    }

    /// A WebSocket tunnel of `route` to `upstream` opened (1) or ended (-1).
    func tunnels(route: String, upstream: String, delta: Int) {
        let meter = self.tunnelMeters.withLockedValue { meters -> Meter in
            let key = route + "\u{0}" + upstream
            if let existing = meters[key] { return existing }
            let created = Meter(
                label: "ficus_tunnels_active",
                dimensions: [("route", route), ("upstream", upstream)],
                factory: self.factory
            )
            meters[key] = created
            return created
        }
        meter.increment(by: Double(delta))
    }

    func openConnections(_ upstream: String, delta: Int) {
        Self.meter(self.open, "ficus_upstream_connections_open", upstream, self.factory).increment(by: Double(delta))
    }

    func idleConnections(_ upstream: String, delta: Int) {
        Self.meter(self.idle, "ficus_upstream_connections_idle", upstream, self.factory).increment(by: Double(delta))
    }

    private static func meter(
        _ box: NIOLockedValueBox<[String: Meter]>,
        _ label: String,
        _ upstream: String,
        _ factory: MetricsFactory
    ) -> Meter {
        box.withLockedValue { cache in
            if let cached = cache[upstream] { return cached }
            let created = Meter(label: label, dimensions: [("upstream", upstream)], factory: factory)
            cache[upstream] = created
            return created
        }
    }
}

extension ProxyMetrics.WindowCounts {
    mutating func add(serverError: Bool, bucket: Int) {
        self.requests += 1
        if serverError { self.serverErrors += 1 }
        self.buckets[bucket] += 1
    }
}
