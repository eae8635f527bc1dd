import FicusDiff
import NIOConcurrencyHelpers
import Prometheus
import Testing

@testable import FicusProxy

/// Coverage counting (issue 15 item 6) and the distinct sticky values of metric windows (item 3), without sockets.
@Suite("Shadow coverage and identity counting")
struct ShadowCoverageTests {
    final class Clock: Sendable {
        let seconds = NIOLockedValueBox<Int64>(1_750_000_000)
        func read() -> Int64 { self.seconds.withLockedValue { $0 } }
    }

    @Test func dropsAreCountedPerEndpointMinuteReasonAndStage() {
        let clock = Clock()
        let coverage = ShadowCoverage(clock: clock.read)
        coverage.dropped(route: "orders", method: "GET", target: "/orders/1?page=2", reason: "capacity", sent: false)
        coverage.dropped(route: "orders", method: "GET", target: "/orders/2", reason: "capacity", sent: false)
        coverage.dropped(route: "orders", method: "GET", target: "/orders/3", reason: "memory", sent: true)
        clock.seconds.withLockedValue { $0 += 60 }
        coverage.dropped(route: "orders", endpoint: "GET /orders/{id}", reason: "capacity", sent: false)
        let minute = Int64(1_750_000_000) - Int64(1_750_000_000) % 60
        #expect(
            coverage.take() == [
                ShadowDropCount(
                    minute: minute, route: "orders", endpoint: "GET /orders/{id}", reason: "capacity", sent: false,
                    count: 2),
                ShadowDropCount(
                    minute: minute, route: "orders", endpoint: "GET /orders/{id}", reason: "memory", sent: true,
                    count: 1),
                ShadowDropCount(
                    minute: minute + 60, route: "orders", endpoint: "GET /orders/{id}", reason: "capacity",
                    sent: false, count: 1),
            ]
        )
        #expect(coverage.take().isEmpty, "a take hands the counts over once")
    }

    /// A flood of distinct endpoints (an attacker's random paths) cannot grow the table past its bound: drops are still
    /// counted, under one catch-all endpoint of their route.
    @Test func distinctEndpointsAreBounded() {
        let coverage = ShadowCoverage(clock: { 1_750_000_020 })
        for index in 0..<(ShadowCoverage.maxKeys + 50) {
            coverage.dropped(route: "r", endpoint: "GET /static/file-\(index)", reason: "capacity", sent: false)
        }
        let drops = coverage.take()
        #expect(drops.count == ShadowCoverage.maxKeys + 1)
        #expect(drops.first { $0.endpoint == ShadowCoverage.overflowEndpoint }?.count == 50)
        #expect(drops.reduce(0) { $0 + $1.count } == ShadowCoverage.maxKeys + 50)
    }

    @Test func windowsKeepDistinctStickyHashesUpToTheLimit() {
        var counts = ProxyMetrics.WindowCounts()
        for hash in [7, 7, 9, 7, 11] as [UInt32] {
            counts.noteIdentity(hash)
        }
        #expect(counts.identities == [7, 9, 11])
        for hash in UInt32(100)..<UInt32(200) {
            counts.noteIdentity(hash)
        }
        #expect(counts.identities.count == MetricWindow.identitySampleLimit)
        #expect(Set(counts.identities).count == MetricWindow.identitySampleLimit)
    }

    /// The sticky hash travels from the routing decision through the request's metrics into the window.
    @Test func finishedRequestsCarryTheirStickyHashIntoTheWindow() {
        let metrics = ProxyMetrics(factory: PrometheusMetricsFactory(registry: PrometheusCollectorRegistry()))
        let request = metrics.requestMetrics(route: "orders", upstream: "legacy", status: 200)
        for user in 0..<5 {
            request.record(status: 200, duration: .milliseconds(1), stickyHash: UInt32(user))
            request.record(status: 200, duration: .milliseconds(1), stickyHash: UInt32(user))
        }
        request.record(status: 200, duration: .milliseconds(1), stickyHash: nil)
        let windows = metrics.takeWindows(proxy: "p", now: 1_000_000)
        #expect(windows.count == 1)
        #expect(windows.first?.requests == 11)
        #expect(windows.first?.identityHashes == [0, 1, 2, 3, 4])
    }
}
