import FicusDiff
import Foundation
import GRDB

extension SQLiteConfigurationStore: ShadowStore {
    /// Adds every record to the minute aggregates, keeps the records that say something (a difference, a noise
    /// difference or a shadow error) within the count bound, and applies retention, in one write transaction.
    ///
    /// An identical comparison lives on in the aggregates only: the drill-down shows samples of differing fields, and
    /// most answers of a healthy migration are identical, so storing each of them would be most of the work and
    /// none of the evidence. Rows, JSON and aggregates are prepared before the transaction starts, so the telemetry
    /// file's write lock (shared with other proxies, never with configuration commits) is held only for the statements
    /// themselves. A batch the telemetry file cannot take is dropped with `StoreError.telemetryDropped`.
    public func appendShadowRecords(_ records: [ShadowRecord], retention: ShadowRetention) async throws {
        guard !records.isEmpty else {
            return
        }
        let aggregates = ShadowAggregates(records)
        let telling = records.filter(\.isSample)
        let rows = Self.newestWithin(
            try telling.suffix(max(0, retention.maxRecords)).map(EncodedShadowRecord.init),
            bytes: self.telemetry.limits.batchBytes
        )
        let now = self.now()
        try await self.perform {
            try await self.writeTelemetry(records: records.count) { db in
                for row in rows {
                    try Self.insert(row, db)
                }
                try Self.add(aggregates, db)
                try Self.pruneShadowRecords(db, retention: retention, now: now)
                try Self.pruneShadowAggregates(db, retention: retention, now: now)
            }
        }
    }

    /// The newest `rows` whose bodies and headers add up to at most `bytes`.
    ///
    /// A batch larger than the telemetry file could hold would fail as a whole and take its aggregates with it; its
    /// newest records that fit in an eighth of the bound are kept instead, and the aggregates count them all.
    static func newestWithin(_ rows: [EncodedShadowRecord], bytes: Int64) -> [EncodedShadowRecord] {
        var total: Int64 = 0
        var kept = 0
        for row in rows.reversed() {
            total += row.estimatedBytes
            guard total <= bytes else {
                break
            }
            kept += 1
        }
        return Array(rows.suffix(kept))
    }

    /// Inserts one record and the distinct fields it differs at.
    ///
    /// The field rows let the drill-down find samples of one field without decoding every record's differences.
    static func insert(_ row: EncodedShadowRecord, _ db: Database) throws {
        // Empty `Data` binds as NULL in SQLite's C API, hence the COALESCEs to an empty blob.
        let statement = try db.cachedStatement(
            sql: """
                INSERT INTO shadow_records (
                    time, route, endpoint, method, target, serving_upstream, shadow_upstream,
                    serving_status, shadow_status, serving_latency_us, shadow_latency_us, shadow_error,
                    differences, noise_differences, request_headers, request_body,
                    serving_headers, serving_body, serving_truncated, shadow_headers, shadow_body, shadow_truncated,
                    request_id
                ) VALUES (
                    ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, COALESCE(?, x''), ?, COALESCE(?, x''), ?, ?,
                    COALESCE(?, x''), ?, ?
                )
                """
        )
        let record = row.record
        try statement.execute(arguments: [
            record.timestamp, record.route, record.endpoint, record.method, record.target,
            record.servingUpstream, record.shadowUpstream, record.servingStatus, record.shadowStatus,
            record.servingLatencyMicroseconds, record.shadowLatencyMicroseconds, record.shadowError,
            row.differences, row.noiseDifferences, row.requestHeaders, Data(record.requestBody),
            row.servingHeaders, Data(record.servingBody), record.servingTruncated,
            row.shadowHeaders, Data(record.shadowBody), record.shadowTruncated, record.requestID,
        ])
        let id = db.lastInsertedRowID
        let fields = try db.cachedStatement(
            sql: "INSERT OR IGNORE INTO shadow_record_fields (record, field_path, kind) VALUES (?, ?, ?)"
        )
        for field in row.fields {
            try fields.execute(arguments: [id, field.path, field.kind.rawValue])
        }
    }

