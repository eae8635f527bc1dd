import FicusCore
import FicusDiff
import FicusStore
import Foundation

/// Reads a store and builds a `MigrationReport`; the only part of the module that does I/O.
///
/// Renderers are pure functions of the report, so everything that touches the store happens here, once, and a
/// report rendered three ways shows the same numbers three times.
public struct ReportBuilder: Sendable {
    public let store: any ConfigurationStore & ShadowStore
    public let options: ReportOptions
    /// The time stamped on the report.
    ///
    /// Injected so that tests get stable output.
    public let now: @Sendable () -> Date
    /// The latest canary of each route, by route name, as read by the caller; shown when under way or ended in the
    /// window.
    ///
    /// Passed in because canary states belong to the rollout module, which this one does not depend on.
    public let canaries: [String: RouteCanary]

    public init(
        store: any ConfigurationStore & ShadowStore,
        options: ReportOptions = ReportOptions(),
        canaries: [String: RouteCanary] = [:],
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.store = store
        self.options = options
        self.canaries = canaries
        self.now = now
    }

    /// Builds the report.
    ///
    /// Throws what the store throws; an empty store gives an empty report whose gate verdict is "not enough traffic".
    public func build() async throws -> MigrationReport {
        let options = self.options
        let summaries = try await self.store.shadowEndpoints(route: options.route, from: options.from, to: options.to)
        let rates = try await self.store.shadowDiffRate(
            route: options.route, from: options.from, to: options.to, thresholds: options.thresholds)
        var afterNoise: [String: Int] = [:]
        for rate in rates.endpoints {
            afterNoise[rate.route + "\n" + rate.endpoint] = rate.differingAfterNoise
        }
        var endpoints: [EndpointReport] = []
        for summary in summaries {
            let differing = afterNoise[summary.route + "\n" + summary.endpoint] ?? 0
            endpoints.append(try await self.endpoint(summary, differingAfterNoise: differing))
        }
        let (bucketSeconds, timeline) = try await self.timeline()
        let latest = try await self.store.latest()
        let routes = try await self.progress(configuration: latest?.configuration)
        let totals = Self.totals(endpoints)
        return MigrationReport(
            generatedAt: self.now(),
            window: ReportWindow(from: options.from, to: options.to, bucketSeconds: bucketSeconds),
            thresholds: ReportThresholds(
                relative: options.thresholds.relative,
                absolute: options.thresholds.absolute,
                minRequests: options.minRequests
            ),
            revision: latest?.number,
            totals: totals,
            verdict: Self.gate(endpoints, minRequests: options.minRequests),
            endpoints: endpoints,
            timeline: timeline,
            routes: routes
        )
    }

    /// The verdict of one endpoint: regressions whatever the traffic, else ready once it has enough.
    ///
    /// A difference seen is evidence even on a quiet endpoint; the absence of differences is evidence only with
    /// enough requests.
    public static func verdict(regressions: Int, compared: Int, minRequests: Int, unconfirmed: Int = 0) -> Verdict {
        if regressions > 0 {
            return .regressions
        }
        if unconfirmed > 0 {
            return .unconfirmed
        }
        return compared >= minRequests && compared > 0 ? .ready : .notEnoughTraffic
    }

    /// The gate over every endpoint: regressions anywhere fail it; an unconfirmed endpoint holds it as not enough
    /// traffic; otherwise at least one endpoint must have enough traffic.
    ///
    /// An empty or starved store must never pass a CI gate, or a broken shadow setup would look like success; nor
    /// must a difference that may still turn out to be a regression.
    public static func gate(_ endpoints: [EndpointReport], minRequests: Int) -> GateVerdict {
        if endpoints.contains(where: { $0.verdict == .regressions }) {
            return .regressions
        }
        if endpoints.contains(where: { $0.verdict == .unconfirmed }) {
            return .notEnoughTraffic
        }
        if endpoints.contains(where: { $0.compared >= minRequests && $0.compared > 0 }) {
            return .pass
        }
        return .notEnoughTraffic
    }

    static func totals(_ endpoints: [EndpointReport]) -> ReportTotals {
        var totals = ReportTotals()
        for endpoint in endpoints {
            totals.compared += endpoint.compared
            totals.identical += endpoint.identical
            totals.differing += endpoint.differing
            totals.differingAfterNoise += endpoint.differingAfterNoise
            totals.errors += endpoint.errors
            totals.eligible += endpoint.coverage.eligible
            totals.dropped += endpoint.coverage.dropped
            totals.endpoints += 1
            switch endpoint.verdict {
            case .ready: totals.ready += 1
            case .regressions: totals.regressions += 1
            case .notEnoughTraffic: totals.notEnoughTraffic += 1
            case .unconfirmed: totals.unconfirmed += 1
            }
        }
        return totals
    }

