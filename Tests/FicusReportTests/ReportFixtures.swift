import FicusCore
import FicusDiff
import FicusReport
import FicusStore
import Foundation

/// A clock that tests move by hand, so that stored times and the report's window are known.
///
/// The store stamps revisions and applies retention with its clock; a real clock would make windows flaky.
final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var current: Date

    init(_ start: Date) {
        self.current = start
    }

    var now: Date {
        self.lock.withLock { self.current }
    }

    func set(_ date: Date) {
        self.lock.withLock { self.current = date }
    }
}

/// A store in a temporary directory with helpers that fill it through the store API, as the proxy and the CLI do.
///
/// One per test, removed with everything SQLite put beside it.
final class ReportStore: @unchecked Sendable {
    /// The start of a minute, so that per-minute aggregates line up with the tests' arithmetic.
    static let start = Date(timeIntervalSince1970: 1_749_999_960)

    let directory: URL
    let path: String
    let clock: ManualClock
    let store: SQLiteConfigurationStore

    init() throws {
        self.directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("ficus-report-tests", isDirectory: true)
            .appendingPathComponent(UUID().uuidString, isDirectory: true)
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        self.path = self.directory.appendingPathComponent("ficus.sqlite").path
        let clock = ManualClock(Self.start)
        self.clock = clock
        self.store = try SQLiteConfigurationStore(path: self.path, now: { clock.now })
    }

    deinit {
        try? FileManager.default.removeItem(at: self.directory)
    }

    static func time(_ seconds: Double) -> Date {
        Self.start.addingTimeInterval(seconds)
    }

    static func microseconds(_ seconds: Double) -> Int64 {
        Int64((Self.time(seconds).timeIntervalSince1970 * 1_000_000).rounded())
    }

    /// Commits `change` at `seconds` after the start, with `action` in the audit log.
    @discardableResult
    func commit(
        at seconds: Double,
        action: String,
        reason: String = "testing",
        _ change: @Sendable @escaping (inout Configuration) throws -> Void
    ) async throws -> StoredRevision {
        self.clock.set(Self.time(seconds))
        return try await self.store.commit(
            ChangeAuthor(author: "tester", reason: reason, action: action), expectRevision: nil, change: change)
    }

    /// Two upstreams and the `orders` route on legacy with a 10% rule to orders-v2 (revision 1).
    func seed() async throws {
        try await self.commit(at: 0, action: "init") { configuration in
            configuration.upstreams = [
                Upstream(name: "legacy", addresses: [Endpoint(host: "127.0.0.1", port: 8080)]),
                Upstream(name: "orders-v2", addresses: [Endpoint(host: "127.0.0.1", port: 9090)]),
            ]
            configuration.routes = [
                Route(
                    name: "orders",
                    path: "/orders",
                    legacy: "legacy",
                    rules: [Rule(name: "canary", condition: .percentage(10), upstream: "orders-v2")]
                ),
                Route(name: "users", path: "/users", legacy: "legacy"),
            ]
        }
    }

    /// Turns orders-v2 into blue-green slots with green deployed (at 100 s, a revision) and checked (at 110 s, audit
    /// only), as `ficus bluegreen deploy` and `check` record them.
    func deployGreen() async throws {
        try await self.commit(
            at: 100, action: "bluegreen.deploy", reason: "upstream 'orders-v2': deployed 127.0.0.1:9191 to idle slot 'green'"
        ) { configuration in
            configuration.upstreams[1].slots = BlueGreenSlots(
                blue: [Endpoint(host: "127.0.0.1", port: 9090)],
                green: [Endpoint(host: "127.0.0.1", port: 9191)],
                active: .blue,
                previewSegment: nil
            )
        }
        self.clock.set(Self.time(110))
        try await self.store.appendAudit(
            ChangeAuthor(
                author: "tester", reason: "upstream 'orders-v2': check of slot 'green' passed", action: "bluegreen.check"),
            revision: nil,
            detail: "upstream 'orders-v2': check of slot 'green' passed"
        )
    }

