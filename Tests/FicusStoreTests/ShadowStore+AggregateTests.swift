import FicusDiff
import Foundation
import Testing

@testable import FicusStore

@Suite("Shadow store: aggregates")
struct ShadowStoreAggregateTests {
    @Test(
        "batches add up per endpoint: totals, status matrix, field raw and noise counts, latencies",
        arguments: StoreFixtures.backends)
    func endpointTotals(backend: StoreFixtures.Backend) async throws {
        try await backend.withShadowStore { store in
            let item = { (index: Int) in Difference(path: "$.items[\(index)].price", kind: .typeChanged) }
            let status = Difference(path: "status", kind: .status, serving: "200", shadow: "500")
            try await store.appendShadowRecords([
                ShadowFixtures.record(at: 1),
                ShadowFixtures.record(at: 2, differences: [ShadowFixtures.typeChanged]),
                // Three elements with the same field differ: one request, counted once for the field.
                ShadowFixtures.record(
                    at: 3, differences: [item(0), item(1), item(2)], noise: [ShadowFixtures.requestID]),
                ShadowFixtures.record(at: 4, shadowError: "connection refused", noise: []),
            ])
            try await store.appendShadowRecords([
                ShadowFixtures.record(at: 61, shadowStatus: 500, differences: [status, ShadowFixtures.typeChanged]),
                ShadowFixtures.record(
                    at: 62, differences: [ShadowFixtures.requestID], noise: [ShadowFixtures.requestID]),
                ShadowFixtures.record(at: 63, route: "users", endpoint: "GET /users"),
            ])

            let summaries = try await store.shadowEndpoints(route: nil, from: nil, to: nil)
            #expect(summaries.map { "\($0.route) \($0.endpoint)" } == ["orders GET /orders/{id}", "users GET /users"])
            let orders = try #require(summaries.first)
            #expect(orders.compared == 5)
            #expect(orders.identical == 1)
            #expect(orders.differing == 4)
            #expect(orders.errors == 1)
            #expect(orders.noiseSamples == 3)
            #expect(
                orders.statuses == [
                    ShadowStatusCount(serving: 200, shadow: 200, count: 4),
                    ShadowStatusCount(serving: 200, shadow: nil, count: 1),
                    ShadowStatusCount(serving: 200, shadow: 500, count: 1),
                ]
            )
            #expect(
                orders.fields == [
                    ShadowFieldSummary(path: "$.amount", kind: .typeChanged, raw: 2, noise: 0),
                    ShadowFieldSummary(path: "$.requestId", kind: .valueChanged, raw: 1, noise: 2),
                    ShadowFieldSummary(path: "$.items[*].price", kind: .typeChanged, raw: 1, noise: 0),
                    ShadowFieldSummary(path: "status", kind: .status, raw: 1, noise: 0),
                ]
            )
            #expect(
                orders.servingLatency
                    == LatencyPercentiles(
                        count: 6,
                        meanMicroseconds: 1_000,
                        p50Microseconds: 1_000,
                        p95Microseconds: 1_000,
                        p99Microseconds: 1_000
                    )
            )
            #expect(orders.shadowLatency?.count == 5)
            #expect(orders.shadowLatency?.p99Microseconds == 2_000)
            #expect(summaries.last?.compared == 1)

            let users = try await store.shadowEndpoints(route: "users", from: nil, to: nil)
            #expect(users.map(\.endpoint) == ["GET /users"])
            let firstMinute = try await store.shadowEndpoints(
                route: "orders",
                from: ShadowFixtures.start,
                to: ShadowFixtures.start.addingTimeInterval(60)
            )
            #expect(firstMinute.map(\.compared) == [3])
            #expect(firstMinute.first?.fields.map(\.raw) == [1, 1, 0])
            // A range starting inside a minute includes that whole minute.
            let fromInside = try await store.shadowEndpoints(
                route: "orders",
                from: ShadowFixtures.start.addingTimeInterval(90),
                to: nil
            )
            #expect(fromInside.map(\.compared) == [2])
        }
    }

    @Test("latency percentiles come from the merged histogram of every minute", arguments: StoreFixtures.backends)
    func latencyPercentiles(backend: StoreFixtures.Backend) async throws {
        try await backend.withShadowStore { store in
            var records: [ShadowRecord] = []
            for index in 0..<100 {
                // Serving: 98 answers at 1 ms and 2 at 400 ms; shadow: 1 to 100 ms.
                records.append(
                    ShadowFixtures.record(
                        at: Double(index),
                        servingLatency: index < 98 ? 1_000 : 400_000,
                        shadowLatency: (index + 1) * 1_000
                    )
                )
            }
            try await store.appendShadowRecords(Array(records[..<50]))
            try await store.appendShadowRecords(Array(records[50...]))
            let summary = try #require(try await store.shadowEndpoints(route: nil, from: nil, to: nil).first)
            #expect(summary.servingLatency.p50Microseconds == 1_000)
            #expect(summary.servingLatency.p95Microseconds == 1_000)
            #expect(summary.servingLatency.p99Microseconds > 200_000)
            #expect(summary.servingLatency.p99Microseconds <= 400_000)
            #expect(summary.servingLatency.meanMicroseconds == (98 * 1_000 + 2 * 400_000) / 100)
            let shadow = try #require(summary.shadowLatency)
            #expect((20_000...50_000).contains(shadow.p50Microseconds))
            #expect((50_000...100_000).contains(shadow.p95Microseconds))
            #expect(shadow.p95Microseconds <= shadow.p99Microseconds)
            #expect(shadow.p99Microseconds <= 100_000)
        }
    }

    @Test(
        "the timeline has one point per bucket, empty buckets included, and after-noise counts on request",
        arguments: StoreFixtures.backends)
    func timeline(backend: StoreFixtures.Backend) async throws {
        try await backend.withShadowStore { store in
            try await store.appendShadowRecords([
                ShadowFixtures.record(at: 5),
                ShadowFixtures.record(at: 10, differences: [ShadowFixtures.typeChanged]),
                ShadowFixtures.record(
                    at: 70, differences: [ShadowFixtures.requestID], noise: [ShadowFixtures.requestID]),
                ShadowFixtures.record(at: 80, shadowError: "reset"),
                ShadowFixtures.record(at: 190, differences: [ShadowFixtures.typeChanged]),
            ])
            let start = ShadowFixtures.start
            let minutes = try await store.shadowTimeline(route: "orders", from: nil, to: nil, bucketSeconds: 60)
            #expect(minutes.map(\.start) == (0..<4).map { start.addingTimeInterval(Double($0) * 60) })
            #expect(minutes.map(\.compared) == [2, 1, 0, 1])
            #expect(minutes.map(\.differing) == [1, 1, 0, 1])
            #expect(minutes.map(\.errors) == [0, 1, 0, 0])
            #expect(minutes.allSatisfy { $0.differingAfterNoise == nil })

            let filtered = try await store.shadowTimeline(
                route: nil,
                from: nil,
                to: nil,
                bucketSeconds: 60,
                thresholds: NoiseThresholds()
            )
            #expect(filtered.map(\.differingAfterNoise) == [1, 0, 0, 1])

            // Buckets of two minutes, aligned to the epoch; the requested range is filled with zeros.
            let wide = try await store.shadowTimeline(
                route: "orders",
                from: start.addingTimeInterval(-120),
                to: start.addingTimeInterval(360),
                bucketSeconds: 120
            )
            #expect(wide.map(\.compared) == [0, 3, 1, 0])
            #expect(wide.first?.start == start.addingTimeInterval(-120))
            // A bucket size that is not whole minutes is rounded up to them.
            let odd = try await store.shadowTimeline(route: "orders", from: nil, to: nil, bucketSeconds: 30)
            #expect(odd.count == 4)
            #expect(try await store.shadowTimeline(route: "users", from: nil, to: nil, bucketSeconds: 60).isEmpty)
        }
    }
}
