import FicusDiff
import Foundation
import Testing

@testable import FicusStore

/// Coverage (copies dropped per endpoint), the copies' wait inside Ficus, and the distinct sticky values of metric
/// windows (issue 15 items 3 and 6).
@Suite("Shadow store: coverage, wait and identity spread")
struct ShadowStoreCoverageTests {
    static let minute = Telemetry.seconds(ShadowFixtures.start)

    static func drop(
        minute offset: Int64 = 0,
        endpoint: String = ShadowFixtures.endpoint,
        reason: String,
        sent: Bool = false,
        count: Int
    ) -> ShadowDropCount {
        ShadowDropCount(
            minute: Self.minute + offset * 60, route: "orders", endpoint: endpoint, reason: reason, sent: sent,
            count: count)
    }

    /// Every request chosen for shadowing ends compared, as a shadow error or dropped, and the summary adds them up;
    /// two proxies' counts of one minute add up too.
    @Test(arguments: StoreFixtures.backends)
    func eligibleIsComparedPlusErrorsPlusDropped(backend: StoreFixtures.Backend) async throws {
        try await backend.withShadowStore { store in
            try await store.appendShadowRecords(
                [
                    ShadowFixtures.record(), ShadowFixtures.record(at: 1),
                    ShadowFixtures.record(at: 2, shadowError: "timeout"),
                ])
            try await store.appendShadowDrops([
                Self.drop(reason: "capacity", count: 5), Self.drop(reason: "memory", sent: true, count: 2),
            ])
            // A second proxy, the same minute and reason.
            try await store.appendShadowDrops([Self.drop(reason: "capacity", count: 3)])
            // Another endpoint whose every copy was dropped: no comparison minute, and it must still show.
            try await store.appendShadowDrops([
                Self.drop(endpoint: "POST /orders", reason: "request_body_too_large", count: 4)
            ])

            let summaries = try await store.shadowEndpoints(route: "orders", from: nil, to: nil)
            #expect(summaries.map(\.endpoint) == [ShadowFixtures.endpoint, "POST /orders"])
            let orders = try #require(summaries.first)
            #expect(orders.compared == 2)
            #expect(orders.errors == 1)
            #expect(
                orders.dropped == [
                    ShadowDropSummary(reason: "capacity", sent: false, count: 8),
                    ShadowDropSummary(reason: "memory", sent: true, count: 2),
                ])
            #expect(orders.droppedTotal == 10)
            #expect(orders.eligible == 13)
            #expect(orders.shadowed == 5, "compared, errors and the copies dropped after they were sent")
            let post = try #require(summaries.last)
            #expect(post.compared == 0 && post.eligible == 4 && post.shadowed == 0)
            #expect(post.dropped == [ShadowDropSummary(reason: "request_body_too_large", sent: false, count: 4)])
        }
    }

    @Test(arguments: StoreFixtures.backends)
    func dropsAreReadByMinuteLikeEveryAggregate(backend: StoreFixtures.Backend) async throws {
        try await backend.withShadowStore { store in
            try await store.appendShadowDrops([
                Self.drop(minute: 0, reason: "capacity", count: 1), Self.drop(minute: 5, reason: "capacity", count: 10),
            ])
            let later = try await store.shadowEndpoints(
                route: nil, from: ShadowFixtures.start.addingTimeInterval(120), to: nil)
            #expect(later.map(\.droppedTotal) == [10])
            let earlier = try await store.shadowEndpoints(
                route: nil, from: nil, to: ShadowFixtures.start.addingTimeInterval(120))
            #expect(earlier.map(\.droppedTotal) == [1])
        }
    }

    @Test(arguments: StoreFixtures.backends)
    func badDropCountsAreRefusedAndChangeNothing(backend: StoreFixtures.Backend) async throws {
        try await backend.withShadowStore { store in
            var negative = Self.drop(reason: "capacity", count: -1)
            await #expect(throws: StoreError.self) {
                try await store.appendShadowDrops([Self.drop(reason: "x", count: 1), negative])
            }
            negative.count = 1
            negative.minute += 7
            await #expect(throws: StoreError.self) { try await store.appendShadowDrops([negative]) }
            let endpoints = try await store.shadowEndpoints(route: nil, from: nil, to: nil)
            #expect(endpoints.isEmpty)
        }
    }

    /// The copies' wait inside Ficus is summed apart from the shadow's latency, as a histogram with percentiles.
    @Test(arguments: StoreFixtures.backends)
    func shadowWaitIsKeptApartFromShadowLatency(backend: StoreFixtures.Backend) async throws {
        try await backend.withShadowStore { store in
            var records: [ShadowRecord] = []
            for index in 0..<100 {
                var record = ShadowFixtures.record(at: Double(index) / 10, shadowLatency: 2_000)
                record.shadowWaitMicroseconds = index < 98 ? 300 : 400_000
                records.append(record)
            }
            try await store.appendShadowRecords(records)
            let summary = try #require(try await store.shadowEndpoints(route: nil, from: nil, to: nil).first)
            let wait = try #require(summary.shadowWait)
            #expect(wait.count == 100)
            #expect(wait.meanMicroseconds == (98 * 300 + 2 * 400_000) / 100)
            #expect(wait.p50Microseconds <= 500)
            #expect(wait.p99Microseconds >= 200_000)
            #expect(summary.shadowLatency?.p99Microseconds ?? 0 <= 2_000, "the wait is not in the shadow's latency")

        }
        // Records without a measured wait (the copy never left) leave it out.
        try await backend.withShadowStore { plain in
            try await plain.appendShadowRecords([ShadowFixtures.record()])
            #expect(try await plain.shadowEndpoints(route: nil, from: nil, to: nil).first?.shadowWait == nil)
        }
    }

    /// A stored sample keeps its request's `X-Request-Id`, so that a report's sample can be found in the access log.
    @Test(arguments: StoreFixtures.backends)
    func samplesKeepTheirRequestID(backend: StoreFixtures.Backend) async throws {
        try await backend.withShadowStore { store in
            var record = ShadowFixtures.record(differences: [ShadowFixtures.typeChanged])
            record.requestID = "9f86d081884c7d65-1"
            try await store.appendShadowRecords([
                record, ShadowFixtures.record(at: 1, differences: [ShadowFixtures.typeChanged]),
            ])
            let stored = try await ShadowFixtures.stored(store)
            #expect(stored.map(\.requestID) == [nil, "9f86d081884c7d65-1"])
        }
    }

    /// Distinct users over a step: the union of every proxy's windows, exact below the per-window limit.
    @Test(arguments: StoreFixtures.backends)
    func distinctIdentitiesAreTheUnionOfEveryWindow(backend: StoreFixtures.Backend) async throws {
        try await backend.withShadowStore { store in
            func window(_ seconds: Int64, proxy: String, upstream: String, _ hashes: [UInt32]?) -> MetricWindow {
                var window = ShadowStoreMetricWindowTests.window(
                    at: seconds, proxy: proxy, upstream: upstream, requests: 10, serverErrors: 0, counts: [10, 0, 0, 0])
                window.identityHashes = hashes
                return window
            }
            #expect(try await store.distinctIdentities(route: "orders", from: nil, to: nil) == nil)
            try await store.appendMetricWindows([window(0, proxy: "old", upstream: "legacy", nil)])
            #expect(
                try await store.distinctIdentities(route: "orders", from: nil, to: nil) == nil,
                "windows that did not count say nothing")
            try await store.appendMetricWindows([
                window(0, proxy: "p1", upstream: "legacy", [1, 2, 3]),
                window(0, proxy: "p1", upstream: "orders-v2", [3, 4]),
                window(10, proxy: "p2", upstream: "legacy", [4, 5, 6]),
                window(20, proxy: "p2", upstream: "legacy", []),
            ])
            #expect(try await store.distinctIdentities(route: "orders", from: nil, to: nil) == 6)
            let fromTen = ShadowFixtures.start.addingTimeInterval(10)
            #expect(try await store.distinctIdentities(route: "orders", from: fromTen, to: nil) == 3)
            #expect(try await store.distinctIdentities(route: "users", from: nil, to: nil) == nil)
            let stored = try await store.metricWindows(route: "orders", from: nil, to: fromTen)
            #expect(stored.compactMap(\.identityHashes).sorted { $0.count < $1.count } == [[3, 4], [1, 2, 3]])
        }
    }
}