    /// A canary of `orders` to orders-v2 at step 2 of 3, with one pass and one folded hold.
    static func runningCanary() -> RouteCanary {
        RouteCanary(
            target: "orders-v2",
            phase: "running",
            step: 2,
            stepCount: 3,
            weight: 50,
            progressPercent: 41.67,
            reason: nil,
            holding: "too few requests on the new side: 12 < 20",
            driver: "host:4242:ab12cd34",
            endedAt: nil,
            gates: [
                CanaryGate(name: "requests", value: 12, threshold: 20, passing: false),
                CanaryGate(name: "error rate", value: 0, threshold: 1, passing: true),
                CanaryGate(name: "p99 ratio", value: 1.2, threshold: 1.5, passing: true),
            ],
            judgements: [
                CanaryJudgement(
                    step: 1, weight: 20, at: Self.time(200), verdict: "pass", reason: "", newRequests: 40, count: 1),
                CanaryJudgement(
                    step: 2, weight: 50, at: Self.time(260), verdict: "hold",
                    reason: "too few requests on the new side: 12 < 20", newRequests: 12, count: 2),
            ]
        )
    }

    /// A compared request `seconds` after the start.
    static func record(
        at seconds: Double,
        route: String = "orders",
        endpoint: String = "GET /orders/{id}",
        target: String = "/orders/7",
        shadowStatus: Int? = 200,
        servingLatency: Int = 1_000,
        shadowLatency: Int = 3_000,
        differences: [Difference] = [],
        noise: [Difference]? = nil,
        servingBody: String = #"{"id":7,"amount":100,"note":"kept"}"#,
        shadowBody: String = #"{"id":7,"amount":"100"}"#
    ) -> ShadowRecord {
        ShadowRecord(
            timestamp: Self.microseconds(seconds),
            route: route,
            endpoint: endpoint,
            method: String(endpoint.prefix { $0 != " " }),
            target: target,
            servingUpstream: "legacy",
            shadowUpstream: "orders-v2",
            servingStatus: 200,
            shadowStatus: shadowStatus,
            servingLatencyMicroseconds: servingLatency,
            shadowLatencyMicroseconds: shadowStatus == nil ? nil : shadowLatency,
            shadowError: shadowStatus == nil ? "timeout" : nil,
            differences: differences,
            noiseDifferences: noise,
            requestHeaders: [],
            requestBody: [],
            servingHeaders: [ShadowRecord.Field(name: "Content-Type", value: "application/json")],
            servingBody: Array(servingBody.utf8),
            servingTruncated: false,
            shadowHeaders: [ShadowRecord.Field(name: "Content-Type", value: "application/json")],
            shadowBody: Array(shadowBody.utf8),
            shadowTruncated: false
        )
    }

    static let typeChanged = Difference(path: "$.amount", kind: .typeChanged, serving: "100", shadow: "\"100\"")
    static let missingNote = Difference(path: "$.note", kind: .missing, serving: "\"kept\"", shadow: nil)
    static let requestID = Difference(path: "$.requestId", kind: .valueChanged, serving: "\"a\"", shadow: "\"b\"")

    /// Appends `records` with the store's clock at the last record's time, so retention keeps them all.
    func append(_ records: [ShadowRecord]) async throws {
        if let last = records.map(\.timestamp).max() {
            self.clock.set(Date(timeIntervalSince1970: Double(last) / 1_000_000))
        }
        try await self.store.appendShadowRecords(records)
    }

    /// The fixture traffic over three minutes:
    /// - `GET /orders/{id}`: 40 requests, every one with the `$.amount` type change and the noisy `$.requestId`
    ///   (also in every noise sample), 4 noise samples: regressions.
    /// - `GET /orders`: 40 identical requests, latency known: ready.
    /// - `GET /users/{id}`: 5 identical requests: not enough traffic.
    func fill() async throws {
        var records: [ShadowRecord] = []
        for index in 0..<40 {
            // Every other request is a noise sample (20, the noise floor), and the request id differs in each.
            let noise: [Difference]? = index % 2 == 0 ? [Self.requestID] : nil
            records.append(
                Self.record(
                    at: 60 + Double(index) * 3,
                    target: "/orders/\(index)",
                    differences: [Self.typeChanged, Self.requestID],
                    noise: noise
                ))
            records.append(
                Self.record(
                    at: 60 + Double(index) * 3 + 1,
                    endpoint: "GET /orders",
                    target: "/orders?page=\(index)",
                    servingBody: "[]",
                    shadowBody: "[]"
                ))
        }
        for index in 0..<5 {
            records.append(
                Self.record(
                    at: 70 + Double(index), route: "users", endpoint: "GET /users/{id}", target: "/users/\(index)"))
        }
        try await self.append(records)
    }
}
