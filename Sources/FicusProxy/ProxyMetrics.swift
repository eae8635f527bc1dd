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

    struct RequestMetrics {
        var counter: Counter
        var duration: Timer
    }

    /// Requests of one route × upstream in the current window.
    struct WindowCounts {
        var requests = 0
        var serverErrors = 0
        var buckets = [Int](repeating: 0, count: ProxyMetrics.windowBounds.count + 1)
    }

    struct WindowKey: Hashable {
        var route: String
        var upstream: String
    }

    /// Latency bucket bounds of metric windows, in microseconds (a last bucket holds the rest).
    public static let windowBounds = [
        1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
        10_000_000,
    ]

    private let factory: MetricsFactory
    private let window = NIOLockedValueBox<(start: Int64, counts: [WindowKey: WindowCounts])>((0, [:]))
    private let requests = NIOLockedValueBox<[RequestKey: RequestMetrics]>([:])
    private let refusals = NIOLockedValueBox<[HTTPFramingError.Reason: Counter]>([:])
    private let open = NIOLockedValueBox<[String: Meter]>([:])
    private let idle = NIOLockedValueBox<[String: Meter]>([:])
    private let inFlight: Meter
    private let shadow = NIOLockedValueBox<[String: Counter]>([:])

    public init(factory: MetricsFactory) {
        self.factory = factory
        self.inFlight = Meter(label: "ficus_requests_in_flight", factory: factory)
    }

    /// Records one finished request.
    func requestFinished(route: String, upstream: String, status: Int, duration: TimeAmount) {
        let key = RequestKey(route: route, upstream: upstream, statusClass: status / 100)
        let metrics = self.requests.withLockedValue { cache -> RequestMetrics in
            if let cached = cache[key] { return cached }
            let dimensions = [("route", route), ("upstream", upstream)]
            let created = RequestMetrics(
                counter: Counter(
                    label: "ficus_requests_total",
                    dimensions: dimensions + [("status", "\(status / 100)xx")],
                    factory: self.factory
                ),
                duration: Timer(label: "ficus_request_duration_seconds", dimensions: dimensions, factory: self.factory)
            )
            cache[key] = created
            return created
        }
        metrics.counter.increment()
        metrics.duration.recordNanoseconds(duration.nanoseconds)
        guard route != "-" else { return }
        let microseconds = Int(duration.nanoseconds / 1000)
        let bucket = Self.windowBounds.firstIndex { microseconds <= $0 } ?? Self.windowBounds.count
        self.window.withLockedValue { window in
            window.counts[WindowKey(route: route, upstream: upstream), default: WindowCounts()].add(
                serverError: status >= 500,
                bucket: bucket
            )
        }
    }

    /// Hands over the requests counted since the last call, as one window per route × upstream.
    ///
    /// The windows are what the store keeps for reports and cutover gates; several proxies' windows add up.
    public func takeWindows(proxy: String, now: Int64) -> [MetricWindow] {
        let (start, counts) = self.window.withLockedValue { window -> (Int64, [WindowKey: WindowCounts]) in
            defer { window = (now, [:]) }
            return (window.start == 0 ? now : window.start, window.counts)
        }
        return counts.sorted { ($0.key.route, $0.key.upstream) < ($1.key.route, $1.key.upstream) }.map { key, counts in
            MetricWindow(
                start: start,
                durationMilliseconds: Int(max(0, now - start) / 1000),
                proxy: proxy,
                route: key.route,
                upstream: key.upstream,
                requests: counts.requests,
                serverErrors: counts.serverErrors,
                latencyBucketBounds: Self.windowBounds,
                latencyBucketCounts: counts.buckets
            )
        }
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

    /// A shadow copy was sent.
    func shadowSent(route: String, upstream: String) {
        self.shadowCounter("ficus_shadow_requests_total", [("route", route), ("upstream", upstream)]).increment()
    }

    /// A request that should have been shadowed was not (capacity, body too large, serving side failed).
    func shadowDropped(route: String, reason: String) {
        self.shadowCounter("ficus_shadow_dropped_total", [("route", route), ("reason", reason)]).increment()
    }

    private func shadowCounter(_ label: String, _ dimensions: [(String, String)]) -> Counter {
        let key = label + dimensions.map { "|\($0.1)" }.joined()
        return self.shadow.withLockedValue { cache in
            if let cached = cache[key] { return cached }
            let created = Counter(label: label, dimensions: dimensions, factory: self.factory)
            cache[key] = created
            return created
        }
    }

    func inFlight(delta: Int) {
        if delta > 0 { self.inFlight.increment(by: Double(delta)) } else { self.inFlight.decrement(by: Double(-delta)) }
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
