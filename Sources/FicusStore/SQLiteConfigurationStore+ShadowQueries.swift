import FicusDiff
import Foundation
import GRDB

extension SQLiteConfigurationStore {
    public func shadowEndpoints(route: String?, from: Date?, to: Date?) async throws -> [ShadowEndpointSummary] {
        let range = ShadowBucketRange(from: from, to: to)
        return try await self.perform {
            try await self.readTelemetry { db in
                try Self.fetchEndpointSummaries(db, route: route, range: range)
            }
        }
    }

    public func shadowTimeline(
        route: String?,
        from: Date?,
        to: Date?,
        bucketSeconds: Int,
        thresholds: NoiseThresholds?
    ) async throws -> [ShadowTimelinePoint] {
        let range = ShadowBucketRange(from: from, to: to)
        let size = Int64(max(1, (bucketSeconds + 59) / 60) * 60)
        return try await self.perform {
            try await self.readTelemetry { db in
                var points: [Int64: ShadowTimelinePoint] = [:]
                let rows = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT bucket, SUM(compared) AS compared, SUM(differing) AS differing, SUM(errors) AS errors
                        FROM shadow_minutes WHERE \(ShadowBucketRange.filter)
                        GROUP BY bucket
                        """,
                    arguments: range.arguments(route: route)
                )
                for row in rows {
                    let start = Self.floor(row["bucket"], size) * size
                    var point = points[start] ?? Self.emptyPoint(start, withNoise: thresholds != nil)
                    point.compared += row["compared"] as Int
                    point.differing += row["differing"] as Int
                    point.errors += row["errors"] as Int
                    points[start] = point
                }
                if let thresholds {
                    let summaries = try Self.fetchEndpointSummaries(db, route: route, range: range)
                    let flagged = Self.regressionFields(summaries, thresholds: thresholds)
                    try Self.forEachRegressingSignature(db, route: route, range: range, flagged: flagged) {
                        bucket, _, count in
                        let start = Self.floor(bucket, size) * size
                        points[start]?.differingAfterNoise? += count
                    }
                }
                return Self.timeline(points, range: range, size: size, withNoise: thresholds != nil)
            }
        }
    }

    public func shadowSamples(
        route: String,
        endpoint: String,
        path: String?,
        kind: DifferenceKind?,
        limit: Int
    ) async throws -> [ShadowRecord] {
        try await self.perform {
            try await self.readTelemetry { db in
                // Walks the endpoint's records newest first (index on route, endpoint, time) and stops at `limit`
                // matches; each match is one primary-key probe into the record's fields.
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT * FROM shadow_records AS r
                        WHERE r.route = :route AND r.endpoint = :endpoint
                            AND ((:path IS NULL AND :kind IS NULL) OR EXISTS (
                                SELECT 1 FROM shadow_record_fields AS f
                                WHERE f.record = r.id
                                    AND (:path IS NULL OR f.field_path = :path)
                                    AND (:kind IS NULL OR f.kind = :kind)
                            ))
                        ORDER BY r.time DESC, r.id DESC
                        LIMIT :limit
                        """,
                    arguments: [
                        "route": route, "endpoint": endpoint, "path": path, "kind": kind?.rawValue,
                        "limit": max(0, limit),
                    ]
                )
                .map(Self.shadowRecord)
            }
        }
    }

    public func shadowDiffRate(
        route: String?,
        from: Date?,
        to: Date?,
        thresholds: NoiseThresholds
    ) async throws -> ShadowDiffRate {
        let range = ShadowBucketRange(from: from, to: to)
        return try await self.perform {
            try await self.readTelemetry { db in
                let summaries = try Self.fetchEndpointSummaries(db, route: route, range: range)
                let flagged = Self.regressionFields(summaries, thresholds: thresholds)
                var afterNoise: [ShadowEndpointID: Int] = [:]
                try Self.forEachRegressingSignature(db, route: route, range: range, flagged: flagged) {
                    _, endpoint, count in
                    afterNoise[endpoint, default: 0] += count
                }
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
                return ShadowDiffRate(
                    compared: endpoints.reduce(0) { $0 + $1.compared },
                    differing: endpoints.reduce(0) { $0 + $1.differing },
                    differingAfterNoise: endpoints.reduce(0) { $0 + $1.differingAfterNoise },
                    endpoints: endpoints
                )
            }
        }
    }

    /// Every endpoint's summary over `range`, sorted by route and endpoint.
    ///
    /// Four grouped scans of the minute tables, keyed by minute first, so a short range reads few rows.
    static func fetchEndpointSummaries(
        _ db: Database,
        route: String?,
        range: ShadowBucketRange
    ) throws -> [ShadowEndpointSummary] {
        let arguments = range.arguments(route: route)
        let filter = ShadowBucketRange.filter
        var statuses: [ShadowEndpointID: [ShadowStatusCount]] = [:]
        let statusRows = try Row.fetchAll(
            db,
            sql: """
                SELECT route, endpoint, serving_status, shadow_status, SUM(count) AS count
                FROM shadow_status_minutes WHERE \(filter)
                GROUP BY route, endpoint, serving_status, shadow_status
                """,
            arguments: arguments
        )
        for row in statusRows {
            let shadow: Int = row["shadow_status"]
            let cell = ShadowStatusCount(
                serving: row["serving_status"],
                shadow: shadow == 0 ? nil : shadow,
                count: row["count"]
            )
            statuses[ShadowEndpointID(row), default: []].append(cell)
        }
        var histograms: [ShadowEndpointID: [String: LatencyHistogram]] = [:]
        let latencyRows = try Row.fetchAll(
            db,
            sql: """
                SELECT route, endpoint, side, le, SUM(count) AS count
                FROM shadow_latency_minutes WHERE \(filter)
                GROUP BY route, endpoint, side, le
                """,
            arguments: arguments
        )
        for row in latencyRows {
            let side: String = row["side"]
            histograms[ShadowEndpointID(row), default: [:]][
                side,
                default: LatencyHistogram(bounds: LatencyHistogram.shadowBounds)
            ].add(bound: row["le"], count: row["count"])
        }
        var fields: [ShadowEndpointID: [ShadowFieldSummary]] = [:]
        let fieldRows = try Row.fetchAll(
            db,
            sql: """
                SELECT route, endpoint, field_path, kind, SUM(raw) AS raw, SUM(noise) AS noise
                FROM shadow_field_minutes WHERE \(filter)
                GROUP BY route, endpoint, field_path, kind
                """,
            arguments: arguments
        )
        for row in fieldRows {
            // A kind written by a newer Ficus is skipped rather than failing the whole report.
            guard let kind = DifferenceKind(rawValue: row["kind"]) else {
                continue
            }
            fields[ShadowEndpointID(row), default: []].append(
                ShadowFieldSummary(path: row["field_path"], kind: kind, raw: row["raw"], noise: row["noise"])
            )
        }
        var dropped: [ShadowEndpointID: [ShadowDropSummary]] = [:]
        let dropRows = try Row.fetchAll(
            db,
            sql: """
                SELECT route, endpoint, reason, sent, SUM(count) AS count
                FROM shadow_drop_minutes WHERE \(filter)
                GROUP BY route, endpoint, reason, sent
                """,
            arguments: arguments
        )
        for row in dropRows {
            dropped[ShadowEndpointID(row), default: []].append(
                ShadowDropSummary(reason: row["reason"], sent: row["sent"], count: row["count"])
            )
        }
        var waits: [ShadowEndpointID: (histogram: LatencyHistogram, count: Int, sum: Int)] = [:]
        let waitRows = try Row.fetchAll(
            db,
            sql: """
                SELECT route, endpoint, le, SUM(count) AS count, SUM(sum) AS sum
                FROM shadow_wait_minutes WHERE \(filter)
                GROUP BY route, endpoint, le
                """,
            arguments: arguments
        )
        for row in waitRows {
            let id = ShadowEndpointID(row)
            var wait = waits[id] ?? (LatencyHistogram(bounds: LatencyHistogram.shadowBounds), 0, 0)
            wait.histogram.add(bound: row["le"], count: row["count"])
            wait.count += row["count"] as Int
            wait.sum += row["sum"] as Int
            waits[id] = wait
        }
        let totals = try Row.fetchAll(
            db,
            sql: """
                SELECT route, endpoint,
                    SUM(compared) AS compared, SUM(identical) AS identical, SUM(differing) AS differing,
                    SUM(errors) AS errors, SUM(noise_samples) AS noise_samples,
                    SUM(serving_latency_count) AS serving_count, SUM(serving_latency_sum) AS serving_sum,
                    MIN(serving_latency_min) AS serving_min, MAX(serving_latency_max) AS serving_max,
                    SUM(shadow_latency_count) AS shadow_count, SUM(shadow_latency_sum) AS shadow_sum,
                    MIN(shadow_latency_min) AS shadow_min, MAX(shadow_latency_max) AS shadow_max
                FROM shadow_minutes WHERE \(filter)
                GROUP BY route, endpoint
                ORDER BY route, endpoint
                """,
            arguments: arguments
        )
        var summaries = totals.map { row in
            let id = ShadowEndpointID(row)
            let shadowCount: Int = row["shadow_count"]
            return ShadowEndpointSummary(
                route: id.route,
                endpoint: id.endpoint,
                compared: row["compared"],
                identical: row["identical"],
                differing: row["differing"],
                errors: row["errors"],
                noiseSamples: row["noise_samples"],
                statuses: (statuses[id] ?? []).sorted {
                    ($1.count, $0.serving, $0.shadow ?? 0) < ($0.count, $1.serving, $1.shadow ?? 0)
                },
                servingLatency: Self.percentiles(
                    histograms[id]?["serving"],
                    count: row["serving_count"],
                    sum: row["serving_sum"],
                    minimum: row["serving_min"],
                    maximum: row["serving_max"]
                ),
                shadowLatency: shadowCount == 0
                    ? nil
                    : Self.percentiles(
                        histograms[id]?["shadow"],
                        count: shadowCount,
                        sum: row["shadow_sum"],
                        minimum: row["shadow_min"],
                        maximum: row["shadow_max"]
                    ),
                fields: (fields[id] ?? []).sorted {
                    ($1.raw, $1.noise, $0.path, $0.kind.rawValue) < ($0.raw, $0.noise, $1.path, $1.kind.rawValue)
                },
                dropped: Self.sorted(dropped[id]),
                shadowWait: waits[id].map(Self.waitPercentiles)
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
    private static func waitPercentiles(_ wait: (histogram: LatencyHistogram, count: Int, sum: Int)) -> LatencyPercentiles {
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

    /// The fields each endpoint reports as regressions.
    ///
    /// Decided once per query over the whole range, as a report would, and then applied to requests.
    static func regressionFields(
        _ summaries: [ShadowEndpointSummary],
        thresholds: NoiseThresholds
    ) -> [ShadowEndpointID: Set<ShadowField>] {
        var flagged: [ShadowEndpointID: Set<ShadowField>] = [:]
        for summary in summaries {
            let fields = summary.regressions(thresholds: thresholds).map { ShadowField(path: $0.path, kind: $0.kind) }
            if !fields.isEmpty {
                flagged[ShadowEndpointID(summary)] = Set(fields)
            }
        }
        return flagged
    }

    /// Calls `body` with the minute, endpoint and request count of every stored signature in `range` that contains
    /// a flagged field of its endpoint.
    ///
    /// Signatures are the sets of fields differing requests differ at, so a request counts once however many of its
    /// fields are regressions; counting from the aggregates rather than from the records keeps the rate exact
    /// however many records retention has dropped.
    static func forEachRegressingSignature(
        _ db: Database,
        route: String?,
        range: ShadowBucketRange,
        flagged: [ShadowEndpointID: Set<ShadowField>],
        _ body: (Int64, ShadowEndpointID, Int) -> Void
    ) throws {
        guard !flagged.isEmpty else {
            return
        }
        let rows = try Row.fetchCursor(
            db,
            sql: "SELECT bucket, route, endpoint, signature, count FROM shadow_signature_minutes WHERE "
                + ShadowBucketRange.filter,
            arguments: range.arguments(route: route)
        )
        while let row = try rows.next() {
            let endpoint = ShadowEndpointID(row)
            guard let fields = flagged[endpoint] else {
                continue
            }
            if ShadowField.fields(ofSignature: row["signature"]).contains(where: fields.contains) {
                body(row["bucket"], endpoint, row["count"])
            }
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

    /// The timeline's points from the range's start (or the first point) to its end (or the last point), with
    /// empty buckets filled in.
    ///
    /// At most `maxTimelinePoints`: leading empty buckets go first (a range from the distant past), then the oldest.
    static func timeline(
        _ points: [Int64: ShadowTimelinePoint],
        range: ShadowBucketRange,
        size: Int64,
        withNoise: Bool
    ) -> [ShadowTimelinePoint] {
        let starts = points.keys.sorted()
        guard let first = range.from.map({ Self.floor($0, size) * size }) ?? starts.first,
            let end = range.to ?? starts.last.map({ $0 + size })
        else {
            return []
        }
        let limit = Int64(Self.maxTimelinePoints)
        var start = first
        if (end - start + size - 1) / size > limit, let data = starts.first, data > start {
            start = data
        }
        if (end - start + size - 1) / size > limit {
            start = Self.floor(end - 1, size) * size - (limit - 1) * size
        }
        return stride(from: start, to: end, by: Int(size)).map { bucket in
            points[bucket] ?? Self.emptyPoint(bucket, withNoise: withNoise)
        }
    }

    /// The most points a timeline returns.
    ///
    /// A chart has no use for more, and an open range must not allocate millions of empty points.
    static let maxTimelinePoints = 10_000

    /// A `shadow_records` row as a `ShadowRecord`.
    ///
    /// The inverse of `insert(_:_:)`; a row that cannot be decoded is a damaged store and fails the query.
    static func shadowRecord(_ row: Row) throws -> ShadowRecord {
        let decoder = JSONDecoder()
        func decode<Value: Decodable>(_ type: Value.Type, _ column: String) throws -> Value {
            try decoder.decode(type, from: Data((row[column] as String).utf8))
        }
        let noise: String? = row["noise_differences"]
        return ShadowRecord(
            timestamp: row["time"],
            route: row["route"],
            endpoint: row["endpoint"],
            method: row["method"],
            target: row["target"],
            servingUpstream: row["serving_upstream"],
            shadowUpstream: row["shadow_upstream"],
            servingStatus: row["serving_status"],
            shadowStatus: row["shadow_status"],
            servingLatencyMicroseconds: row["serving_latency_us"],
            shadowLatencyMicroseconds: row["shadow_latency_us"],
            shadowError: row["shadow_error"],
            differences: try decode([Difference].self, "differences"),
            noiseDifferences: try noise.map { try decoder.decode([Difference].self, from: Data($0.utf8)) },
            requestHeaders: try decode([ShadowRecord.Field].self, "request_headers"),
            requestBody: Self.bytes(row["request_body"]),
            servingHeaders: try decode([ShadowRecord.Field].self, "serving_headers"),
            servingBody: Self.bytes(row["serving_body"]),
            servingTruncated: row["serving_truncated"],
            shadowHeaders: try decode([ShadowRecord.Field].self, "shadow_headers"),
            shadowBody: Self.bytes(row["shadow_body"]),
            shadowTruncated: row["shadow_truncated"],
            requestID: row["request_id"]
        )
    }

    /// A BLOB column as bytes; an empty blob may come back as NULL.
    ///
    /// SQLite hands out no pointer for a zero-length blob.
    static func bytes(_ data: Data?) -> [UInt8] {
        data.map { [UInt8]($0) } ?? []
    }
}

/// An endpoint's identity in the aggregates: route and endpoint.
///
/// Two routes may share an endpoint name ("GET /health"), so the route is part of the key.
struct ShadowEndpointID: Sendable, Hashable {
    var route: String
    var endpoint: String

    init(_ row: Row) {
        self.route = row["route"]
        self.endpoint = row["endpoint"]
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
        self.from = from.map { SQLiteConfigurationStore.floor(SQLiteConfigurationStore.seconds($0), 60) * 60 }
        self.to = to.map { Int64($0.timeIntervalSince1970.rounded(.up)) }
    }

    /// The WHERE clause of a range query on a minute table, with `:lower`, `:upper` and `:route`.
    ///
    /// One text for every table, so every query filters the same way.
    static let filter = "bucket >= :lower AND bucket < :upper AND (:route IS NULL OR route = :route)"

    /// The arguments of `filter`.
    ///
    /// Open bounds become the extreme integers, which keeps one statement text per query (cached by SQLite).
    func arguments(route: String?) -> StatementArguments {
        ["lower": self.from ?? Int64.min, "upper": self.to ?? Int64.max, "route": route]
    }
}
