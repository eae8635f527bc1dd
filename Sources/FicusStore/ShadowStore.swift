import FicusDiff
import Foundation

/// Where compared shadow requests and proxies' metric windows live, with the aggregates reports and gates read.
///
/// SQLite (a telemetry file beside the store) and PostgreSQL (tables shared by a fleet of proxies) implement it, so
/// nothing here may assume one process or one machine: every count is kept as a sum that another writer can add to.
public protocol ShadowStore: Sendable {
    /// Stores `records` and adds them to the per-minute aggregates in one transaction, then applies `retention`.
    ///
    /// Batches keep the write lock short and rare; a batch is all or nothing, so aggregates never disagree with a
    /// half-written batch. Aggregates count every record, also those the record retention drops at once. A backend
    /// that keeps a batch it could not write for a later retry (PostgreSQL) returns: the records are not lost yet.
    func appendShadowRecords(_ records: [ShadowRecord], retention: ShadowRetention) async throws

    /// Per-endpoint totals, status matrix, latency percentiles and field counts over minutes that overlap
    /// [`from`, `to`), sorted by route and endpoint.
    ///
    /// Aggregates are kept per minute, so `from` is rounded down to its minute; nil bounds are open.
    func shadowEndpoints(route: String?, from: Date?, to: Date?) async throws -> [ShadowEndpointSummary]

    /// Compared and differing requests per `bucketSeconds` (rounded up to whole minutes), oldest first; with
    /// `thresholds`, also the requests that still differ after noise (see `shadowDiffRate`).
    ///
    /// Buckets without traffic are included as zeros between `from` (or the first minute with traffic) and `to` (or
    /// the last), so a chart has one point per bucket; at most 10,000 points, dropping leading empty ones first.
    func shadowTimeline(
        route: String?,
        from: Date?,
        to: Date?,
        bucketSeconds: Int,
        thresholds: NoiseThresholds?
    ) async throws -> [ShadowTimelinePoint]

    /// Stored records of one endpoint, newest first, that have a difference at `path` (a field path, `[*]` for
    /// indices) of `kind`; nil matches any path or kind, and both nil match every record of the endpoint.
    ///
    /// The drill-down of a report: a few real requests behind a differing field.
    func shadowSamples(
        route: String,
        endpoint: String,
        path: String?,
        kind: DifferenceKind?,
        limit: Int
    ) async throws -> [ShadowRecord]

    /// The noise-filtered diff rate over minutes that overlap [`from`, `to`): compared requests, and those with at
    /// least one difference at a field that `NoiseFilter.isRegression` flags for their endpoint.
    ///
    /// What the canary gate reads. Noise counts are measured on noise samples only, so they are scaled to the
    /// endpoint's compared total before the test (`ShadowEndpointSummary.counts(for:)`).
    func shadowDiffRate(
        route: String?,
        from: Date?,
        to: Date?,
        thresholds: NoiseThresholds
    ) async throws -> ShadowDiffRate

    /// Adds proxies' counts of shadow copies dropped per endpoint and minute, and applies the aggregate retention.
    ///
    /// Counts add up (a minute sent twice counts twice): a proxy sends each count once, after taking it.
    func appendShadowDrops(_ drops: [ShadowDropCount], retention: ShadowRetention) async throws

    /// Distinct sticky values (`MetricWindow.identityHashes`) of `route`'s requests in the windows that start in
    /// [`from`, `to`), over every proxy: exact up to `MetricWindow.identitySampleLimit`, and at least that beyond;
    /// nil when no window there counted them.
    ///
    /// A canary whose split rests on fewer than 20 distinct users judges nothing (`GateInputs.distinctIdentities`).
    func distinctIdentities(route: String, from: Date?, to: Date?) async throws -> Int?

    /// Stores proxies' metric windows and applies `retention`; a window sent again (same start, proxy, route and
    /// upstream) replaces the first copy.
    ///
    /// A proxy that retries a batch after a busy store must not count its traffic twice. A backend that keeps a batch
    /// it could not write for a later retry (PostgreSQL) throws all the same: the windows are late.
    func appendMetricWindows(_ windows: [MetricWindow], retention: ShadowRetention) async throws

    /// The stored windows that start in [`from`, `to`), oldest first, one per proxy.
    ///
    /// For callers that want per-proxy detail; `trafficSummary` adds them up.
    func metricWindows(route: String?, from: Date?, to: Date?) async throws -> [MetricWindow]

    /// Requests, 5xx answers and p99 latency per upstream of `route`, summed over every proxy's windows that start in
    /// [`from`, `to`), sorted by upstream.
    ///
    /// Observed traffic shares for reports and the error and latency gates of a canary.
    func trafficSummary(route: String, from: Date?, to: Date?) async throws -> [UpstreamTraffic]

    /// The telemetry this instance could not store and dropped since it was opened.
    ///
    /// Telemetry is dropped rather than waited for; a proxy exports these counts so that the loss is seen.
    var telemetryDrops: TelemetryDrops { get }
}

extension ShadowStore {
    /// Stores `records` with the default retention.
    ///
    /// What the proxy's sink calls; the retention argument exists for tests and operators with other bounds.
    public func appendShadowRecords(_ records: [ShadowRecord]) async throws {
        try await self.appendShadowRecords(records, retention: ShadowRetention())
    }

    /// Stores `windows` with the default retention.
    ///
    /// See `appendShadowRecords(_:)`.
    public func appendMetricWindows(_ windows: [MetricWindow]) async throws {
        try await self.appendMetricWindows(windows, retention: ShadowRetention())
    }

    /// Stores drop counts with the default retention.
    ///
    /// See `appendShadowRecords(_:)`.
    public func appendShadowDrops(_ drops: [ShadowDropCount]) async throws {
        try await self.appendShadowDrops(drops, retention: ShadowRetention())
    }

    /// Up to five samples, newest first.
    ///
    /// Protocol requirements cannot have default arguments; the report's drill-down shows five.
    public func shadowSamples(
        route: String,
        endpoint: String,
        path: String?,
        kind: DifferenceKind?
    ) async throws -> [ShadowRecord] {
        try await self.shadowSamples(route: route, endpoint: endpoint, path: path, kind: kind, limit: 5)
    }

    /// The timeline without the after-noise counts.
    ///
    /// Charts of the raw diff rate need no thresholds.
    public func shadowTimeline(
        route: String?,
        from: Date?,
        to: Date?,
        bucketSeconds: Int
    ) async throws -> [ShadowTimelinePoint] {
        try await self.shadowTimeline(route: route, from: from, to: to, bucketSeconds: bucketSeconds, thresholds: nil)
    }
}
