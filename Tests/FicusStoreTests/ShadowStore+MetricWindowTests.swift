import FicusDiff
import Foundation
import Testing

@testable import FicusStore

@Suite("Shadow store: metric windows")
struct ShadowStoreMetricWindowTests {
    static let bounds = [1_000, 10_000, 100_000]

    /// A 10-second window `seconds` after the fixture start.
    static func window(
        at seconds: Int64 = 0,
        proxy: String,
        route: String = "orders",
        upstream: String,
        requests: Int,
        serverErrors: Int,
        bounds: [Int] = Self.bounds,
        counts: [Int]
    ) -> MetricWindow {
        MetricWindow(
            start: Telemetry.microseconds(ShadowFixtures.start) + seconds * 1_000_000,
            durationMilliseconds: 10_000,
            proxy: proxy,
            route: route,
            upstream: upstream,
            requests: requests,
            serverErrors: serverErrors,
            latencyBucketBounds: bounds,
            latencyBucketCounts: counts
        )
    }

    @Test(
        "windows from two proxies add up per upstream, with the p99 of the merged histograms",
        arguments: StoreFixtures.backends)
    func twoProxiesAddUp(backend: StoreFixtures.Backend) async throws {
        try await backend.withShadowStore { store in
            let first = Self.window(
                proxy: "p1", upstream: "legacy", requests: 90, serverErrors: 1, counts: [80, 9, 1, 0])
            // The other convention of `MetricWindow`: as many counts as bounds, the last bound standing for +inf.
            let second = Self.window(
                at: 10,
                proxy: "p2",
                upstream: "legacy",
                requests: 10,
                serverErrors: 0,
                bounds: Self.bounds + [Int.max],
                counts: [10, 0, 0, 0]
            )
            try await store.appendMetricWindows([
                first,
                Self.window(proxy: "p1", upstream: "orders-v2", requests: 5, serverErrors: 2, counts: [0, 0, 5, 0]),
            ])
            try await store.appendMetricWindows([
                second,
                Self.window(
                    at: 10, proxy: "p2", upstream: "orders-v2", requests: 5, serverErrors: 0, counts: [0, 0, 4, 1]),
                Self.window(
                    proxy: "p2", route: "users", upstream: "a", requests: 7, serverErrors: 7, counts: [7, 0, 0, 0]),
            ])
            // A proxy that retries a batch replaces its windows instead of counting them twice.
            try await store.appendMetricWindows([first])

            let traffic = try await store.trafficSummary(route: "orders", from: nil, to: nil)
            #expect(
                traffic == [
                    UpstreamTraffic(upstream: "legacy", requests: 100, serverErrors: 1, p99Microseconds: 10_000),
                    // The p99 falls in the open bucket, so only its lower edge is known.
                    UpstreamTraffic(upstream: "orders-v2", requests: 10, serverErrors: 2, p99Microseconds: 100_000),
                ]
            )
            let windows = try await store.metricWindows(route: "orders", from: nil, to: nil)
            #expect(windows.map(\.proxy) == ["p1", "p1", "p2", "p2"])
            #expect(windows.first == first)
            #expect(windows.dropFirst(2).first == second)
            #expect(try await store.metricWindows(route: nil, from: nil, to: nil).count == 5)

            let fiveSeconds = ShadowFixtures.start.addingTimeInterval(5)
            let later = try await store.trafficSummary(route: "orders", from: fiveSeconds, to: nil)
            #expect(later.map(\.requests) == [10, 5])
            let tenSeconds = ShadowFixtures.start.addingTimeInterval(10)
            let earlier = try await store.metricWindows(route: nil, from: nil, to: tenSeconds)
            #expect(earlier.count == 3)
            #expect(try await store.trafficSummary(route: "none", from: nil, to: nil).isEmpty)
        }
    }

    @Test("windows older than maxMetricWindowAge are deleted by the next append", arguments: StoreFixtures.backends)
    func retention(backend: StoreFixtures.Backend) async throws {
        let clock = TestClock(ShadowFixtures.start)
        try await backend.withShadowStore(clock: clock) { store in
            try await store.appendMetricWindows([
                Self.window(proxy: "p1", upstream: "legacy", requests: 1, serverErrors: 0, counts: [1, 0, 0, 0])
            ])
            clock.advance(by: 7 * 86_400 + 1)
            let week: Int64 = 7 * 86_400
            try await store.appendMetricWindows([
                Self.window(
                    at: week, proxy: "p1", upstream: "legacy", requests: 2, serverErrors: 0, counts: [2, 0, 0, 0])
            ])
            #expect(try await store.metricWindows(route: nil, from: nil, to: nil).map(\.requests) == [2])
        }
    }

    @Test(
        "a window whose counts do not fit its bounds is refused and nothing of the batch is written",
        arguments: StoreFixtures.backends)
    func refusesMismatchedCounts(backend: StoreFixtures.Backend) async throws {
        try await backend.withShadowStore { store in
            let good = Self.window(proxy: "p1", upstream: "legacy", requests: 1, serverErrors: 0, counts: [1, 0, 0, 0])
            let bad = Self.window(proxy: "p1", upstream: "orders-v2", requests: 1, serverErrors: 0, counts: [1])
            await #expect(throws: StoreError.self) {
                try await store.appendMetricWindows([good, bad])
            }
            let windows = try await store.metricWindows(route: nil, from: nil, to: nil)
            #expect(windows.isEmpty)
        }
    }

    @Test("histogram percentiles interpolate within the bucket and respect the observed range")
    func histogramPercentiles() {
        var histogram = LatencyHistogram(bounds: [100, 200, 400])
        #expect(histogram.percentile(0.99) == 0)
        histogram.add(bound: 100, count: 50)
        histogram.add(bound: 200, count: 50)
        #expect(histogram.percentile(0.5) == 100)
        #expect(histogram.percentile(0.75) == 150)
        #expect(histogram.percentile(1) == 200)
        histogram.observe(minimum: 120, maximum: 180)
        #expect(histogram.percentile(0.75) == 150)
        #expect(histogram.percentile(1) == 180)
        #expect(histogram.percentile(0) == 120)
        histogram.add(bound: LatencyHistogram.infinity, count: 100)
        histogram.observe(minimum: nil, maximum: 1_000)
        #expect(histogram.percentile(1) == 1_000)
        #expect(LatencyHistogram.shadowBound(for: 1_000) == 1_000)
        #expect(LatencyHistogram.shadowBound(for: 1_001) == 2_000)
        #expect(LatencyHistogram.shadowBound(for: 61_000_000) == LatencyHistogram.infinity)
    }
}
