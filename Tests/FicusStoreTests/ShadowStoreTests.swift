import FicusDiff
import Foundation
import Testing

@testable import FicusStore

/// Shadow records for store tests, placed in time relative to a test clock.
///
/// Every test builds the traffic it checks from these few helpers, so the expected counts can be read off the test.
enum ShadowFixtures {
    /// The test clock's start (see `TestClock`), which is the start of a minute.
    static let start = Date(timeIntervalSince1970: 1_749_999_960)

    static let endpoint = "GET /orders/{id}"

    /// A compared request `seconds` after `start`; identical unless `differences` are given.
    static func record(
        at seconds: Double = 0,
        route: String = "orders",
        endpoint: String = Self.endpoint,
        target: String = "/orders/1",
        servingStatus: Int = 200,
        shadowStatus: Int? = 200,
        servingLatency: Int = 1_000,
        shadowLatency: Int? = 2_000,
        shadowError: String? = nil,
        differences: [Difference] = [],
        noise: [Difference]? = nil
    ) -> ShadowRecord {
        ShadowRecord(
            timestamp: Telemetry.microseconds(Self.start.addingTimeInterval(seconds)),
            route: route,
            endpoint: endpoint,
            method: String(endpoint.prefix { $0 != " " }),
            target: target,
            servingUpstream: "legacy",
            shadowUpstream: "orders-v2",
            servingStatus: servingStatus,
            shadowStatus: shadowError == nil ? shadowStatus : nil,
            servingLatencyMicroseconds: servingLatency,
            shadowLatencyMicroseconds: shadowError == nil ? shadowLatency : nil,
            shadowError: shadowError,
            differences: differences,
            noiseDifferences: noise,
            requestHeaders: [ShadowRecord.Field(name: "Accept", value: "application/json")],
            requestBody: [],
            servingHeaders: [ShadowRecord.Field(name: "Content-Type", value: "application/json")],
            servingBody: Array(#"{"amount":100}"#.utf8),
            servingTruncated: false,
            shadowHeaders: [ShadowRecord.Field(name: "Content-Type", value: "application/json")],
            shadowBody: Array(#"{"amount":"100"}"#.utf8),
            shadowTruncated: false
        )
    }

    /// The seed incident: `$.amount` became a string.
    static let typeChanged = Difference(path: "$.amount", kind: .typeChanged, serving: "100", shadow: "\"100\"")

    /// A field that differs between any two answers, the serving side's included.
    static let requestID = Difference(path: "$.requestId", kind: .valueChanged, serving: "\"a\"", shadow: "\"b\"")

    /// A store on a new file whose clock starts at `start`.
    static func store(_ file: TemporaryStoreFile, clock: TestClock = TestClock(Self.start)) throws
        -> SQLiteConfigurationStore
    {
        try SQLiteConfigurationStore(path: file.path, now: { clock.now })
    }

    /// Every stored record of `endpoint`, newest first.
    static func stored(
        _ store: any ShadowStore,
        route: String = "orders",
        endpoint: String = Self.endpoint
    ) async throws -> [ShadowRecord] {
        try await store.shadowSamples(route: route, endpoint: endpoint, path: nil, kind: nil, limit: 1_000_000)
    }
}

@Suite("Shadow store: records and samples")
struct ShadowStoreTests {
    @Test("a new SQLite store has the shadow migration after the configuration ones")
    func migration() async throws {
        let file = try TemporaryStoreFile()
        let store = try ShadowFixtures.store(file)
        #expect(try await store.appliedMigrations() == StoreFixtures.migrations)
    }

    @Test("a new store has no shadow data", arguments: StoreFixtures.backends)
    func empty(backend: StoreFixtures.Backend) async throws {
        try await backend.withShadowStore { store in
            let endpoints = try await store.shadowEndpoints(route: nil, from: nil, to: nil)
            #expect(endpoints.isEmpty)
            #expect(try await store.metricWindows(route: nil, from: nil, to: nil).isEmpty)
            #expect(try await ShadowFixtures.stored(store).isEmpty)
            #expect(try await store.trafficSummary(route: "orders", from: nil, to: nil).isEmpty)
            #expect(store.telemetryDrops == TelemetryDrops())
        }
    }

    @Test(
        "a record comes back exactly as stored, binary and empty bodies and noise differences included",
        arguments: StoreFixtures.backends)
    func roundTrip(backend: StoreFixtures.Backend) async throws {
        try await backend.withShadowStore { store in
            var record = ShadowFixtures.record(
                differences: [
                    ShadowFixtures.typeChanged, Difference(path: "header:etag", kind: .header, serving: "1"),
                ],
                noise: []
            )
            record.requestBody = [0, 255, 13, 10, 0]
            record.shadowBody = []
            record.shadowTruncated = true
            record.requestHeaders.append(ShadowRecord.Field(name: "Authorization", value: "[redacted]"))
            var failed = ShadowFixtures.record(at: 1, shadowError: "timed out after 5 s")
            failed.servingBody = []
            try await store.appendShadowRecords([record, failed])
            #expect(try await ShadowFixtures.stored(store) == [failed, record])
        }
    }

    @Test(
        "samples are the newest records with the field, matched by generalised path and kind",
        arguments: StoreFixtures.backends)
    func samples(backend: StoreFixtures.Backend) async throws {
        try await backend.withShadowStore { store in
            let sku = { (index: Int) in Difference(path: "$.items[\(index)].sku", kind: .valueChanged) }
            var records: [ShadowRecord] = []
            for second in 0..<8 {
                let differences =
                    second.isMultiple(of: 2) ? [sku(second), sku(second + 1)] : [ShadowFixtures.typeChanged]
                records.append(
                    ShadowFixtures.record(at: Double(second), target: "/orders/\(second)", differences: differences)
                )
            }
            records.append(ShadowFixtures.record(at: 9, endpoint: "GET /users/{id}", differences: [sku(0)]))
            records.append(ShadowFixtures.record(at: 10, route: "users", differences: [sku(0)]))
            // Stored out of time order: samples are ordered by time, not by insertion.
            try await store.appendShadowRecords(Array(records[4...]))
            try await store.appendShadowRecords(Array(records[..<4]))

            let newest = try await store.shadowSamples(
                route: "orders",
                endpoint: ShadowFixtures.endpoint,
                path: "$.items[*].sku",
                kind: .valueChanged
            )
            #expect(newest.map(\.target) == ["/orders/6", "/orders/4", "/orders/2", "/orders/0"])
            let two = try await store.shadowSamples(
                route: "orders",
                endpoint: ShadowFixtures.endpoint,
                path: "$.amount",
                kind: .typeChanged,
                limit: 2
            )
            #expect(two.map(\.target) == ["/orders/7", "/orders/5"])
            let wrongKind = try await store.shadowSamples(
                route: "orders",
                endpoint: ShadowFixtures.endpoint,
                path: "$.amount",
                kind: .valueChanged
            )
            #expect(wrongKind.isEmpty)
            let anyPath = try await store.shadowSamples(
                route: "orders",
                endpoint: ShadowFixtures.endpoint,
                path: nil,
                kind: .typeChanged,
                limit: 10
            )
            #expect(anyPath.count == 4)
            let all = try await ShadowFixtures.stored(store)
            #expect(all.map(\.target) == (0..<8).reversed().map { "/orders/\($0)" })
            #expect(try await ShadowFixtures.stored(store, route: "users").count == 1)
            #expect(try await ShadowFixtures.stored(store, endpoint: "GET /users/{id}").count == 1)
        }
    }
}
