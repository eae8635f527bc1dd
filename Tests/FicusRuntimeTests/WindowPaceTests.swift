import FicusCore
import FicusDiff
import FicusStore
import Foundation
import NIOCore
import Prometheus
import Testing

@testable import FicusProxy
@testable import FicusRuntime

@Suite struct WindowPaceTests {
    /// Four windows per (shortest) canary interval while canaries run, never slower than configured, never under
    /// a quarter second.
    @Test func windowsKeepPaceWithCanaries() {
        #expect(WindowPace.interval(configured: 10, canaryIntervals: []) == 10)
        #expect(WindowPace.interval(configured: 10, canaryIntervals: [3]) == 0.75)
        #expect(WindowPace.interval(configured: 10, canaryIntervals: [120, 8]) == 2)
        #expect(WindowPace.interval(configured: 1, canaryIntervals: [120]) == 1)
        #expect(WindowPace.interval(configured: 10, canaryIntervals: [0.5]) == 0.25)
    }

    /// Runs a shadow feed (comparer and metric windows) on `clock` until `body` returns.
    func withShadowFeed(
        clock: ManualClock,
        temporary: TemporaryStore,
        canaryIntervals: [TimeInterval],
        _ body: (ProxyMetrics) async throws -> Void
    ) async throws {
        let metrics = ProxyMetrics(factory: PrometheusMetricsFactory(registry: PrometheusCollectorRegistry()))
        let comparer = ShadowComparer(
            sink: StoreShadowSink(store: temporary.store),
            logger: RuntimeFixtures.logger,
            metrics: nil
        )
        var feed = ShadowFeed(
            comparer: comparer,
            metrics: metrics,
            store: temporary.store,
            proxyID: "proxy-a",
            windows: FicusNode.Configuration.Windows(),
            clock: clock,
            logger: RuntimeFixtures.logger
        )
        feed.canaryIntervals = { canaryIntervals }
        try await RuntimeFixtures.running(feed) {
            try await clock.waitForSleepers(1)
            try await body(metrics)
        }
    }

    /// The windows stored so far, oldest first.
    func stored(_ temporary: TemporaryStore) async throws -> [MetricWindow] {
        try await temporary.store.metricWindows(route: nil, from: nil, to: nil).sorted { $0.start < $1.start }
    }

    func micros(_ date: Date) -> Int64 {
        Int64(date.timeIntervalSince1970 * 1_000_000)
    }

    @Test func windowsAreWrittenAtTheConfiguredInterval() async throws {
        let clock = ManualClock()
        let started = clock.now
        let temporary = try TemporaryStore(clock: clock)
        try await self.withShadowFeed(clock: clock, temporary: temporary, canaryIntervals: []) { metrics in
            // The first flush opens the first window; nothing was counted before it.
            try await clock.advance(by: .seconds(10))
            metrics.requestFinished(route: "orders", upstream: "legacy", status: 200, duration: .milliseconds(3))
            metrics.requestFinished(route: "orders", upstream: "legacy", status: 502, duration: .milliseconds(9))
            try await clock.advance(by: .milliseconds(9_900))
            #expect(try await self.stored(temporary).isEmpty, "no window before the interval has passed")

            try await clock.advance(by: .milliseconds(100))
            let windows = try await self.stored(temporary)
            #expect(windows.count == 1)
            #expect(windows.first?.start == self.micros(started.addingTimeInterval(10)))
            #expect(windows.first?.durationMilliseconds == 10_000)
            #expect(windows.first?.requests == 2)
            #expect(windows.first?.serverErrors == 1)
            #expect(windows.first?.proxy == "proxy-a")
        }
    }

    @Test func anActiveCanaryShortensTheWindows() async throws {
        let clock = ManualClock()
        let started = clock.now
        let temporary = try TemporaryStore(clock: clock)
        // An 8 s canary step: four windows per step, 2 s each, although 10 s are configured.
        try await self.withShadowFeed(clock: clock, temporary: temporary, canaryIntervals: [8]) { metrics in
            try await clock.advance(by: .seconds(2))
            metrics.requestFinished(route: "orders", upstream: "orders-v2", status: 200, duration: .milliseconds(3))
            try await clock.advance(by: .milliseconds(1_900))
            #expect(try await self.stored(temporary).isEmpty)

            try await clock.advance(by: .milliseconds(100))
            metrics.requestFinished(route: "orders", upstream: "orders-v2", status: 200, duration: .milliseconds(3))
            try await clock.advance(by: .seconds(2))
            let windows = try await self.stored(temporary)
            #expect(windows.map(\.start) == [2, 4].map { self.micros(started.addingTimeInterval($0)) })
            #expect(windows.map(\.durationMilliseconds) == [2_000, 2_000])
            #expect(windows.map(\.requests) == [1, 1])
        }
    }
}
