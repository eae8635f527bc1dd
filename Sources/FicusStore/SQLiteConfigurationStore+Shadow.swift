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
        for drop in drops {
            guard drop.count >= 0, drop.minute % 60 == 0 else {
                throw StoreError.rejected(
                    "shadow drop count of route '\(drop.route)' endpoint '\(drop.endpoint)' has minute \(drop.minute) "
                        + "and count \(drop.count); a minute is a multiple of 60 and a count is not negative"
                )
            }
        }
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
            .execute(arguments: [Self.microseconds(now.addingTimeInterval(-retention.maxRecordAge))])
    }

    /// Deletes minute aggregates older than the aggregate age bound.
    ///
    /// Every aggregate table is keyed by minute first, so each delete removes a prefix of its primary key.
    static func pruneShadowAggregates(_ db: Database, retention: ShadowRetention, now: Date) throws {
        let cutoff = Self.seconds(now.addingTimeInterval(-retention.maxAggregateAge))
        for table in Self.shadowAggregateTables {
            try db.cachedStatement(sql: "DELETE FROM \(table) WHERE bucket < ?").execute(arguments: [cutoff])
        }
    }

    /// The number of rows in each shadow and metric-window table.
    ///
    /// What retention bounds, for diagnostics and for tests of retention, which is about rows no query returns.
    func shadowTableSizes() async throws -> [String: Int] {
        let tables = ["shadow_records", "shadow_record_fields", "metric_windows"] + Self.shadowAggregateTables
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

    /// The per-minute aggregate tables.
    ///
    /// Retention treats them alike.
    static let shadowAggregateTables = [
        "shadow_minutes", "shadow_status_minutes", "shadow_latency_minutes", "shadow_field_minutes",
        "shadow_signature_minutes", "shadow_drop_minutes", "shadow_wait_minutes",
    ]

    /// `date` in whole microseconds since 1970, rounded down.
    ///
    /// Records and metric windows carry microseconds; dates of queries and retention are converted once, here.
    static func microseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1_000_000).rounded(.down))
    }

    /// `date` in whole seconds since 1970, rounded down.
    ///
    /// The unit of aggregate buckets.
    static func seconds(_ date: Date) -> Int64 {
        Int64(date.timeIntervalSince1970.rounded(.down))
    }

    /// The start of the minute holding `timestamp` (microseconds), in seconds since 1970.
    ///
    /// Floor division, so that times before 1970 (only in tests) fall in the right minute too.
    static func minuteBucket(ofMicroseconds timestamp: Int64) -> Int64 {
        Self.floor(timestamp, 60_000_000) * 60
    }

    /// `value` ÷ `divisor` rounded towards minus infinity (`divisor` > 0).
    ///
    /// Swift's `/` rounds towards zero.
    static func floor(_ value: Int64, _ divisor: Int64) -> Int64 {
        let quotient = value / divisor
        return value % divisor < 0 ? quotient - 1 : quotient
    }
}

/// A shadow record with its JSON columns encoded, ready to be inserted.
///
/// Encoding happens before the write transaction, so the write lock is not held while JSON is built.
struct EncodedShadowRecord: Sendable {
    var record: ShadowRecord
    var differences: String
    var noiseDifferences: String?
    var requestHeaders: String
    var servingHeaders: String
    var shadowHeaders: String
    /// The distinct fields of `differences`.
    var fields: [ShadowField]

    /// Roughly the bytes the row takes in SQLite: bodies, JSON columns and a little for the rest.
    var estimatedBytes: Int64 {
        let bodies = self.record.requestBody.count + self.record.servingBody.count + self.record.shadowBody.count
        let json = self.differences.utf8.count + (self.noiseDifferences?.utf8.count ?? 0)
            + self.requestHeaders.utf8.count + self.servingHeaders.utf8.count + self.shadowHeaders.utf8.count
        return Int64(bodies + json + self.record.target.utf8.count + 256)
    }

    init(_ record: ShadowRecord) throws {
        self.record = record
        self.differences = try Self.json(record.differences)
        self.noiseDifferences = try record.noiseDifferences.map(Self.json)
        self.requestHeaders = try Self.json(record.requestHeaders)
        self.servingHeaders = try Self.json(record.servingHeaders)
        self.shadowHeaders = try Self.json(record.shadowHeaders)
        self.fields = ShadowField.distinct(record.differences)
    }

    /// `value` as compact JSON text with sorted keys.
    ///
    /// Sorted keys keep equal values byte-for-byte equal, which keeps `sqlite3` dumps diffable.
    static func json<Value: Encodable>(_ value: Value) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}

/// A field of an endpoint: a generalised path (`Difference.fieldPath`) and a difference kind.
///
/// The unit noise is learnt and counted in.
struct ShadowField: Sendable, Hashable, Comparable {
    var path: String
    var kind: DifferenceKind

    static func < (lhs: ShadowField, rhs: ShadowField) -> Bool {
        (lhs.path, lhs.kind.rawValue) < (rhs.path, rhs.kind.rawValue)
    }

    /// The distinct fields of `differences`, sorted.
    ///
    /// A request counts once per field however many array elements differ there, so that counts compare with the
    /// endpoint's request total.
    static func distinct(_ differences: [Difference]) -> [ShadowField] {
        Set(differences.map { ShadowField(path: $0.fieldPath, kind: $0.kind) }).sorted()
    }

