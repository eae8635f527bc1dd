import FicusDiff
import Foundation
import Testing

@testable import FicusStore

@Suite("Shadow store: noise-filtered diff rate")
struct ShadowStoreDiffRateTests {
    static let generatedAt = Difference(path: "$.meta.generatedAt", kind: .valueChanged)
    static let total = Difference(path: "$.total", kind: .missing)

    /// 100 requests on `GET /orders/{id}`, every tenth a noise sample: `$.requestId` differs on every answer (raw 100,
    /// noise 10 of 10 samples), `$.meta.generatedAt` on every other one (raw 50, noise 5 of 10), and the planted
    /// `$.amount` type change in 5 requests; plus 10 requests on `GET /orders` without noise samples, one with a
    /// missing `$.total`.
    static func traffic() -> [ShadowRecord] {
        var records: [ShadowRecord] = []
        for index in 0..<100 {
            var differences = [ShadowFixtures.requestID]
            if index.isMultiple(of: 2) {
                differences.append(Self.generatedAt)
            }
            if index < 5 {
                differences.append(ShadowFixtures.typeChanged)
            }
            var noise: [Difference]?
            if index.isMultiple(of: 10) {
                noise = [ShadowFixtures.requestID]
                if index.isMultiple(of: 20) {
                    noise?.append(Self.generatedAt)
                }
            }
            records.append(ShadowFixtures.record(at: Double(index) / 10, differences: differences, noise: noise))
        }
        for index in 0..<10 {
            records.append(
                ShadowFixtures.record(
                    at: Double(index),
                    endpoint: "GET /orders",
                    differences: index == 0 ? [Self.total] : []
                )
            )
        }
        return records
    }

    @Test(
        "fields differing as often against the shadow as between serving answers are noise; a type change is not",
        arguments: StoreFixtures.backends)
    func noiseFiltering(backend: StoreFixtures.Backend) async throws {
        try await backend.withShadowStore { store in
            try await store.appendShadowRecords(Self.traffic())
            let rate = try await store.shadowDiffRate(
                route: "orders", from: nil, to: nil, thresholds: NoiseThresholds())
            #expect(rate.compared == 110)
            #expect(rate.differing == 101)
            // Each of the five type changes also has the noisy fields: requests count once.
            #expect(rate.differingAfterNoise == 6)
            #expect(abs(rate.rate - 6.0 / 110.0) < 1e-12)
            #expect(rate.endpoints.map(\.endpoint) == ["GET /orders", "GET /orders/{id}"])
            #expect(rate.endpoints.map(\.differingAfterNoise) == [1, 5])
            #expect(rate.endpoints.map { $0.regressions.map(\.path) } == [["$.total"], ["$.amount"]])

            let summaries = try await store.shadowEndpoints(route: "orders", from: nil, to: nil)
            let summary = try #require(summaries.first { $0.endpoint == ShadowFixtures.endpoint })
            let requestID = try #require(summary.fields.first { $0.path == "$.requestId" })
            #expect(requestID.raw == 100)
            #expect(requestID.noise == 10)
            #expect(summary.counts(for: requestID) == FieldCounts(raw: 100, noise: 100))
            let generatedAt = try #require(summary.fields.first { $0.path == "$.meta.generatedAt" })
            #expect(summary.counts(for: generatedAt) == FieldCounts(raw: 50, noise: 50))
            #expect(!summary.isRegression(generatedAt, thresholds: NoiseThresholds()))
        }
    }

    @Test(
        "the rate follows the thresholds, the route and the time range, and survives record retention",
        arguments: StoreFixtures.backends)
    func filters(backend: StoreFixtures.Backend) async throws {
        try await backend.withShadowStore { store in
            try await store.appendShadowRecords(Self.traffic(), retention: ShadowRetention(maxRecords: 1))
            let kept = try await store.shadowDiffRate(route: nil, from: nil, to: nil, thresholds: NoiseThresholds())
            #expect(kept.compared == 110)
            #expect(kept.differingAfterNoise == 6)

            // 5 of 100 is below an absolute threshold of 10%; 1 of 10 is not above it.
            let strict = try await store.shadowDiffRate(
                route: "orders",
                from: nil,
                to: nil,
                thresholds: NoiseThresholds(relative: 0.2, absolute: 0.1)
            )
            #expect(strict.differingAfterNoise == 0)
            #expect(strict.differing == 101)

            let otherRoute = try await store.shadowDiffRate(
                route: "users",
                from: nil,
                to: nil,
                thresholds: NoiseThresholds()
            )
            #expect(otherRoute == ShadowDiffRate(compared: 0, differing: 0, differingAfterNoise: 0, endpoints: []))
            #expect(otherRoute.rate == 0)
            let later = try await store.shadowDiffRate(
                route: "orders",
                from: ShadowFixtures.start.addingTimeInterval(60),
                to: nil,
                thresholds: NoiseThresholds()
            )
            #expect(later.compared == 0)
        }
    }

    @Test("without noise samples every field that passes the thresholds counts", arguments: StoreFixtures.backends)
    func withoutNoiseSamples(backend: StoreFixtures.Backend) async throws {
        try await backend.withShadowStore { store in
            try await store.appendShadowRecords(
                (0..<20).map { index in
                    ShadowFixtures.record(at: Double(index), differences: index < 2 ? [ShadowFixtures.requestID] : [])
                }
            )
            let rate = try await store.shadowDiffRate(
                route: "orders", from: nil, to: nil, thresholds: NoiseThresholds())
            #expect(rate.compared == 20)
            #expect(rate.differingAfterNoise == 2)
        }
    }
}