    /// Adds a batch's aggregates to the minute tables with upserts.
    ///
    /// Sums, minimums and maximums commute, so batches from any number of proxies add up in any order.
    static func add(_ aggregates: ShadowAggregates, _ db: Database) throws {
        let endpoints = try db.cachedStatement(
            sql: """
                INSERT INTO shadow_minutes (
                    bucket, route, endpoint, compared, identical, differing, errors, noise_samples,
                    serving_latency_count, serving_latency_sum, serving_latency_min, serving_latency_max,
                    shadow_latency_count, shadow_latency_sum, shadow_latency_min, shadow_latency_max
                ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (bucket, route, endpoint) DO UPDATE SET
                    compared = compared + excluded.compared,
                    identical = identical + excluded.identical,
                    differing = differing + excluded.differing,
                    errors = errors + excluded.errors,
                    noise_samples = noise_samples + excluded.noise_samples,
                    serving_latency_count = serving_latency_count + excluded.serving_latency_count,
                    serving_latency_sum = serving_latency_sum + excluded.serving_latency_sum,
                    serving_latency_min = MIN(COALESCE(serving_latency_min, excluded.serving_latency_min),
                        COALESCE(excluded.serving_latency_min, serving_latency_min)),
                    serving_latency_max = MAX(COALESCE(serving_latency_max, excluded.serving_latency_max),
                        COALESCE(excluded.serving_latency_max, serving_latency_max)),
                    shadow_latency_count = shadow_latency_count + excluded.shadow_latency_count,
                    shadow_latency_sum = shadow_latency_sum + excluded.shadow_latency_sum,
                    shadow_latency_min = MIN(COALESCE(shadow_latency_min, excluded.shadow_latency_min),
                        COALESCE(excluded.shadow_latency_min, shadow_latency_min)),
                    shadow_latency_max = MAX(COALESCE(shadow_latency_max, excluded.shadow_latency_max),
                        COALESCE(excluded.shadow_latency_max, shadow_latency_max))
                """
        )
        for (key, minute) in aggregates.endpoints {
            try endpoints.execute(arguments: [
                key.bucket, key.route, key.endpoint, minute.compared, minute.identical, minute.differing,
                minute.errors, minute.noiseSamples,
                minute.serving.count, minute.serving.sum, minute.serving.minimum, minute.serving.maximum,
                minute.shadow.count, minute.shadow.sum, minute.shadow.minimum, minute.shadow.maximum,
            ])
        }
        let statuses = try db.cachedStatement(
            sql: """
                INSERT INTO shadow_status_minutes (bucket, route, endpoint, serving_status, shadow_status, count)
                VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (bucket, route, endpoint, serving_status, shadow_status) DO UPDATE SET
                    count = count + excluded.count
                """
        )
        for (key, count) in aggregates.statuses {
            try statuses.execute(arguments: [
                key.endpoint.bucket, key.endpoint.route, key.endpoint.endpoint, key.serving, key.shadow, count,
            ])
        }
        let latencies = try db.cachedStatement(
            sql: """
                INSERT INTO shadow_latency_minutes (bucket, route, endpoint, side, le, count) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (bucket, route, endpoint, side, le) DO UPDATE SET count = count + excluded.count
                """
        )
        for (key, count) in aggregates.latencies {
            try latencies.execute(arguments: [
                key.endpoint.bucket, key.endpoint.route, key.endpoint.endpoint, key.side, key.bound, count,
            ])
        }
        let fields = try db.cachedStatement(
            sql: """
                INSERT INTO shadow_field_minutes (bucket, route, endpoint, field_path, kind, raw, noise)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (bucket, route, endpoint, field_path, kind) DO UPDATE SET
                    raw = raw + excluded.raw,
                    noise = noise + excluded.noise
                """
        )
        for (key, counts) in aggregates.fields {
            try fields.execute(arguments: [
                key.endpoint.bucket, key.endpoint.route, key.endpoint.endpoint, key.field.path,
                key.field.kind.rawValue, counts.raw, counts.noise,
            ])
        }
        let signatures = try db.cachedStatement(
            sql: """
                INSERT INTO shadow_signature_minutes (bucket, route, endpoint, signature, count) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (bucket, route, endpoint, signature) DO UPDATE SET count = count + excluded.count
                """
        )
        for (key, count) in aggregates.signatures {
            try signatures.execute(arguments: [
                key.endpoint.bucket, key.endpoint.route, key.endpoint.endpoint, key.signature, count,
            ])
        }
        let waits = try db.cachedStatement(
            sql: """
                INSERT INTO shadow_wait_minutes (bucket, route, endpoint, le, count, sum) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (bucket, route, endpoint, le) DO UPDATE SET
                    count = count + excluded.count,
                    sum = sum + excluded.sum
                """
        )
        for (key, total) in aggregates.waits {
            try waits.execute(arguments: [
                key.endpoint.bucket, key.endpoint.route, key.endpoint.endpoint, key.bound, total.count, total.sum,
            ])
        }
    }

