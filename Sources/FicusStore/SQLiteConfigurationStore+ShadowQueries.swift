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
        return try await self.perform {
            try await self.readTelemetry { db in
                var timeline = ShadowTimelineBuilder(
                    range: range, bucketSeconds: bucketSeconds, withNoise: thresholds != nil)
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
                    timeline.add(
                        minute: row["bucket"], compared: row["compared"], differing: row["differing"],
                        errors: row["errors"])
                }
                if let thresholds {
                    let summaries = try Self.fetchEndpointSummaries(db, route: route, range: range)
                    let regressions = ShadowRegressions(summaries, thresholds: thresholds)
                    try Self.forEachRegressingSignature(db, route: route, range: range, regressions: regressions) {
                        bucket, _, count in
                        timeline.addAfterNoise(minute: bucket, count: count)
                    }
                }
                return timeline.timeline()
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
                let regressions = ShadowRegressions(summaries, thresholds: thresholds)
                var afterNoise: [ShadowEndpointID: Int] = [:]
                try Self.forEachRegressingSignature(db, route: route, range: range, regressions: regressions) {
                    _, endpoint, count in
                    afterNoise[endpoint, default: 0] += count
                }
                return ShadowDiffRate(summaries: summaries, afterNoise: afterNoise, thresholds: thresholds)
            }
        }
    }

    /// Every endpoint's summary over `range`, sorted by route and endpoint.
    ///
    /// Six grouped scans of the minute tables, keyed by minute first, so a short range reads few rows.
    static func fetchEndpointSummaries(
        _ db: Database,
        route: String?,
        range: ShadowBucketRange
    ) throws -> [ShadowEndpointSummary] {
        let arguments = range.arguments(route: route)
        let filter = ShadowBucketRange.filter
        var rows = ShadowSummaryRows()
        rows.statuses = try Row.fetchAll(
            db,
            sql: """
                SELECT route, endpoint, serving_status, shadow_status, SUM(count) AS count
                FROM shadow_status_minutes WHERE \(filter)
                GROUP BY route, endpoint, serving_status, shadow_status
                """,
            arguments: arguments
        ).map { row in
            .init(
                id: ShadowEndpointID(row), serving: row["serving_status"], shadow: row["shadow_status"],
                count: row["count"])
        }
        rows.latencies = try Row.fetchAll(
            db,
            sql: """
                SELECT route, endpoint, side, le, SUM(count) AS count
                FROM shadow_latency_minutes WHERE \(filter)
                GROUP BY route, endpoint, side, le
                """,
            arguments: arguments
        ).map { row in
            .init(id: ShadowEndpointID(row), side: row["side"], bound: row["le"], count: row["count"])
        }
        rows.fields = try Row.fetchAll(
            db,
            sql: """
                SELECT route, endpoint, field_path, kind, SUM(raw) AS raw, SUM(noise) AS noise
                FROM shadow_field_minutes WHERE \(filter)
                GROUP BY route, endpoint, field_path, kind
                """,
            arguments: arguments
        ).map { row in
            .init(
                id: ShadowEndpointID(row), path: row["field_path"], kind: row["kind"], raw: row["raw"],
                noise: row["noise"])
        }
        rows.drops = try Row.fetchAll(
            db,
            sql: """
                SELECT route, endpoint, reason, sent, SUM(count) AS count
                FROM shadow_drop_minutes WHERE \(filter)
                GROUP BY route, endpoint, reason, sent
                """,
            arguments: arguments
        ).map { row in
            .init(id: ShadowEndpointID(row), reason: row["reason"], sent: row["sent"], count: row["count"])
        }
        rows.waits = try Row.fetchAll(
            db,
            sql: """
                SELECT route, endpoint, le, SUM(count) AS count, SUM(sum) AS sum
                FROM shadow_wait_minutes WHERE \(filter)
                GROUP BY route, endpoint, le
                """,
            arguments: arguments
        ).map { row in
            .init(id: ShadowEndpointID(row), bound: row["le"], count: row["count"], sum: row["sum"])
        }
        rows.totals = try Row.fetchAll(
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
                """,
            arguments: arguments
        ).map { row in
            .init(
                id: ShadowEndpointID(row),
                compared: row["compared"],
                identical: row["identical"],
                differing: row["differing"],
                errors: row["errors"],
                noiseSamples: row["noise_samples"],
                servingCount: row["serving_count"],
                servingSum: row["serving_sum"],
                servingMin: row["serving_min"],
                servingMax: row["serving_max"],
                shadowCount: row["shadow_count"],
                shadowSum: row["shadow_sum"],
                shadowMin: row["shadow_min"],
                shadowMax: row["shadow_max"]
            )
        }
        return rows.summaries()
    }

    /// Calls `body` with the minute, endpoint and request count of every stored signature in `range` that contains
    /// a regression field of its endpoint (see `ShadowRegressions`).
    ///
    /// A cursor, so that a long range never holds every signature row in memory.
    static func forEachRegressingSignature(
        _ db: Database,
        route: String?,
        range: ShadowBucketRange,
        regressions: ShadowRegressions,
        _ body: (Int64, ShadowEndpointID, Int) -> Void
    ) throws {
        guard !regressions.isEmpty else {
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
            if regressions.regresses(row["signature"], of: endpoint) {
                body(row["bucket"], endpoint, row["count"])
            }
        }
    }

    /// A `shadow_records` row as a `ShadowRecord`.
    ///
    /// The inverse of `insert(_:_:)`; a row that cannot be decoded is a damaged store and fails the query.
    static func shadowRecord(_ row: Row) throws -> ShadowRecord {
        let plain = ShadowRecord(
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
            differences: [],
            noiseDifferences: nil,
            requestHeaders: [],
            requestBody: Self.bytes(row["request_body"]),
            servingHeaders: [],
            servingBody: Self.bytes(row["serving_body"]),
            servingTruncated: row["serving_truncated"],
            shadowHeaders: [],
            shadowBody: Self.bytes(row["shadow_body"]),
            shadowTruncated: row["shadow_truncated"],
            requestID: row["request_id"]
        )
        return try EncodedShadowRecord.decode(
            plain,
            differences: row["differences"],
            noiseDifferences: row["noise_differences"],
            requestHeaders: row["request_headers"],
            servingHeaders: row["serving_headers"],
            shadowHeaders: row["shadow_headers"]
        )
    }

    /// A BLOB column as bytes; an empty blob may come back as NULL.
    ///
    /// SQLite hands out no pointer for a zero-length blob.
    static func bytes(_ data: Data?) -> [UInt8] {
        data.map { [UInt8]($0) } ?? []
    }
}

extension ShadowEndpointID {
    /// The endpoint of a row with `route` and `endpoint` columns.
    init(_ row: Row) {
        self.init(route: row["route"], endpoint: row["endpoint"])
    }
}

extension ShadowBucketRange {
    /// The WHERE clause of a range query on a minute table, with `:lower`, `:upper` and `:route`.
    ///
    /// One text for every table, so every query filters the same way.
    static let filter = "bucket >= :lower AND bucket < :upper AND (:route IS NULL OR route = :route)"

    /// The arguments of `filter`.
    ///
    /// Open bounds become the extreme integers, which keeps one statement text per query (cached by SQLite).
    func arguments(route: String?) -> StatementArguments {
        ["lower": self.lower, "upper": self.upper, "route": route]
    }
}
