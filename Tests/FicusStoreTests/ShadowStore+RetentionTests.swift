import FicusDiff
import Foundation
import Testing

@testable import FicusStore

@Suite("Shadow store: retention")
struct ShadowStoreRetentionTests {
    @Test(
        "at most maxRecords records are kept, the newest; aggregates still count every record",
        arguments: StoreFixtures.backends)
    func byCount(backend: StoreFixtures.Backend) async throws {
        try await backend.withShadowStore { store in
            let retention = ShadowRetention(maxRecords: 5)
            for batch in 0..<3 {
                let records = (0..<4).map { index in
                    ShadowFixtures.record(
                        at: Double(batch * 4 + index),
                        target: "/orders/\(batch * 4 + index)",
                        differences: [ShadowFixtures.typeChanged]
                    )
                }
                try await store.appendShadowRecords(records, retention: retention)
            }
            let kept = try await ShadowFixtures.stored(store)
            #expect(kept.map(\.target) == (7..<12).reversed().map { "/orders/\($0)" })
            #expect(try await store.shadowTableSizes()["shadow_record_fields"] == 5)
            let summary = try await store.shadowEndpoints(route: nil, from: nil, to: nil)
            #expect(summary.first?.compared == 12)
            #expect(summary.first?.fields.first?.raw == 12)

            // A batch larger than the bound stores only its last records.
            try await store.appendShadowRecords(
                (0..<9).map {
                    ShadowFixtures.record(at: 20, target: "/big/\($0)", differences: [ShadowFixtures.typeChanged])
                },
                retention: ShadowRetention(maxRecords: 3)
            )
            #expect(try await ShadowFixtures.stored(store).map(\.target) == ["/big/8", "/big/7", "/big/6"])
            try await store.appendShadowRecords(
                [ShadowFixtures.record(at: 21, differences: [ShadowFixtures.typeChanged])],
                retention: ShadowRetention(maxRecords: 0)
            )
            #expect(try await ShadowFixtures.stored(store).isEmpty)
            #expect(try await store.shadowTableSizes()["shadow_record_fields"] == 0)
        }
    }

    @Test(
        "identical comparisons are counted in the aggregates but not kept as records", arguments: StoreFixtures.backends
    )
    func identicalAreCountedNotKept(backend: StoreFixtures.Backend) async throws {
        try await backend.withShadowStore { store in
            try await store.appendShadowRecords(
                [
                    ShadowFixtures.record(at: 1, target: "/same"),
                    ShadowFixtures.record(at: 2, target: "/typed", differences: [ShadowFixtures.typeChanged]),
                    ShadowFixtures.record(at: 3, target: "/noisy", noise: [ShadowFixtures.requestID]),
                    ShadowFixtures.record(at: 4, target: "/refused", shadowError: "connection refused"),
                ],
                retention: ShadowRetention()
            )
            #expect(try await ShadowFixtures.stored(store).map(\.target) == ["/refused", "/noisy", "/typed"])
            let summary = try await store.shadowEndpoints(route: nil, from: nil, to: nil)
            #expect(summary.first?.compared == 3)
            #expect(summary.first?.identical == 2)
            #expect(summary.first?.errors == 1)
        }
    }

    @Test(
        "records older than maxRecordAge and aggregates older than maxAggregateAge are deleted by the next batch",
        arguments: StoreFixtures.backends)
    func byAge(backend: StoreFixtures.Backend) async throws {
        let clock = TestClock(ShadowFixtures.start)
        try await backend.withShadowStore(clock: clock) { store in
            let retention = ShadowRetention(maxRecordAge: 3_600, maxAggregateAge: 86_400)
            try await store.appendShadowRecords(
                [ShadowFixtures.record(at: 0, target: "/old", differences: [ShadowFixtures.typeChanged])],
                retention: retention
            )
            clock.advance(by: 1_800)
            try await store.appendShadowRecords(
                [ShadowFixtures.record(at: 1_800, target: "/half", noise: [ShadowFixtures.requestID])],
                retention: retention)
            #expect(try await ShadowFixtures.stored(store).map(\.target) == ["/half", "/old"])

            clock.advance(by: 1_801)
            try await store.appendShadowRecords(
                [ShadowFixtures.record(at: 3_601, target: "/new", noise: [ShadowFixtures.requestID])],
                retention: retention)
            #expect(try await ShadowFixtures.stored(store).map(\.target) == ["/new", "/half"])
            #expect(try await store.shadowEndpoints(route: nil, from: nil, to: nil).first?.compared == 3)

            clock.advance(by: 86_400 - 3_601 + 1)
            try await store.appendShadowRecords(
                [ShadowFixtures.record(at: 86_401, target: "/later", noise: [ShadowFixtures.requestID])],
                retention: retention)
            let summary = try await store.shadowEndpoints(route: nil, from: nil, to: nil)
            // The first minute (the typeChanged record) is gone; the minutes of /half and /new stay until they age too.
            // (Those three carry only a noise difference, so that they are kept as records at all.)
            #expect(summary.first?.compared == 3)
            #expect(summary.first?.fields.map(\.path) == ["$.requestId"])
            #expect(summary.first?.fields.first?.raw == 0)
            #expect(try await ShadowFixtures.stored(store).map(\.target) == ["/later"])
            // Every aggregate table lost the first minute: three minutes are left, with the noise field and no
            // signature.
            let sizes = try await store.shadowTableSizes()
            #expect(sizes["shadow_minutes"] == 3)
            #expect(sizes["shadow_status_minutes"] == 3)
            #expect(sizes["shadow_latency_minutes"] == 6)
            #expect(sizes["shadow_field_minutes"] == 3)
            #expect(sizes["shadow_signature_minutes"] == 0)
            #expect(sizes["shadow_records"] == 1)
        }
    }
}
