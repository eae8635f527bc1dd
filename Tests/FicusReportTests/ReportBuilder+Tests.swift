import FicusCore
import FicusDiff
@testable import FicusReport
import FicusStore
import Foundation
import Testing

@Suite("Report builder")
struct ReportBuilderTests {
    static func build(_ fixture: ReportStore, _ options: ReportOptions = ReportOptions()) async throws
        -> MigrationReport
    {
        try await ReportBuilder(store: fixture.store, options: options, now: { ReportStore.time(3_600) }).build()
    }

    @Test("an empty store gives an empty report that never passes the gate")
    func emptyStore() async throws {
        let fixture = try ReportStore()
        let report = try await Self.build(fixture)
        #expect(report.endpoints.isEmpty)
        #expect(report.routes.isEmpty)
        #expect(report.timeline.isEmpty)
        #expect(report.revision == nil)
        #expect(report.verdict == .notEnoughTraffic)
        #expect(report.verdict.exitStatus == 5)
    }

    @Test("per endpoint: counts, fields with noise flags, status matrix, latency and verdicts")
    func endpoints() async throws {
        let fixture = try ReportStore()
        try await fixture.seed()
        try await fixture.fill()
        let report = try await Self.build(fixture)
        #expect(report.endpoints.map(\.endpoint) == ["GET /orders", "GET /orders/{id}", "GET /users/{id}"])
        let byName = Dictionary(uniqueKeysWithValues: report.endpoints.map { ($0.endpoint, $0) })

        let item = try #require(byName["GET /orders/{id}"])
        #expect(item.route == "orders")
        #expect(item.method == "GET")
        #expect(item.template == "/orders/{id}")
        #expect(item.compared == 40)
        #expect(item.identical == 0)
        #expect(item.differing == 40)
        #expect(item.differingAfterNoise == 40)
        #expect(item.differingPercent == 100)
        #expect(item.noiseSamples == 20)
        #expect(item.verdict == .regressions)
        // Regressions first: the first field under an endpoint is the reason for its verdict.
        #expect(item.fields.first == FieldReport(path: "$.amount", kind: "type_changed", count: 40, noiseCount: 0,
            noise: false))
        let requestID = try #require(item.fields.first { $0.path == "$.requestId" })
        #expect(requestID.noise)
        #expect(requestID.noiseCount == 40)
        #expect(item.statuses == [StatusCell(serving: 200, shadow: 200, count: 40)])
        #expect(item.latency.serving.p50Microseconds == 1_000)
        #expect(item.latency.shadow?.p99Microseconds == 3_000)

        let list = try #require(byName["GET /orders"])
        #expect(list.compared == 40)
        #expect(list.identicalPercent == 100)
        #expect(list.fields.isEmpty)
        #expect(list.verdict == .ready)

        let users = try #require(byName["GET /users/{id}"])
        #expect(users.compared == 5)
        #expect(users.verdict == .notEnoughTraffic)

        #expect(report.totals.compared == 85)
        #expect(report.totals.ready == 1)
        #expect(report.totals.regressions == 1)
        #expect(report.totals.notEnoughTraffic == 1)
        #expect(report.verdict == .regressions)
        #expect(report.verdict.exitStatus == 4)
    }

    /// Below the noise floor, a field never seen in noise is unconfirmed: neither a regression nor ready, and the gate
    /// holds it as not enough traffic (exit 5); fields seen in noise stay noise.
    @Test func fieldsNeverSeenInNoiseAreUnconfirmedBelowTheNoiseFloor() async throws {
        let fixture = try ReportStore()
        try await fixture.seed()
        try await fixture.fill()
        let report = try await Self.build(fixture, ReportOptions(route: "orders", noiseFloor: 21))
        let item = try #require(report.endpoints.first { $0.endpoint == "GET /orders/{id}" })
        #expect(item.verdict == .unconfirmed)
        #expect(item.fields.first { $0.path == "$.amount" }?.unconfirmed == true)
        #expect(item.fields.first { $0.path == "$.requestId" }?.noise == true)
        #expect(item.fields.first { $0.path == "$.requestId" }?.unconfirmed == false)
        #expect(report.totals.unconfirmed == 1)
        #expect(report.totals.regressions == 0)
        #expect(report.verdict == .notEnoughTraffic)
        #expect(report.verdict.exitStatus == 5)
        // At the floor the same field is a regression.
        let met = try await Self.build(fixture, ReportOptions(route: "orders", noiseFloor: 20))
        #expect(met.endpoints.first { $0.endpoint == "GET /orders/{id}" }?.verdict == .regressions)
    }

    @Test("drill-down: up to five samples per differing field, bodies pretty-printed with the differing lines marked")
    func samples() async throws {
        let fixture = try ReportStore()
        try await fixture.seed()
        try await fixture.fill()
        let report = try await Self.build(fixture)
        let item = try #require(report.endpoints.first { $0.endpoint == "GET /orders/{id}" })
        let amount = try #require(item.samples.first { $0.path == "$.amount" })
        #expect(amount.kind == "type_changed")
        #expect(amount.samples.count == 5)
        let sample = try #require(amount.samples.first)
        // Newest first.
        #expect(sample.target == "/orders/39")
        #expect(sample.differences.map(\.path).contains("$.amount"))
        let servingLines = sample.serving.text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(servingLines.count == 5, "\(sample.serving.text)")
        #expect(sample.serving.highlightedLines == [2])
        #expect(servingLines[2] == "  \"amount\": 100,")
        let shadowLines = sample.shadow.text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(sample.shadow.highlightedLines.map { String(shadowLines[$0]) } == ["  \"amount\": \"100\""])
        // Samples with a limit of one per field.
        let one = try await Self.build(fixture, ReportOptions(samplesPerField: 1))
        #expect(one.endpoints.flatMap(\.samples).allSatisfy { $0.samples.count == 1 })
    }

    @Test("the window limits endpoints and timeline; the timeline has one point per bucket, empty ones included")
    func window() async throws {
        let fixture = try ReportStore()
        try await fixture.seed()
        try await fixture.fill()
        let all = try await Self.build(fixture)
        #expect(all.window.bucketSeconds == 60)
        #expect(all.timeline.map(\.start) == [ReportStore.time(60), ReportStore.time(120)])
        #expect(all.timeline.reduce(0) { $0 + $1.compared } == all.totals.compared)
        #expect(all.timeline.reduce(0) { $0 + $1.differingAfterNoise } == all.totals.differingAfterNoise)

        let late = try await Self.build(fixture, ReportOptions(from: ReportStore.time(120), to: ReportStore.time(600)))
        #expect(late.endpoints.map(\.compared) == [20, 20])
        #expect(late.timeline.count == 8)
        #expect(late.timeline.reduce(0) { $0 + $1.compared } == 40)
        #expect(late.timeline.dropFirst().allSatisfy { $0.compared == 0 })

        let wide = try await Self.build(
            fixture, ReportOptions(from: ReportStore.time(0), to: ReportStore.time(86_400), maxTimelinePoints: 24))
        #expect(wide.window.bucketSeconds == 3_600)
        #expect(wide.timeline.count <= 25)
        #expect(wide.timeline.reduce(0) { $0 + $1.compared } == 85)

        let users = try await Self.build(fixture, ReportOptions(route: "users"))
        #expect(users.endpoints.map(\.endpoint) == ["GET /users/{id}"])
        #expect(users.routes.map(\.route) == ["users"])
        #expect(users.verdict == .notEnoughTraffic)
    }

    @Test("verdicts: regressions win whatever the traffic; ready needs the minimum")
    func verdicts() {
        #expect(ReportBuilder.verdict(regressions: 1, compared: 2, minRequests: 30) == .regressions)
        #expect(ReportBuilder.verdict(regressions: 0, compared: 29, minRequests: 30) == .notEnoughTraffic)
        #expect(ReportBuilder.verdict(regressions: 0, compared: 30, minRequests: 30) == .ready)
        #expect(ReportBuilder.verdict(regressions: 0, compared: 0, minRequests: 1) == .notEnoughTraffic)
    }

    @Test("--min-requests moves endpoints between ready and not enough traffic")
    func minRequests() async throws {
        let fixture = try ReportStore()
        try await fixture.seed()
        try await fixture.fill()
        let strict = try await Self.build(fixture, ReportOptions(route: "orders", minRequests: 1_000))
        #expect(strict.endpoints.map(\.verdict) == [.notEnoughTraffic, .regressions])
        let lax = try await Self.build(fixture, ReportOptions(route: "users", minRequests: 5))
        #expect(lax.endpoints.map(\.verdict) == [.ready])
        #expect(lax.verdict == .pass)
    }

    @Test("progress: configured and observed shares, since which revision, flips, rollbacks and the audit trail")
    func progress() async throws {
        let fixture = try ReportStore()
        try await fixture.seed()
        let bounds = [1_000, 10_000]
        try await fixture.store.appendMetricWindows([
            MetricWindow(
                start: ReportStore.microseconds(60), durationMilliseconds: 10_000, proxy: "p1", route: "orders",
                upstream: "legacy", requests: 90, serverErrors: 1, latencyBucketBounds: bounds,
                latencyBucketCounts: [90, 0, 0]),
            MetricWindow(
                start: ReportStore.microseconds(60), durationMilliseconds: 10_000, proxy: "p1", route: "orders",
                upstream: "orders-v2", requests: 10, serverErrors: 0, latencyBucketBounds: bounds,
                latencyBucketCounts: [0, 10, 0]),
        ])
        try await fixture.commit(at: 300, action: "flip", reason: "cut over") { configuration in
            configuration.routes[0].defaultUpstream = "orders-v2"
        }
        fixture.clock.set(ReportStore.time(400))
        try await fixture.store.rollback(
            to: 1, ChangeAuthor(author: "tester", reason: "errors", action: "rollback"))

        let report = try await Self.build(fixture, ReportOptions(from: ReportStore.time(30)))
        #expect(report.revision == 3)
        let orders = try #require(report.routes.first { $0.route == "orders" })
        #expect(orders.legacy == "legacy")
        #expect(orders.defaultUpstream == "legacy")
        #expect(orders.rules == [RuleShare(name: "canary", upstream: "orders-v2", condition: "percentage 10",
            percentage: 10)])
        #expect(orders.configuredShares == [
            UpstreamShare(upstream: "legacy", percent: 90), UpstreamShare(upstream: "orders-v2", percent: 10),
        ])
        #expect(orders.conditionalRules.isEmpty)
        #expect(orders.observed.map(\.requests) == [90, 10])
        #expect(orders.observedLegacyPercent == 90)
        #expect(orders.observedNewPercent == 10)
        #expect(orders.sinceRevision == 3)
        #expect(orders.flips == 1)
        #expect(orders.rollbacks == 1)
        #expect(orders.changes.map(\.revision) == [3, 2])
        #expect(orders.changes.map(\.action) == ["rollback", "flip"])
        #expect(orders.changes.last?.reason == "cut over")

        // Revision 1 is before the window: it is not part of the trail, but may still be "since".
        let users = try #require(report.routes.first { $0.route == "users" })
        #expect(users.observedLegacyPercent == nil)
        #expect(users.changes.isEmpty)
        #expect(users.flips == 0)

        let late = try await Self.build(fixture, ReportOptions(from: ReportStore.time(350)))
        let lateOrders = try #require(late.routes.first { $0.route == "orders" })
        #expect(lateOrders.flips == 0)
        #expect(lateOrders.rollbacks == 1)
        #expect(lateOrders.observedLegacyPercent == nil)
    }

    @Test("progress: the route's canary while it runs or when it ended in the window, and its blue-green upstreams")
    func rollouts() async throws {
        let fixture = try ReportStore()
        try await fixture.seed()
        try await fixture.deployGreen()
        try await fixture.commit(at: 120, action: "bluegreen.preview") { configuration in
            configuration.segments = [
                Segment(name: "qa", constraints: [Predicate(.header("X-Team"), .equals, ["qa"])])
            ]
            configuration.upstreams[1].slots?.previewSegment = "qa"
        }
        fixture.clock.set(ReportStore.time(130))
        try await fixture.store.appendAudit(
            ChangeAuthor(author: "tester", reason: "upstream 'other': check of slot 'green' passed", action: "bluegreen.check"),
            revision: nil,
            detail: "upstream 'other': check of slot 'green' passed"
        )
        var finished = ReportStore.runningCanary()
        finished.phase = "promoted"
        finished.endedAt = ReportStore.time(300)
        finished.driver = nil
        let canaries = ["orders": finished]
        let options = ReportOptions(from: ReportStore.time(105))
        let report = try await ReportBuilder(
            store: fixture.store, options: options, canaries: canaries, now: { ReportStore.time(3_600) }
        ).build()
        let orders = try #require(report.routes.first { $0.route == "orders" })
        #expect(orders.canary == finished)
        let slots = try #require(orders.slots.first)
        #expect(orders.slots.count == 1)
        #expect(slots.upstream == "orders-v2")
        #expect(slots.active == "blue" && slots.idle == "green")
        #expect(slots.activeAddresses == ["127.0.0.1:9090"] && slots.idleAddresses == ["127.0.0.1:9191"])
        #expect(slots.previewSegment == "qa")
        // Newest first; the deploy at 100 s is before the window; the check of another upstream is not about it.
        #expect(slots.events.map(\.action) == ["bluegreen.preview", "bluegreen.check"])
        #expect(slots.events.first?.summary == "~ upstream orders-v2: preview segment none → 'qa' — testing")
        #expect(slots.events.first?.revision == 3)
        #expect(slots.events.last?.revision == nil)
        let users = try #require(report.routes.first { $0.route == "users" })
        #expect(users.canary == nil && users.slots.isEmpty)

        // A canary that ended before the window is not shown; one still running always is.
        let later = ReportOptions(from: ReportStore.time(400))
        let quiet = try await ReportBuilder(store: fixture.store, options: later, canaries: canaries).build()
        #expect(quiet.routes.first { $0.route == "orders" }?.canary == nil)
        let running = try await ReportBuilder(
            store: fixture.store, options: later, canaries: ["orders": ReportStore.runningCanary()]
        ).build()
        #expect(running.routes.first { $0.route == "orders" }?.canary?.phase == "running")
    }

    @Test("configured shares cascade percentage rules and name conditional ones")
    func configuredShares() {
        let route = Route(
            name: "orders",
            legacy: "legacy",
            defaultUpstream: "legacy",
            rules: [
                Rule(name: "beta", condition: .segment("beta"), upstream: "orders-v2"),
                Rule(name: "half", condition: .percentage(50), upstream: "orders-v2"),
                Rule(name: "tenth", condition: .all([.percentage(20)]), upstream: "orders-v3"),
            ]
        )
        let (rules, shares, conditional) = ReportBuilder.configuredShares(route)
        #expect(rules.map(\.percentage) == [nil, 50, 20])
        #expect(conditional == ["beta"])
        #expect(shares == [
            UpstreamShare(upstream: "orders-v2", percent: 50), UpstreamShare(upstream: "legacy", percent: 40),
            UpstreamShare(upstream: "orders-v3", percent: 10),
        ])
    }
}