    /// The canonical text of a request's set of fields: a JSON array of `[path, kind]` pairs, sorted.
    ///
    /// Equal sets give equal text, so the text is a key of `shadow_signature_minutes`.
    static func signature(_ fields: [ShadowField]) -> String {
        (try? EncodedShadowRecord.json(fields.map { [$0.path, $0.kind.rawValue] })) ?? "[]"
    }

    /// The fields of a signature; pairs with an unknown kind (from a newer Ficus) are skipped.
    ///
    /// The inverse of `signature(_:)`.
    static func fields(ofSignature text: String) -> [ShadowField] {
        guard let pairs = try? JSONDecoder().decode([[String]].self, from: Data(text.utf8)) else {
            return []
        }
        return pairs.compactMap { pair in
            guard pair.count == 2, let kind = DifferenceKind(rawValue: pair[1]) else {
                return nil
            }
            return ShadowField(path: pair[0], kind: kind)
        }
    }
}

/// One batch of records summed per minute, route and endpoint, in the shape of the aggregate tables.
///
/// Summing in memory first turns a batch of a thousand records on one endpoint into a handful of upserts.
struct ShadowAggregates: Sendable {
    /// A minute of one endpoint.
    struct EndpointKey: Sendable, Hashable {
        var bucket: Int64
        var route: String
        var endpoint: String
    }

    /// Count, sum and range of one side's latencies.
    struct Latencies: Sendable {
        var count = 0
        var sum = 0
        var minimum: Int?
        var maximum: Int?

        mutating func add(_ microseconds: Int) {
            self.count += 1
            self.sum += microseconds
            self.minimum = min(self.minimum ?? microseconds, microseconds)
            self.maximum = max(self.maximum ?? microseconds, microseconds)
        }
    }

    /// The `shadow_minutes` columns of one endpoint minute.
    struct EndpointMinute: Sendable {
        var compared = 0
        var identical = 0
        var differing = 0
        var errors = 0
        var noiseSamples = 0
        var serving = Latencies()
        var shadow = Latencies()
    }

    struct StatusKey: Sendable, Hashable {
        var endpoint: EndpointKey
        var serving: Int
        /// 0 when the shadow did not answer (a primary key column cannot be NULL).
        var shadow: Int
    }

    struct LatencyKey: Sendable, Hashable {
        var endpoint: EndpointKey
        /// "serving" or "shadow".
        var side: String
        var bound: Int
    }

    struct FieldKey: Sendable, Hashable {
        var endpoint: EndpointKey
        var field: ShadowField
    }

    struct SignatureKey: Sendable, Hashable {
        var endpoint: EndpointKey
        var signature: String
    }

    var endpoints: [EndpointKey: EndpointMinute] = [:]
    var statuses: [StatusKey: Int] = [:]
    var latencies: [LatencyKey: Int] = [:]
    var fields: [FieldKey: FieldCounts] = [:]
    /// Differing compared requests by their set of fields; the after-noise diff rate is computed from these.
    var signatures: [SignatureKey: Int] = [:]
    /// Copies' time inside Ficus before they left: count and sum per histogram bound.
    var waits: [LatencyKey: (count: Int, sum: Int)] = [:]

    /// Sums `records`.
    ///
    /// A record the shadow did not answer (`shadowError`) counts as an error, not as compared; a noise sample counts
    /// its noise fields whether or not the shadow answered, since they only involve the serving side.
    init(_ records: [ShadowRecord]) {
        for record in records {
            let key = EndpointKey(
                bucket: SQLiteConfigurationStore.minuteBucket(ofMicroseconds: record.timestamp),
                route: record.route,
                endpoint: record.endpoint
            )
            var minute = self.endpoints[key] ?? EndpointMinute()
            let answered = record.shadowError == nil
            let differing = answered ? ShadowField.distinct(record.differences) : []
            if !answered {
                minute.errors += 1
            } else {
                minute.compared += 1
                if differing.isEmpty {
                    minute.identical += 1
                } else {
                    minute.differing += 1
                    let signature = SignatureKey(endpoint: key, signature: ShadowField.signature(differing))
                    self.signatures[signature, default: 0] += 1
                }
            }
            for field in differing {
                self.fields[FieldKey(endpoint: key, field: field), default: FieldCounts()].raw += 1
            }
            if let noise = record.noiseDifferences {
                minute.noiseSamples += 1
                for field in ShadowField.distinct(noise) {
                    self.fields[FieldKey(endpoint: key, field: field), default: FieldCounts()].noise += 1
                }
            }
            minute.serving.add(record.servingLatencyMicroseconds)
            self.latencies[
                LatencyKey(
                    endpoint: key,
                    side: "serving",
                    bound: LatencyHistogram.shadowBound(for: record.servingLatencyMicroseconds)
                ),
                default: 0
            ] += 1
            if let latency = record.shadowLatencyMicroseconds {
                minute.shadow.add(latency)
                self.latencies[
                    LatencyKey(endpoint: key, side: "shadow", bound: LatencyHistogram.shadowBound(for: latency)),
                    default: 0
                ] += 1
            }
            if let wait = record.shadowWaitMicroseconds {
                let waitKey = LatencyKey(endpoint: key, side: "wait", bound: LatencyHistogram.shadowBound(for: wait))
                let sum = self.waits[waitKey]
                self.waits[waitKey] = ((sum?.count ?? 0) + 1, (sum?.sum ?? 0) + wait)
            }
            let status = StatusKey(endpoint: key, serving: record.servingStatus, shadow: record.shadowStatus ?? 0)
            self.statuses[status, default: 0] += 1
            self.endpoints[key] = minute
        }
    }
}
