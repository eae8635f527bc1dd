import FicusDiff
import Foundation

/// An endpoint's identity in the aggregates: route and endpoint.
///
/// Two routes may share an endpoint name ("GET /health"), so the route is part of the key.
struct ShadowEndpointID: Sendable, Hashable {
    var route: String
    var endpoint: String

    init(route: String, endpoint: String) {
        self.route = route
        self.endpoint = endpoint
    }

    init(_ summary: ShadowEndpointSummary) {
        self.route = summary.route
        self.endpoint = summary.endpoint
    }
}

/// The minutes a query covers: buckets whose start is in [`from` rounded down to its minute, `to`).
///
/// A minute that overlaps the range counts whole, since the aggregates cannot be split; a canary gate over the last
/// two minutes therefore reads up to three minutes of traffic.
struct ShadowBucketRange: Sendable {
    /// The first minute, in seconds since 1970; nil for no lower bound.
    var from: Int64?
    /// The exclusive upper bound, in seconds since 1970; nil for none.
    var to: Int64?

    init(from: Date?, to: Date?) {
        self.from = from.map { Telemetry.floor(Telemetry.seconds($0), 60) * 60 }
        self.to = to.map { Int64($0.timeIntervalSince1970.rounded(.up)) }
    }

    /// The lower bound of a query; no bound is the smallest integer.
    ///
    /// Open bounds as extreme integers keep one statement text per query on every backend.
    var lower: Int64 { self.from ?? Int64.min }

    /// The exclusive upper bound of a query; no bound is the largest integer.
    var upper: Int64 { self.to ?? Int64.max }
}

/// The minute tables' rows over a range, grouped by endpoint as every backend reads them, and the endpoint summaries
/// they make.
///
/// The backends differ in how they fetch rows, not in what a summary is: sorting, percentiles and endpoints that only
/// have drops are decided here once.
struct ShadowSummaryRows: Sendable {
    /// `shadow_status_minutes` summed per endpoint and status pair; `shadow` 0 when the shadow did not answer.
    struct Status: Sendable {
        var id: ShadowEndpointID
        var serving: Int
        var shadow: Int
        var count: Int
    }

    /// `shadow_latency_minutes` summed per endpoint, side and bound.
    struct Latency: Sendable {
        var id: ShadowEndpointID
        var side: String
        var bound: Int
        var count: Int
    }

    /// `shadow_field_minutes` summed per endpoint and field; `kind` as stored (a newer Ficus may know more kinds).
    struct Field: Sendable {
        var id: ShadowEndpointID
        var path: String
        var kind: String
        var raw: Int
        var noise: Int
    }

    /// `shadow_drop_minutes` summed per endpoint, reason and whether the copies were sent.
    struct Drop: Sendable {
        var id: ShadowEndpointID
        var reason: String
        var sent: Bool
        var count: Int
    }

    /// `shadow_wait_minutes` summed per endpoint and bound.
    struct Wait: Sendable {
        var id: ShadowEndpointID
        var bound: Int
        var count: Int
        var sum: Int
    }

    /// `shadow_minutes` summed per endpoint (minimums and maximums as such).
    struct Total: Sendable {
        var id: ShadowEndpointID
        var compared: Int
        var identical: Int
        var differing: Int
        var errors: Int
        var noiseSamples: Int
        var servingCount: Int
        var servingSum: Int
        var servingMin: Int?
        var servingMax: Int?
        var shadowCount: Int
        var shadowSum: Int
        var shadowMin: Int?
        var shadowMax: Int?
    }

    var statuses: [Status] = []
    var latencies: [Latency] = []
    var fields: [Field] = []
    var drops: [Drop] = []
    var waits: [Wait] = []
    var totals: [Total] = []

