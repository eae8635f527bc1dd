import FicusDiff
import Foundation
import NIOCore
import PostgresNIO

/// The telemetry reads of the PostgreSQL store: the SQLite store's queries on the same tables, assembled by the same
/// backend-neutral code (`ShadowSummaryRows`, `ShadowRegressions`, `ShadowTimelineBuilder`), so that the same stored
/// traffic gives the same reports and gate inputs on both.
///
/// Sums are cast back to `bigint`: PostgreSQL sums `bigint` columns as `numeric`.
extension PostgresConfigurationStore {
    public func shadowEndpoints(route: String?, from: Date?, to: Date?) async throws -> [ShadowEndpointSummary] {
        let range = ShadowBucketRange(from: from, to: to)
        return try await self.perform { session in
            try await Self.fetchEndpointSummaries(session, route: route, range: range)
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
        return try await self.perform { session in
            var timeline = ShadowTimelineBuilder(
                range: range, bucketSeconds: bucketSeconds, withNoise: thresholds != nil)
            let rows = try await session.rows(
                """
                SELECT bucket, SUM(compared)::bigint AS compared, SUM(differing)::bigint AS differing,
                    SUM(errors)::bigint AS errors
                FROM shadow_minutes
                WHERE bucket >= \(range.lower) AND bucket < \(range.upper)
                    AND (\(route)::text IS NULL OR route = \(route))
                GROUP BY bucket
                """
            )
            for row in rows {
                timeline.add(
                    minute: try row["bucket"].decode(Int64.self),
                    compared: try row["compared"].decode(Int.self),
                    differing: try row["differing"].decode(Int.self),
                    errors: try row["errors"].decode(Int.self)
                )
            }
            if let thresholds {
                let summaries = try await Self.fetchEndpointSummaries(session, route: route, range: range)
                let regressions = ShadowRegressions(summaries, thresholds: thresholds)
                for (minute, _, count) in try await Self.regressingSignatures(session, route, range, regressions) {
                    timeline.addAfterNoise(minute: minute, count: count)
                }
            }
            return timeline.timeline()
        }
    }

    public func shadowDiffRate(
        route: String?,
        from: Date?,
        to: Date?,
        thresholds: NoiseThresholds
    ) async throws -> ShadowDiffRate {
        let range = ShadowBucketRange(from: from, to: to)
        return try await self.perform { session in
            let summaries = try await Self.fetchEndpointSummaries(session, route: route, range: range)
            let regressions = ShadowRegressions(summaries, thresholds: thresholds)
            var afterNoise: [ShadowEndpointID: Int] = [:]
            for (_, endpoint, count) in try await Self.regressingSignatures(session, route, range, regressions) {
                afterNoise[endpoint, default: 0] += count
            }
            return ShadowDiffRate(summaries: summaries, afterNoise: afterNoise, thresholds: thresholds)
        }
    }

    public func shadowSamples(
        route: String,
        endpoint: String,
        path: String?,
        kind: DifferenceKind?,
        limit: Int
    ) async throws -> [ShadowRecord] {
        try await self.perform { session in
            // Walks the endpoint's records newest first (index on route, endpoint, time) and stops at `limit`
            // matches; each match is one primary-key probe into the record's fields.
            try await session.rows(
                """
                SELECT * FROM shadow_records AS r
                WHERE r.route = \(route) AND r.endpoint = \(endpoint)
                    AND ((\(path)::text IS NULL AND \(kind?.rawValue)::text IS NULL) OR EXISTS (
                        SELECT 1 FROM shadow_record_fields AS f
                        WHERE f.record = r.id
                            AND (\(path)::text IS NULL OR f.field_path = \(path))
                            AND (\(kind?.rawValue)::text IS NULL OR f.kind = \(kind?.rawValue))
                    ))
                ORDER BY r.time DESC, r.id DESC
                LIMIT \(max(0, limit))
                """
            )
            .map(Self.shadowRecord)
        }
    }

    public func metricWindows(route: String?, from: Date?, to: Date?) async throws -> [MetricWindow] {
        let lower = from.map(Telemetry.microseconds) ?? Int64.min
        let upper = to.map(Telemetry.microseconds) ?? Int64.max
        return try await self.perform { session in
            try await session.rows(
                """
                SELECT * FROM metric_windows
                WHERE start >= \(lower) AND start < \(upper) AND (\(route)::text IS NULL OR route = \(route))
                ORDER BY start, route, upstream, proxy
                """
            )
            .map(Self.metricWindow)
        }
    }

    // MARK: - Helpers

    /// Every endpoint's summary over `range`, sorted by route and endpoint: six grouped scans of the minute tables,
    /// keyed by minute first, assembled by `ShadowSummaryRows`.
    static func fetchEndpointSummaries(
        _ session: PostgresSession,
        route: String?,
        range: ShadowBucketRange
    ) async throws -> [ShadowEndpointSummary] {
        /// The rows of `table` in the range, grouped by route, endpoint and `columns`, with `sums` summed.
        func grouped(_ table: String, _ columns: [String], _ sums: [String]) async throws -> [PostgresRandomAccessRow] {
            let keys = (["route", "endpoint"] + columns).joined(separator: ", ")
            let totals = sums.map { "SUM(\($0))::bigint AS \($0)" }.joined(separator: ", ")
            return try await session.rows(
                """
                SELECT \(unescaped: keys), \(unescaped: totals) FROM \(unescaped: table)
                WHERE bucket >= \(range.lower) AND bucket < \(range.upper)
                    AND (\(route)::text IS NULL OR route = \(route))
                GROUP BY \(unescaped: keys)
                """
            )
        }
        func id(_ row: PostgresRandomAccessRow) throws -> ShadowEndpointID {
            ShadowEndpointID(
                route: try row["route"].decode(String.self), endpoint: try row["endpoint"].decode(String.self))
        }
        var rows = ShadowSummaryRows()
        rows.statuses = try await grouped("shadow_status_minutes", ["serving_status", "shadow_status"], ["count"]).map {
            row in
            .init(
                id: try id(row),
                serving: try row["serving_status"].decode(Int.self),
                shadow: try row["shadow_status"].decode(Int.self),
                count: try row["count"].decode(Int.self)
            )
        }
        rows.latencies = try await grouped("shadow_latency_minutes", ["side", "le"], ["count"]).map { row in
            .init(
                id: try id(row),
                side: try row["side"].decode(String.self),
                bound: try row["le"].decode(Int.self),
                count: try row["count"].decode(Int.self)
            )
        }
        rows.fields = try await grouped("shadow_field_minutes", ["field_path", "kind"], ["raw", "noise"]).map { row in
            .init(
                id: try id(row),
                path: try row["field_path"].decode(String.self),
                kind: try row["kind"].decode(String.self),
                raw: try row["raw"].decode(Int.self),
                noise: try row["noise"].decode(Int.self)
            )
        }
        rows.drops = try await grouped("shadow_drop_minutes", ["reason", "sent"], ["count"]).map { row in
            .init(
                id: try id(row),
                reason: try row["reason"].decode(String.self),
                sent: try row["sent"].decode(Bool.self),
                count: try row["count"].decode(Int.self)
            )
        }
        rows.waits = try await grouped("shadow_wait_minutes", ["le"], ["count", "sum"]).map { row in
            .init(
                id: try id(row),
                bound: try row["le"].decode(Int.self),
                count: try row["count"].decode(Int.self),
                sum: try row["sum"].decode(Int.self)
            )
        }
        rows.totals = try await session.rows(
            """
            SELECT route, endpoint,
                SUM(compared)::bigint AS compared, SUM(identical)::bigint AS identical,
                SUM(differing)::bigint AS differing, SUM(errors)::bigint AS errors,
                SUM(noise_samples)::bigint AS noise_samples,
                SUM(serving_latency_count)::bigint AS serving_count, SUM(serving_latency_sum)::bigint AS serving_sum,
                MIN(serving_latency_min) AS serving_min, MAX(serving_latency_max) AS serving_max,
                SUM(shadow_latency_count)::bigint AS shadow_count, SUM(shadow_latency_sum)::bigint AS shadow_sum,
                MIN(shadow_latency_min) AS shadow_min, MAX(shadow_latency_max) AS shadow_max
            FROM shadow_minutes
            WHERE bucket >= \(range.lower) AND bucket < \(range.upper) AND (\(route)::text IS NULL OR route = \(route))
            GROUP BY route, endpoint
            """
        ).map { row in
            .init(
                id: try id(row),
                compared: try row["compared"].decode(Int.self),
                identical: try row["identical"].decode(Int.self),
                differing: try row["differing"].decode(Int.self),
                errors: try row["errors"].decode(Int.self),
                noiseSamples: try row["noise_samples"].decode(Int.self),
                servingCount: try row["serving_count"].decode(Int.self),
                servingSum: try row["serving_sum"].decode(Int.self),
                servingMin: try row["serving_min"].decode(Int?.self),
                servingMax: try row["serving_max"].decode(Int?.self),
                shadowCount: try row["shadow_count"].decode(Int.self),
                shadowSum: try row["shadow_sum"].decode(Int.self),
                shadowMin: try row["shadow_min"].decode(Int?.self),
                shadowMax: try row["shadow_max"].decode(Int?.self)
            )
        }
        return rows.summaries()
    }

    /// The minute, endpoint and request count of every stored signature in `range` that contains a regression field
    /// of its endpoint (see `ShadowRegressions`); nothing is read when no endpoint has one.
    static func regressingSignatures(
        _ session: PostgresSession,
        _ route: String?,
        _ range: ShadowBucketRange,
        _ regressions: ShadowRegressions
    ) async throws -> [(Int64, ShadowEndpointID, Int)] {
        guard !regressions.isEmpty else {
            return []
        }
        let rows = try await session.connection.query(
            """
            SELECT bucket, route, endpoint, signature, count FROM shadow_signature_minutes
            WHERE bucket >= \(range.lower) AND bucket < \(range.upper) AND (\(route)::text IS NULL OR route = \(route))
            """,
            logger: session.logger
        )
        var found: [(Int64, ShadowEndpointID, Int)] = []
        // Streamed, so that a long range never holds every signature row in memory at once.
        for try await row in rows {
            let (bucket, route, endpoint, signature, count) = try row.decode((Int64, String, String, String, Int).self)
            let id = ShadowEndpointID(route: route, endpoint: endpoint)
            if regressions.regresses(signature, of: id) {
                found.append((bucket, id, count))
            }
        }
        return found
    }

    /// A `shadow_records` row as a `ShadowRecord`.
    ///
    /// The inverse of `insert(_:ids:_:)`; a row that cannot be decoded is a damaged store and fails the query.
    static func shadowRecord(_ row: PostgresRandomAccessRow) throws -> ShadowRecord {
        func bytes(_ column: String) throws -> [UInt8] {
            Array(try row[column].decode(ByteBuffer.self).readableBytesView)
        }
        let plain = ShadowRecord(
            timestamp: try row["time"].decode(Int64.self),
            route: try row["route"].decode(String.self),
            endpoint: try row["endpoint"].decode(String.self),
            method: try row["method"].decode(String.self),
            target: try row["target"].decode(String.self),
            servingUpstream: try row["serving_upstream"].decode(String.self),
            shadowUpstream: try row["shadow_upstream"].decode(String.self),
            servingStatus: try row["serving_status"].decode(Int.self),
            shadowStatus: try row["shadow_status"].decode(Int?.self),
            servingLatencyMicroseconds: try row["serving_latency_us"].decode(Int.self),
            shadowLatencyMicroseconds: try row["shadow_latency_us"].decode(Int?.self),
            shadowError: try row["shadow_error"].decode(String?.self),
            differences: [],
            noiseDifferences: nil,
            requestHeaders: [],
            requestBody: try bytes("request_body"),
            servingHeaders: [],
            servingBody: try bytes("serving_body"),
            servingTruncated: try row["serving_truncated"].decode(Bool.self),
            shadowHeaders: [],
            shadowBody: try bytes("shadow_body"),
            shadowTruncated: try row["shadow_truncated"].decode(Bool.self),
            requestID: try row["request_id"].decode(String?.self)
        )
        return try EncodedShadowRecord.decode(
            plain,
            differences: try row["differences"].decode(String.self),
            noiseDifferences: try row["noise_differences"].decode(String?.self),
            requestHeaders: try row["request_headers"].decode(String.self),
            servingHeaders: try row["serving_headers"].decode(String.self),
            shadowHeaders: try row["shadow_headers"].decode(String.self)
        )
    }

    /// A `metric_windows` row as a `MetricWindow`; the list columns are JSON arrays, as in the SQLite store.
    static func metricWindow(_ row: PostgresRandomAccessRow) throws -> MetricWindow {
        try EncodedMetricWindow.decode(
            MetricWindow(
                start: try row["start"].decode(Int64.self),
                durationMilliseconds: try row["duration_ms"].decode(Int.self),
                proxy: try row["proxy"].decode(String.self),
                route: try row["route"].decode(String.self),
                upstream: try row["upstream"].decode(String.self),
                requests: try row["requests"].decode(Int.self),
                serverErrors: try row["server_errors"].decode(Int.self),
                latencyBucketBounds: [],
                latencyBucketCounts: []
            ),
            bounds: try row["latency_bounds"].decode(String.self),
            counts: try row["latency_counts"].decode(String.self),
            identities: try row["identity_hashes"].decode(String?.self)
        )
    }
}
