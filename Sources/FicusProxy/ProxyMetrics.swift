import CoreMetrics
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

    private let factory: MetricsFactory
    private let requests = NIOLockedValueBox<[RequestKey: RequestMetrics]>([:])
    private let refusals = NIOLockedValueBox<[HTTPFramingError.Reason: Counter]>([:])
    private let open = NIOLockedValueBox<[String: Meter]>([:])
    private let idle = NIOLockedValueBox<[String: Meter]>([:])
    private let inFlight: Meter
    private let shadowDropped: Counter

    public init(factory: MetricsFactory) {
        self.factory = factory
        self.inFlight = Meter(label: "ficus_requests_in_flight", factory: factory)
        self.shadowDropped = Counter(label: "ficus_shadow_dropped_total", factory: factory)
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