    /// One endpoint's section, with its samples.
    ///
    /// Fields are listed regressions first so that the first line under an endpoint is the reason for its verdict.
    func endpoint(_ summary: ShadowEndpointSummary, differingAfterNoise: Int) async throws -> EndpointReport {
        let thresholds = self.options.thresholds
        // Too few noise samples to tell noise from a regression: a field never seen in noise is unconfirmed.
        let learning = summary.noiseSamples < self.options.noiseFloor
        let fields = summary.fields.map { field in
            let noiseCount = summary.counts(for: field).noise
            let noise = !summary.isRegression(field, thresholds: thresholds)
            return FieldReport(
                path: field.path,
                kind: field.kind.rawValue,
                count: field.raw,
                noiseCount: noiseCount,
                noise: noise,
                unconfirmed: !noise && learning && field.noise == 0
            )
        }.filter { $0.count > 0 }
        let ordered = fields.enumerated().sorted { left, right in
            if left.element.noise != right.element.noise {
                return !left.element.noise
            }
            return left.offset < right.offset
        }.map(\.element)
        let regressions = ordered.filter { !$0.noise && !$0.unconfirmed }.count
        let unconfirmed = ordered.filter(\.unconfirmed).count
        var samples: [FieldSamples] = []
        for field in ordered.prefix(self.options.sampledFieldsPerEndpoint) {
            let records = try await self.store.shadowSamples(
                route: summary.route,
                endpoint: summary.endpoint,
                path: field.path,
                kind: DifferenceKind(rawValue: field.kind),
                limit: self.options.samplesPerField
            )
            if !records.isEmpty {
                samples.append(
                    FieldSamples(path: field.path, kind: field.kind, samples: records.map { self.sample($0) }))
            }
        }
        let (method, template) = Self.split(summary.endpoint)
        return EndpointReport(
            endpoint: summary.endpoint,
            route: summary.route,
            method: method,
            template: template,
            compared: summary.compared,
            identical: summary.identical,
            differing: summary.differing,
            differingAfterNoise: differingAfterNoise,
            errors: summary.errors,
            noiseSamples: summary.noiseSamples,
            verdict: Self.verdict(
                regressions: regressions,
                compared: summary.compared,
                minRequests: self.options.minRequests,
                unconfirmed: unconfirmed
            ),
            fields: ordered,
            statuses: summary.statuses.map { StatusCell(serving: $0.serving, shadow: $0.shadow, count: $0.count) },
            latency: EndpointLatency(
                serving: Self.side(summary.servingLatency),
                shadow: summary.shadowLatency.map(Self.side),
                shadowWait: summary.shadowWait.map(Self.side)
            ),
            coverage: Coverage(
                compared: summary.compared,
                errors: summary.errors,
                dropped: summary.dropped.map { DropCell(reason: $0.reason, sent: $0.sent, count: $0.count) }
            ),
            samples: samples
        )
    }

    /// "GET /orders/{id}" as method and template.
    static func split(_ endpoint: String) -> (method: String, template: String) {
        guard let space = endpoint.firstIndex(of: " ") else {
            return ("", endpoint)
        }
        return (String(endpoint[..<space]), String(endpoint[endpoint.index(after: space)...]))
    }

    static func side(_ latency: LatencyPercentiles) -> SideLatency {
        SideLatency(
            count: latency.count,
            meanMicroseconds: latency.meanMicroseconds,
            p50Microseconds: latency.p50Microseconds,
            p95Microseconds: latency.p95Microseconds,
            p99Microseconds: latency.p99Microseconds
        )
    }

    /// One stored record as a sample, bodies bounded and the differing lines marked.
    func sample(_ record: ShadowRecord) -> ShadowSample {
        let paths = Set(record.differences.map(\.path))
        let limit = self.options.maxBodyCharacters
        return ShadowSample(
            time: Date(timeIntervalSince1970: Double(record.timestamp) / 1_000_000),
            target: record.target,
            servingUpstream: record.servingUpstream,
            shadowUpstream: record.shadowUpstream,
            servingStatus: record.servingStatus,
            shadowStatus: record.shadowStatus,
            shadowError: record.shadowError,
            differences: record.differences.map {
                SampleDifference(path: $0.path, kind: $0.kind.rawValue, serving: $0.serving, shadow: $0.shadow)
            },
            serving: BodyExcerpt.make(
                body: record.servingBody, truncated: record.servingTruncated, paths: paths, maxCharacters: limit),
            shadow: BodyExcerpt.make(
                body: record.shadowBody, truncated: record.shadowTruncated, paths: paths, maxCharacters: limit),
            requestID: record.requestID
        )
    }

    /// The timeline with a bucket wide enough to stay under `maxTimelinePoints`.
    ///
    /// With both bounds known the width follows from the window; with open bounds the store is asked per minute
    /// first and again with a wider bucket when that gives too many points. One point more than the maximum is
    /// allowed: a window that does not start on a bucket boundary touches one bucket more.
    func timeline() async throws -> (Int, [TimelinePoint]) {
        let options = self.options
        let maxPoints = max(1, options.maxTimelinePoints)
        var bucket = 60
        if let from = options.from, let to = options.to, to > from {
            bucket = Self.bucket(span: to.timeIntervalSince(from), maxPoints: maxPoints)
        }
        var points = try await self.store.shadowTimeline(
            route: options.route, from: options.from, to: options.to, bucketSeconds: bucket,
            thresholds: options.thresholds)
        if points.count > maxPoints + 1, let first = points.first, let last = points.last {
            bucket = Self.bucket(span: last.start.timeIntervalSince(first.start) + Double(bucket), maxPoints: maxPoints)
            points = try await self.store.shadowTimeline(
                route: options.route, from: options.from, to: options.to, bucketSeconds: bucket,
                thresholds: options.thresholds)
        }
        return (
            bucket,
            points.map {
                TimelinePoint(
                    start: $0.start,
                    compared: $0.compared,
                    differing: $0.differing,
                    differingAfterNoise: $0.differingAfterNoise ?? 0,
                    errors: $0.errors
                )
            }
        )
    }

    /// The smallest of the usual chart steps (1, 2, 5, 10, 15, 30 minutes, 1, 2, 3, 6, 12 hours, days) that cuts `span`
    /// into at most `maxPoints` buckets.
    ///
    /// Round steps read better on an axis than "63 minutes", and the store aligns buckets to multiples of the step.
    static func bucket(span: TimeInterval, maxPoints: Int) -> Int {
        let needed = span / Double(max(1, maxPoints))
        let steps = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1_440].map { $0 * 60 }
        if let step = steps.first(where: { Double($0) >= needed }) {
            return step
        }
        return Int((needed / 86_400).rounded(.up)) * 86_400
    }
}