    /// Every endpoint's summary, sorted by route and endpoint; endpoints whose every copy was dropped included.
    func summaries() -> [ShadowEndpointSummary] {
        var statuses: [ShadowEndpointID: [ShadowStatusCount]] = [:]
        for row in self.statuses {
            let cell = ShadowStatusCount(
                serving: row.serving, shadow: row.shadow == 0 ? nil : row.shadow, count: row.count)
            statuses[row.id, default: []].append(cell)
        }
        var histograms: [ShadowEndpointID: [String: LatencyHistogram]] = [:]
        for row in self.latencies {
            histograms[row.id, default: [:]][
                row.side,
                default: LatencyHistogram(bounds: LatencyHistogram.shadowBounds)
            ].add(bound: row.bound, count: row.count)
        }
        var fields: [ShadowEndpointID: [ShadowFieldSummary]] = [:]
        for row in self.fields {
            // A kind written by a newer Ficus is skipped rather than failing the whole report.
            guard let kind = DifferenceKind(rawValue: row.kind) else {
                continue
            }
            fields[row.id, default: []].append(
                ShadowFieldSummary(path: row.path, kind: kind, raw: row.raw, noise: row.noise)
            )
        }
        var dropped: [ShadowEndpointID: [ShadowDropSummary]] = [:]
        for row in self.drops {
            dropped[row.id, default: []].append(ShadowDropSummary(reason: row.reason, sent: row.sent, count: row.count))
        }
        var waits: [ShadowEndpointID: (histogram: LatencyHistogram, count: Int, sum: Int)] = [:]
        for row in self.waits {
            var wait = waits[row.id] ?? (LatencyHistogram(bounds: LatencyHistogram.shadowBounds), 0, 0)
            wait.histogram.add(bound: row.bound, count: row.count)
            wait.count += row.count
            wait.sum += row.sum
            waits[row.id] = wait
        }
        var summaries = self.totals.map { row in
            ShadowEndpointSummary(
                route: row.id.route,
                endpoint: row.id.endpoint,
                compared: row.compared,
                identical: row.identical,
                differing: row.differing,
                errors: row.errors,
                noiseSamples: row.noiseSamples,
                statuses: (statuses[row.id] ?? []).sorted {
                    ($1.count, $0.serving, $0.shadow ?? 0) < ($0.count, $1.serving, $1.shadow ?? 0)
                },
                servingLatency: Self.percentiles(
                    histograms[row.id]?["serving"],
                    count: row.servingCount,
                    sum: row.servingSum,
                    minimum: row.servingMin,
                    maximum: row.servingMax
                ),
                shadowLatency: row.shadowCount == 0
                    ? nil
                    : Self.percentiles(
                        histograms[row.id]?["shadow"],
                        count: row.shadowCount,
                        sum: row.shadowSum,
                        minimum: row.shadowMin,
                        maximum: row.shadowMax
                    ),
                fields: (fields[row.id] ?? []).sorted {
                    ($1.raw, $1.noise, $0.path, $0.kind.rawValue) < ($0.raw, $0.noise, $1.path, $1.kind.rawValue)
                },
                dropped: Self.sorted(dropped[row.id]),
                shadowWait: waits[row.id].map(Self.waitPercentiles)
            )
        }
        // An endpoint whose every copy was dropped has no comparison minute, and is exactly what coverage must show.
        let compared = Set(summaries.map(ShadowEndpointID.init))
        for (id, drops) in dropped where !compared.contains(id) {
            summaries.append(
                ShadowEndpointSummary(
                    route: id.route,
                    endpoint: id.endpoint,
                    compared: 0,
                    identical: 0,
                    differing: 0,
                    errors: 0,
                    noiseSamples: 0,
                    statuses: [],
                    servingLatency: Self.percentiles(nil, count: 0, sum: 0, minimum: nil, maximum: nil),
                    shadowLatency: nil,
                    fields: [],
                    dropped: Self.sorted(drops),
                    shadowWait: waits[id].map(Self.waitPercentiles)
                )
            )
        }
        return summaries.sorted { ($0.route, $0.endpoint) < ($1.route, $1.endpoint) }
    }

    /// Drops most first, then by reason.
    private static func sorted(_ drops: [ShadowDropSummary]?) -> [ShadowDropSummary] {
        (drops ?? []).sorted { ($1.count, $0.reason, $0.sent ? 1 : 0) < ($0.count, $1.reason, $1.sent ? 1 : 0) }
    }

    /// Mean and percentiles of the copies' wait inside Ficus, from its histogram rows.
    private static func waitPercentiles(_ wait: (histogram: LatencyHistogram, count: Int, sum: Int))
        -> LatencyPercentiles
    {
        Self.percentiles(wait.histogram, count: wait.count, sum: wait.sum, minimum: nil, maximum: nil)
    }