    public func appendShadowDrops(_ drops: [ShadowDropCount], retention: ShadowRetention) async throws {
        guard !drops.isEmpty else {
            return
        }
        try Telemetry.check(drops)
        let now = self.now()
        try await self.perform {
            try await self.writeTelemetry { db in
                let statement = try db.cachedStatement(
                    sql: """
                        INSERT INTO shadow_drop_minutes (bucket, route, endpoint, reason, sent, count)
                        VALUES (?, ?, ?, ?, ?, ?)
                        ON CONFLICT (bucket, route, endpoint, reason, sent) DO UPDATE SET count = count + excluded.count
                        """
                )
                for drop in drops {
                    try statement.execute(arguments: [
                        drop.minute, drop.route, drop.endpoint, drop.reason, drop.sent, drop.count,
                    ])
                }
                try Self.pruneShadowAggregates(db, retention: retention, now: now)
            }
        }
    }

    /// Deletes records beyond the count bound (by rowid) and older than the age bound (by time).
    ///
    /// Both are index range deletes, cheap enough for every batch: rowids grow with insertion, so the newest
    /// `maxRecords` are those above `MAX(id) - maxRecords` (fewer when the age bound left holes, never more).
    static func pruneShadowRecords(_ db: Database, retention: ShadowRetention, now: Date) throws {
        // Cached: retention runs with every batch, and compiling (and authorising) each statement again cost more
        // than running it.
        try db.cachedStatement(sql: "DELETE FROM shadow_records WHERE id <= (SELECT MAX(id) FROM shadow_records) - ?")
            .execute(arguments: [max(0, retention.maxRecords)])
        try db.cachedStatement(sql: "DELETE FROM shadow_records WHERE time < ?")
            .execute(arguments: [Telemetry.microseconds(now.addingTimeInterval(-retention.maxRecordAge))])
    }

    /// Deletes minute aggregates older than the aggregate age bound.
    ///
    /// Every aggregate table is keyed by minute first, so each delete removes a prefix of its primary key.
    static func pruneShadowAggregates(_ db: Database, retention: ShadowRetention, now: Date) throws {
        let cutoff = Telemetry.seconds(now.addingTimeInterval(-retention.maxAggregateAge))
        for table in Telemetry.aggregateTables {
            try db.cachedStatement(sql: "DELETE FROM \(table) WHERE bucket < ?").execute(arguments: [cutoff])
        }
    }

    /// The number of rows in each shadow and metric-window table.
    ///
    /// What retention bounds, for diagnostics and for tests of retention, which is about rows no query returns.
    func shadowTableSizes() async throws -> [String: Int] {
        let tables = ["shadow_records", "shadow_record_fields", "metric_windows"] + Telemetry.aggregateTables
        return try await self.perform {
            try await self.readTelemetry { db in
                var sizes: [String: Int] = [:]
                for table in tables {
                    sizes[table] = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table)") ?? 0
                }
                return sizes
            }
        }
    }
}