    /// Mean and percentiles of one side.
    ///
    /// The count and sum come from `shadow_minutes` (exact), the percentiles from the histogram rows.
    static func percentiles(
        _ histogram: LatencyHistogram?,
        count: Int,
        sum: Int,
        minimum: Int?,
        maximum: Int?
    ) -> LatencyPercentiles {
        var histogram = histogram ?? LatencyHistogram(bounds: LatencyHistogram.shadowBounds)
        histogram.observe(minimum: minimum, maximum: maximum)
        return LatencyPercentiles(
            count: count,
            meanMicroseconds: count == 0 ? 0 : Int((Double(sum) / Double(count)).rounded()),
            p50Microseconds: histogram.percentile(0.50),
            p95Microseconds: histogram.percentile(0.95),
            p99Microseconds: histogram.percentile(0.99)
        )
    }
}

/// The fields each endpoint reports as regressions over a query's range, and which stored signatures hold one.
///
/// Decided once per query over the whole range, as a report would, and then applied to requests: signatures are the
/// sets of fields differing requests differ at, so a request counts once however many of its fields are
/// regressions, and counting from the aggregates rather than from the records keeps the rate exact however many
/// records retention has dropped.
struct ShadowRegressions: Sendable {
    private var flagged: [ShadowEndpointID: Set<ShadowField>] = [:]

    init(_ summaries: [ShadowEndpointSummary], thresholds: NoiseThresholds) {
        for summary in summaries {
            let fields = summary.regressions(thresholds: thresholds).map { ShadowField(path: $0.path, kind: $0.kind) }
            if !fields.isEmpty {
                self.flagged[ShadowEndpointID(summary)] = Set(fields)
            }
        }
    }

    /// Whether no endpoint has a regression field (no signature needs to be read).
    var isEmpty: Bool { self.flagged.isEmpty }

    /// Whether `signature` (a row of `shadow_signature_minutes`) of `endpoint` contains one of its regression fields.
    func regresses(_ signature: String, of endpoint: ShadowEndpointID) -> Bool {
        guard let fields = self.flagged[endpoint] else {
            return false
        }
        return ShadowField.fields(ofSignature: signature).contains(where: fields.contains)
    }
}

/// A timeline being built from minute rows: minutes added into buckets of whole minutes, then filled with empty
/// buckets over the range.
///
/// The bucketing and filling every backend's `shadowTimeline` shares.
struct ShadowTimelineBuilder: Sendable {
    /// The most points a timeline returns.
    ///
    /// A chart has no use for more, and an open range must not allocate millions of empty points.
    static let maxPoints = 10_000

    let range: ShadowBucketRange
    /// The bucket size in seconds: `bucketSeconds` rounded up to whole minutes, at least one.
    let size: Int64
    let withNoise: Bool
    private var points: [Int64: ShadowTimelinePoint] = [:]

    init(range: ShadowBucketRange, bucketSeconds: Int, withNoise: Bool) {
        self.range = range
        self.size = Int64(max(1, (bucketSeconds + 59) / 60) * 60)
        self.withNoise = withNoise
    }

    /// Adds one minute's totals (a `shadow_minutes` bucket summed over endpoints).
    mutating func add(minute: Int64, compared: Int, differing: Int, errors: Int) {
        let start = self.start(of: minute)
        var point = self.points[start] ?? Self.emptyPoint(start, withNoise: self.withNoise)
        point.compared += compared
        point.differing += differing
        point.errors += errors
        self.points[start] = point
    }

    /// Adds requests that still differ after noise to the bucket of `minute`, if it has traffic.
    mutating func addAfterNoise(minute: Int64, count: Int) {
        self.points[self.start(of: minute)]?.differingAfterNoise? += count
    }

    /// The start of the bucket holding `minute`.
    private func start(of minute: Int64) -> Int64 {
        Telemetry.floor(minute, self.size) * self.size
    }

    /// The points from the range's start (or the first point) to its end (or the last point), with empty buckets
    /// filled in.
    ///
    /// At most `maxPoints`: leading empty buckets go first (a range from the distant past), then the oldest.
    func timeline() -> [ShadowTimelinePoint] {
        let size = self.size
        let starts = self.points.keys.sorted()
        guard let first = self.range.from.map({ Telemetry.floor($0, size) * size }) ?? starts.first,
            let end = self.range.to ?? starts.last.map({ $0 + size })
        else {
            return []
        }
        let limit = Int64(Self.maxPoints)
        var start = first
        if (end - start + size - 1) / size > limit, let data = starts.first, data > start {
            start = data
        }
        if (end - start + size - 1) / size > limit {
            start = Telemetry.floor(end - 1, size) * size - (limit - 1) * size
        }
        return stride(from: start, to: end, by: Int(size)).map { bucket in
            self.points[bucket] ?? Self.emptyPoint(bucket, withNoise: self.withNoise)
        }
    }

    /// An empty timeline point.
    ///
    /// `differingAfterNoise` is 0 rather than nil when thresholds were given, so that adding to it works.
    static func emptyPoint(_ start: Int64, withNoise: Bool) -> ShadowTimelinePoint {
        ShadowTimelinePoint(
            start: Date(timeIntervalSince1970: TimeInterval(start)),
            compared: 0,
            differing: 0,
            differingAfterNoise: withNoise ? 0 : nil,
            errors: 0
        )
    }
}

extension ShadowDiffRate {
    /// The diff rate of `summaries`, with the requests per endpoint that differ at a regression field.
    ///
    /// The totals are sums over the endpoints, so that a gate and a report read the same numbers.
    init(
        summaries: [ShadowEndpointSummary],
        afterNoise: [ShadowEndpointID: Int],
        thresholds: NoiseThresholds
    ) {
        let endpoints = summaries.map { summary in
            ShadowEndpointDiffRate(
                route: summary.route,
                endpoint: summary.endpoint,
                compared: summary.compared,
                differing: summary.differing,
                differingAfterNoise: afterNoise[ShadowEndpointID(summary), default: 0],
                regressions: summary.regressions(thresholds: thresholds)
            )
        }
        self.init(
            compared: endpoints.reduce(0) { $0 + $1.compared },
            differing: endpoints.reduce(0) { $0 + $1.differing },
            differingAfterNoise: endpoints.reduce(0) { $0 + $1.differingAfterNoise },
            endpoints: endpoints
        )
    }
}

extension ShadowStore {
    /// Sums `metricWindows` per upstream, whatever the backend: every proxy's windows, so that a canary on a fleet
    /// judges the whole fleet's traffic.
    public func trafficSummary(route: String, from: Date?, to: Date?) async throws -> [UpstreamTraffic] {
        let windows = try await self.metricWindows(route: route, from: from, to: to)
        var totals: [String: (requests: Int, serverErrors: Int, latency: LatencyHistogram)] = [:]
        for window in windows {
            var total = totals[window.upstream] ?? (0, 0, LatencyHistogram())
            total.requests += window.requests
            total.serverErrors += window.serverErrors
            LatencyHistogram.add(window, to: &total.latency)
            totals[window.upstream] = total
        }
        return totals.sorted { $0.key < $1.key }.map { upstream, total in
            UpstreamTraffic(
                upstream: upstream,
                requests: total.requests,
                serverErrors: total.serverErrors,
                p99Microseconds: total.latency.percentile(0.99)
            )
        }
    }

    /// The union of the identity hashes of `metricWindows`, whatever the backend: every proxy's windows.
    public func distinctIdentities(route: String, from: Date?, to: Date?) async throws -> Int? {
        let windows = try await self.metricWindows(route: route, from: from, to: to)
        var seen = Set<UInt32>()
        var counted = false
        for window in windows {
            guard let hashes = window.identityHashes else { continue }
            counted = true
            seen.formUnion(hashes)
        }
        return counted ? seen.count : nil
    }
}

extension LatencyHistogram {
    /// Adds a window's latency buckets to `histogram`.
    ///
    /// `MetricWindow` says the last bucket is +inf: with one count more than bounds the extra count is that bucket,
    /// with as many counts as bounds the last bound stands for +inf whatever its value. Windows with other bounds
    /// merge into the union of the bounds.
    static func add(_ window: MetricWindow, to histogram: inout LatencyHistogram) {
        let counts = window.latencyBucketCounts
        let finite =
            counts.count > window.latencyBucketBounds.count
            ? window.latencyBucketBounds
            : Array(window.latencyBucketBounds.dropLast())
        for (index, count) in counts.enumerated() {
            histogram.add(bound: index < finite.count ? finite[index] : LatencyHistogram.infinity, count: count)
        }
    }
}
