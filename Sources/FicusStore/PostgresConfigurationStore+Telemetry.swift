import FicusDiff
import Foundation
import NIOCore
import PostgresNIO

/// Telemetry on PostgreSQL (docs/FLEET.md): shadow records, per-minute aggregates and metric windows of every proxy
/// of a fleet in the tables of migration `v2-telemetry`, written in batches and read with the same results as the
/// SQLite telemetry file.
///
/// Each batch is one transaction of one multi-row statement per table (arrays unnested server-side), outside the
/// fleet's write lock: telemetry never waits for a commit, nor a commit for telemetry. A batch the server cannot take
/// for a reason that passes (unreachable, busy) is kept in `telemetryBuffer` and sent with the next batch of its kind;
/// one it refuses for good is dropped and counted, as the SQLite store does with a batch its file cannot take.
extension PostgresConfigurationStore: ShadowStore, StoreBackend {
    public var location: String { self.url.description }

    public var storesTelemetry: Bool { true }

    public var telemetryDrops: TelemetryDrops { self.telemetryBuffer.drops }

    /// Stores the buffered records and `records`: the records that say something (within `retention.maxRecords`)
    /// with their fields, every record in the minute aggregates, then retention, in one transaction.
    ///
    /// Returns without error when the batch was kept for the next write: the records are not lost (yet), and a
    /// caller counting them as lost would count them twice once they are written.
    public func appendShadowRecords(_ records: [ShadowRecord], retention: ShadowRetention) async throws {
        guard !records.isEmpty else {
            return
        }
        let batch = self.telemetryBuffer.takeRecords(adding: records)
        do {
            try await self.writeShadowRecords(batch, retention: retention)
        } catch {
            try self.keepOrDrop(error, kind: "shadow records") { reason in
                self.telemetryBuffer.keep(records: batch, reason: reason)
            } drop: { reason in
                self.telemetryBuffer.drop(records: batch.count, windows: 0, reason: reason)
            }
        }
    }

    /// Stores the buffered windows and `windows`, a window sent again replacing the first copy, then retention.
    ///
    /// A batch kept for the next write still throws: the windows are late, and a canary step judged meanwhile must
    /// know that this proxy's traffic is missing from it (`WindowFailures` in the runtime).
    public func appendMetricWindows(_ windows: [MetricWindow], retention: ShadowRetention) async throws {
        guard !windows.isEmpty else {
            return
        }
        try Telemetry.check(windows)
        let batch = self.telemetryBuffer.takeWindows(adding: windows)
        do {
            try await self.writeMetricWindows(batch, retention: retention)
        } catch {
            try self.keepOrDrop(error, kind: "metric windows") { reason in
                self.telemetryBuffer.keep(windows: batch, reason: reason)
                throw Self.storeError(error, location: self.url.description)
            } drop: { reason in
                self.telemetryBuffer.drop(records: 0, windows: batch.count, reason: reason)
            }
        }
    }

    /// Adds the buffered drop counts and `drops` to the minute table, then the aggregate retention.
    ///
    /// Like records, a batch kept for the next write returns without error.
    public func appendShadowDrops(_ drops: [ShadowDropCount], retention: ShadowRetention) async throws {
        guard !drops.isEmpty else {
            return
        }
        try Telemetry.check(drops)
        let batch = self.telemetryBuffer.takeDrops(adding: drops)
        do {
            try await self.writeShadowDrops(batch, retention: retention)
        } catch {
            try self.keepOrDrop(error, kind: "shadow drop counts") { reason in
                self.telemetryBuffer.keep(drops: batch, reason: reason)
            } drop: { reason in
                self.telemetryBuffer.drop(records: 0, windows: 0, reason: reason)
            }
        }
    }

    /// Keeps a batch that failed for a reason that passes (the server unreachable or busy, the task cancelled) and
    /// drops one the server refused (a permission, a value it cannot store), which is then thrown as
    /// `StoreError.telemetryDropped`.
    ///
    /// A refused batch would be refused again at every retry and hold back everything behind it.
    private func keepOrDrop(
        _ error: any Error,
        kind: String,
        keep: (String) throws -> Void,
        drop: (String) -> Void
    ) throws {
        let mapped = Self.storeError(error, location: self.url.description)
        switch mapped {
        case StoreError.unreachable, StoreError.busy, is CancellationError:
            try keep("\(mapped); unwritten \(kind) beyond the in-memory buffer were dropped")
        default:
            let reason = "\(kind) cannot be written to '\(self.location)': \(mapped)"
            drop(reason)
            throw StoreError.telemetryDropped(reason)
        }
    }

    // MARK: - Writing

    /// One telemetry transaction on a pooled connection: BEGIN, `body`, COMMIT, and ROLLBACK on any error.
    ///
    /// Without the fleet's write lock (`write`): telemetry and configuration commits never wait for each other.
    func telemetryTransaction(_ body: (PostgresSession) async throws -> Void) async throws {
        try await self.perform { session in
            try await session.execute("BEGIN")
            do {
                try await body(session)
                try await session.execute("COMMIT")
            } catch {
                try? await session.execute("ROLLBACK")
                throw error
            }
        }
    }

    /// "Now" for retention: the database's clock, or the clock a test injected.
    ///
    /// The database's, so that every proxy of a fleet deletes by the same time whatever its own clock says.
    func telemetryNow(_ session: PostgresSession) async throws -> Date {
        if let now = self.now {
            return now()
        }
        return try await session.row("SELECT clock_timestamp() AS now")?["now"].decode(Date.self) ?? Date()
    }

    /// Writes records, their fields and their aggregates, then applies retention, in one transaction.
    ///
    /// Rows, JSON and aggregates are prepared before the transaction; the record ids are taken from the sequence first
    /// so that the fields of a batch can be inserted with one statement too.
    func writeShadowRecords(_ records: [ShadowRecord], retention: ShadowRetention) async throws {
        let aggregates = ShadowAggregates(records)
        let rows = try records.filter(\.isSample).suffix(max(0, retention.maxRecords)).map(EncodedShadowRecord.init)
        try await self.telemetryTransaction { session in
            let now = try await self.telemetryNow(session)
            if !rows.isEmpty {
                let ids = try await session.rows(
                    "SELECT nextval('shadow_records_id_seq') AS id FROM generate_series(1, \(rows.count))"
                ).map { try $0["id"].decode(Int64.self) }.sorted()
                try await Self.insert(rows, ids: ids, session)
            }
            try await Self.add(aggregates, session)
            try await Self.pruneShadowRecords(session, retention: retention, now: now)
            try await Self.pruneShadowAggregates(session, retention: retention, now: now)
        }
    }

    /// Inserts records with the given ids, and the distinct fields each differs at.
    static func insert(_ rows: [EncodedShadowRecord], ids: [Int64], _ session: PostgresSession) async throws {
        let records = rows.map(\.record)
        let columns = RecordColumns(rows)
        try await session.execute(
            """
            INSERT INTO shadow_records (
                id, time, route, endpoint, method, target, serving_upstream, shadow_upstream,
                serving_status, shadow_status, serving_latency_us, shadow_latency_us, shadow_error,
                differences, noise_differences, request_headers, request_body,
                serving_headers, serving_body, serving_truncated, shadow_headers, shadow_body, shadow_truncated,
                request_id
            )
            SELECT id, time, route, endpoint, method, target, serving_upstream, shadow_upstream,
                serving_status, CASE WHEN has_shadow_status THEN shadow_status END, serving_latency_us,
                CASE WHEN has_shadow_latency THEN shadow_latency_us END,
                CASE WHEN has_shadow_error THEN shadow_error END,
                differences, CASE WHEN has_noise THEN noise_differences END, request_headers, request_body,
                serving_headers, serving_body, serving_truncated, shadow_headers, shadow_body, shadow_truncated,
                CASE WHEN has_request_id THEN request_id END
            FROM unnest(
                \(ids)::bigint[], \(records.map(\.timestamp))::bigint[], \(records.map(\.route))::text[],
                \(records.map(\.endpoint))::text[], \(records.map(\.method))::text[], \(records.map(\.target))::text[],
                \(records.map(\.servingUpstream))::text[], \(records.map(\.shadowUpstream))::text[],
                \(records.map(\.servingStatus))::bigint[], \(columns.shadowStatus)::bigint[],
                \(columns.hasShadowStatus)::boolean[], \(records.map(\.servingLatencyMicroseconds))::bigint[],
                \(columns.shadowLatency)::bigint[], \(columns.hasShadowLatency)::boolean[],
                \(columns.shadowError)::text[], \(columns.hasShadowError)::boolean[],
                \(rows.map(\.differences))::text[], \(columns.noise)::text[], \(columns.hasNoise)::boolean[],
                \(rows.map(\.requestHeaders))::text[], \(columns.requestBody)::bytea[],
                \(rows.map(\.servingHeaders))::text[], \(columns.servingBody)::bytea[],
                \(records.map(\.servingTruncated))::boolean[], \(rows.map(\.shadowHeaders))::text[],
                \(columns.shadowBody)::bytea[], \(records.map(\.shadowTruncated))::boolean[],
                \(columns.requestID)::text[], \(columns.hasRequestID)::boolean[]
            ) AS r(
                id, time, route, endpoint, method, target, serving_upstream, shadow_upstream,
                serving_status, shadow_status, has_shadow_status, serving_latency_us,
                shadow_latency_us, has_shadow_latency, shadow_error, has_shadow_error,
                differences, noise_differences, has_noise, request_headers, request_body,
                serving_headers, serving_body, serving_truncated, shadow_headers,
                shadow_body, shadow_truncated, request_id, has_request_id
            )
            """
        )
        var fieldRecords: [Int64] = []
        var fieldPaths: [String] = []
        var fieldKinds: [String] = []
        for (row, id) in zip(rows, ids) {
            for field in row.fields {
                fieldRecords.append(id)
                fieldPaths.append(field.path)
                fieldKinds.append(field.kind.rawValue)
            }
        }
        if !fieldRecords.isEmpty {
            try await session.execute(
                """
                INSERT INTO shadow_record_fields (record, field_path, kind)
                SELECT * FROM unnest(\(fieldRecords)::bigint[], \(fieldPaths)::text[], \(fieldKinds)::text[])
                ON CONFLICT DO NOTHING
                """
            )
        }
    }

    /// The columns of records that PostgreSQL arrays cannot carry directly: bodies as buffers, and the nullable ones
    /// as a value (0 or empty when absent) with a flag.
    ///
    /// PostgresNIO encodes arrays without NULL elements; the insert turns a value without its flag back into NULL.
    struct RecordColumns {
        var shadowStatus: [Int] = []
        var hasShadowStatus: [Bool] = []
        var shadowLatency: [Int] = []
        var hasShadowLatency: [Bool] = []
        var shadowError: [String] = []
        var hasShadowError: [Bool] = []
        var noise: [String] = []
        var hasNoise: [Bool] = []
        var requestID: [String] = []
        var hasRequestID: [Bool] = []
        var requestBody: [ByteBuffer] = []
        var servingBody: [ByteBuffer] = []
        var shadowBody: [ByteBuffer] = []

        init(_ rows: [EncodedShadowRecord]) {
            for row in rows {
                let record = row.record
                self.shadowStatus.append(record.shadowStatus ?? 0)
                self.hasShadowStatus.append(record.shadowStatus != nil)
                self.shadowLatency.append(record.shadowLatencyMicroseconds ?? 0)
                self.hasShadowLatency.append(record.shadowLatencyMicroseconds != nil)
                self.shadowError.append(record.shadowError ?? "")
                self.hasShadowError.append(record.shadowError != nil)
                self.noise.append(row.noiseDifferences ?? "")
                self.hasNoise.append(row.noiseDifferences != nil)
                self.requestID.append(record.requestID ?? "")
                self.hasRequestID.append(record.requestID != nil)
                self.requestBody.append(ByteBuffer(bytes: record.requestBody))
                self.servingBody.append(ByteBuffer(bytes: record.servingBody))
                self.shadowBody.append(ByteBuffer(bytes: record.shadowBody))
            }
        }
    }

    /// Adds a batch's aggregates to the minute tables, one upsert statement per table.
    ///
    /// Sums, minimums and maximums commute, so batches from any number of proxies add up in any order. Rows go in
    /// key order, so that two proxies adding to the same minutes lock them in the same order and never deadlock.
    static func add(_ aggregates: ShadowAggregates, _ session: PostgresSession) async throws {
        let endpoints = aggregates.endpoints.sorted { Self.less($0.key, $1.key) }
        if !endpoints.isEmpty {
            let keys = endpoints.map(\.key)
            let minutes = endpoints.map(\.value)
            try await session.execute(
                """
                INSERT INTO shadow_minutes AS m (
                    bucket, route, endpoint, compared, identical, differing, errors, noise_samples,
                    serving_latency_count, serving_latency_sum, serving_latency_min, serving_latency_max,
                    shadow_latency_count, shadow_latency_sum, shadow_latency_min, shadow_latency_max
                )
                SELECT bucket, route, endpoint, compared, identical, differing, errors, noise_samples,
                    serving_count, serving_sum,
                    CASE WHEN serving_count > 0 THEN serving_min END, CASE WHEN serving_count > 0 THEN serving_max END,
                    shadow_count, shadow_sum,
                    CASE WHEN shadow_count > 0 THEN shadow_min END, CASE WHEN shadow_count > 0 THEN shadow_max END
                FROM unnest(
                    \(keys.map(\.bucket))::bigint[], \(keys.map(\.route))::text[], \(keys.map(\.endpoint))::text[],
                    \(minutes.map(\.compared))::bigint[], \(minutes.map(\.identical))::bigint[],
                    \(minutes.map(\.differing))::bigint[], \(minutes.map(\.errors))::bigint[],
                    \(minutes.map(\.noiseSamples))::bigint[],
                    \(minutes.map(\.serving.count))::bigint[], \(minutes.map(\.serving.sum))::bigint[],
                    \(minutes.map { $0.serving.minimum ?? 0 })::bigint[],
                    \(minutes.map { $0.serving.maximum ?? 0 })::bigint[],
                    \(minutes.map(\.shadow.count))::bigint[], \(minutes.map(\.shadow.sum))::bigint[],
                    \(minutes.map { $0.shadow.minimum ?? 0 })::bigint[],
                    \(minutes.map { $0.shadow.maximum ?? 0 })::bigint[]
                ) AS a(
                    bucket, route, endpoint, compared, identical, differing, errors, noise_samples,
                    serving_count, serving_sum, serving_min, serving_max,
                    shadow_count, shadow_sum, shadow_min, shadow_max
                )
                ON CONFLICT (bucket, route, endpoint) DO UPDATE SET
                    compared = m.compared + excluded.compared,
                    identical = m.identical + excluded.identical,
                    differing = m.differing + excluded.differing,
                    errors = m.errors + excluded.errors,
                    noise_samples = m.noise_samples + excluded.noise_samples,
                    serving_latency_count = m.serving_latency_count + excluded.serving_latency_count,
                    serving_latency_sum = m.serving_latency_sum + excluded.serving_latency_sum,
                    serving_latency_min = LEAST(m.serving_latency_min, excluded.serving_latency_min),
                    serving_latency_max = GREATEST(m.serving_latency_max, excluded.serving_latency_max),
                    shadow_latency_count = m.shadow_latency_count + excluded.shadow_latency_count,
                    shadow_latency_sum = m.shadow_latency_sum + excluded.shadow_latency_sum,
                    shadow_latency_min = LEAST(m.shadow_latency_min, excluded.shadow_latency_min),
                    shadow_latency_max = GREATEST(m.shadow_latency_max, excluded.shadow_latency_max)
                """
            )
        }
        let statuses = aggregates.statuses.sorted {
            Self.less(
                $0.key.endpoint, $1.key.endpoint,
                then: ($0.key.serving, $0.key.shadow) < ($1.key.serving, $1.key.shadow))
        }
        if !statuses.isEmpty {
            let keys = statuses.map(\.key)
            try await session.execute(
                """
                INSERT INTO shadow_status_minutes AS m (bucket, route, endpoint, serving_status, shadow_status, count)
                SELECT * FROM unnest(
                    \(keys.map(\.endpoint.bucket))::bigint[], \(keys.map(\.endpoint.route))::text[],
                    \(keys.map(\.endpoint.endpoint))::text[], \(keys.map(\.serving))::integer[],
                    \(keys.map(\.shadow))::integer[], \(statuses.map(\.value))::bigint[]
                )
                ON CONFLICT (bucket, route, endpoint, serving_status, shadow_status) DO UPDATE SET
                    count = m.count + excluded.count
                """
            )
        }
        let latencies = aggregates.latencies.sorted {
            Self.less($0.key.endpoint, $1.key.endpoint, then: ($0.key.side, $0.key.bound) < ($1.key.side, $1.key.bound))
        }
        if !latencies.isEmpty {
            let keys = latencies.map(\.key)
            try await session.execute(
                """
                INSERT INTO shadow_latency_minutes AS m (bucket, route, endpoint, side, le, count)
                SELECT * FROM unnest(
                    \(keys.map(\.endpoint.bucket))::bigint[], \(keys.map(\.endpoint.route))::text[],
                    \(keys.map(\.endpoint.endpoint))::text[], \(keys.map(\.side))::text[],
                    \(keys.map(\.bound))::bigint[], \(latencies.map(\.value))::bigint[]
                )
                ON CONFLICT (bucket, route, endpoint, side, le) DO UPDATE SET count = m.count + excluded.count
                """
            )
        }
        let fields = aggregates.fields.sorted {
            Self.less($0.key.endpoint, $1.key.endpoint, then: $0.key.field < $1.key.field)
        }
        if !fields.isEmpty {
            let keys = fields.map(\.key)
            try await session.execute(
                """
                INSERT INTO shadow_field_minutes AS m (bucket, route, endpoint, field_path, kind, raw, noise)
                SELECT * FROM unnest(
                    \(keys.map(\.endpoint.bucket))::bigint[], \(keys.map(\.endpoint.route))::text[],
                    \(keys.map(\.endpoint.endpoint))::text[], \(keys.map(\.field.path))::text[],
                    \(keys.map(\.field.kind.rawValue))::text[], \(fields.map(\.value.raw))::bigint[],
                    \(fields.map(\.value.noise))::bigint[]
                )
                ON CONFLICT (bucket, route, endpoint, field_path, kind) DO UPDATE SET
                    raw = m.raw + excluded.raw,
                    noise = m.noise + excluded.noise
                """
            )
        }
        let signatures = aggregates.signatures.sorted {
            Self.less($0.key.endpoint, $1.key.endpoint, then: $0.key.signature < $1.key.signature)
        }
        if !signatures.isEmpty {
            let keys = signatures.map(\.key)
            try await session.execute(
                """
                INSERT INTO shadow_signature_minutes AS m (bucket, route, endpoint, signature, count)
                SELECT * FROM unnest(
                    \(keys.map(\.endpoint.bucket))::bigint[], \(keys.map(\.endpoint.route))::text[],
                    \(keys.map(\.endpoint.endpoint))::text[], \(keys.map(\.signature))::text[],
                    \(signatures.map(\.value))::bigint[]
                )
                ON CONFLICT (bucket, route, endpoint, signature) DO UPDATE SET count = m.count + excluded.count
                """
            )
        }
        let waits = aggregates.waits.sorted {
            Self.less($0.key.endpoint, $1.key.endpoint, then: $0.key.bound < $1.key.bound)
        }
        if !waits.isEmpty {
            let keys = waits.map(\.key)
            try await session.execute(
                """
                INSERT INTO shadow_wait_minutes AS m (bucket, route, endpoint, le, count, sum)
                SELECT * FROM unnest(
                    \(keys.map(\.endpoint.bucket))::bigint[], \(keys.map(\.endpoint.route))::text[],
                    \(keys.map(\.endpoint.endpoint))::text[], \(keys.map(\.bound))::bigint[],
                    \(waits.map { $0.value.count })::bigint[], \(waits.map { $0.value.sum })::bigint[]
                )
                ON CONFLICT (bucket, route, endpoint, le) DO UPDATE SET
                    count = m.count + excluded.count,
                    sum = m.sum + excluded.sum
                """
            )
        }
    }

    /// Whether endpoint minute `lhs` sorts before `rhs`, with `then` deciding between equal ones.
    private static func less(
        _ lhs: ShadowAggregates.EndpointKey,
        _ rhs: ShadowAggregates.EndpointKey,
        then: @autoclosure () -> Bool = false
    ) -> Bool {
        if (lhs.bucket, lhs.route, lhs.endpoint) != (rhs.bucket, rhs.route, rhs.endpoint) {
            return (lhs.bucket, lhs.route, lhs.endpoint) < (rhs.bucket, rhs.route, rhs.endpoint)
        }
        return then()
    }

    /// Adds drop counts (summed per key first: one statement cannot update a row twice), then the aggregate
    /// retention, in one transaction.
    func writeShadowDrops(_ drops: [ShadowDropCount], retention: ShadowRetention) async throws {
        var sums: [ShadowDropCount: Int] = [:]
        for drop in drops {
            var key = drop
            key.count = 0
            sums[key, default: 0] += drop.count
        }
        let rows = sums.sorted {
            ($0.key.minute, $0.key.route, $0.key.endpoint, $0.key.reason, $0.key.sent ? 1 : 0)
                < ($1.key.minute, $1.key.route, $1.key.endpoint, $1.key.reason, $1.key.sent ? 1 : 0)
        }
        let keys = rows.map(\.key)
        try await self.telemetryTransaction { session in
            let now = try await self.telemetryNow(session)
            try await session.execute(
                """
                INSERT INTO shadow_drop_minutes AS m (bucket, route, endpoint, reason, sent, count)
                SELECT * FROM unnest(
                    \(keys.map(\.minute))::bigint[], \(keys.map(\.route))::text[], \(keys.map(\.endpoint))::text[],
                    \(keys.map(\.reason))::text[], \(keys.map(\.sent))::boolean[], \(rows.map(\.value))::bigint[]
                )
                ON CONFLICT (bucket, route, endpoint, reason, sent) DO UPDATE SET count = m.count + excluded.count
                """
            )
            try await Self.pruneShadowAggregates(session, retention: retention, now: now)
        }
    }

    /// Stores windows (the last copy of a key in the batch wins, as it replaces a stored one), then deletes windows
    /// older than the retention, in one transaction.
    func writeMetricWindows(_ windows: [MetricWindow], retention: ShadowRetention) async throws {
        var latest: [String: Int] = [:]
        var unique: [EncodedMetricWindow] = []
        for window in windows {
            let key = "\(window.start) \(window.route) \(window.upstream) \(window.proxy)"
            let encoded = try EncodedMetricWindow(window)
            if let at = latest[key] {
                unique[at] = encoded
            } else {
                latest[key] = unique.count
                unique.append(encoded)
            }
        }
        unique.sort {
            ($0.window.start, $0.window.route, $0.window.upstream, $0.window.proxy)
                < ($1.window.start, $1.window.route, $1.window.upstream, $1.window.proxy)
        }
        let plain = unique.map(\.window)
        try await self.telemetryTransaction { session in
            let now = try await self.telemetryNow(session)
            try await session.execute(
                """
                INSERT INTO metric_windows (
                    start, route, upstream, proxy, duration_ms, requests, server_errors,
                    latency_bounds, latency_counts, identity_hashes
                )
                SELECT start, route, upstream, proxy, duration_ms, requests, server_errors,
                    latency_bounds, latency_counts, CASE WHEN has_identities THEN identity_hashes END
                FROM unnest(
                    \(plain.map(\.start))::bigint[], \(plain.map(\.route))::text[], \(plain.map(\.upstream))::text[],
                    \(plain.map(\.proxy))::text[], \(plain.map(\.durationMilliseconds))::bigint[],
                    \(plain.map(\.requests))::bigint[], \(plain.map(\.serverErrors))::bigint[],
                    \(unique.map(\.bounds))::text[], \(unique.map(\.counts))::text[],
                    \(unique.map { $0.identities ?? "" })::text[], \(unique.map { $0.identities != nil })::boolean[]
                ) AS w(
                    start, route, upstream, proxy, duration_ms, requests, server_errors,
                    latency_bounds, latency_counts, identity_hashes, has_identities
                )
                ON CONFLICT (start, route, upstream, proxy) DO UPDATE SET
                    duration_ms = excluded.duration_ms, requests = excluded.requests,
                    server_errors = excluded.server_errors, latency_bounds = excluded.latency_bounds,
                    latency_counts = excluded.latency_counts, identity_hashes = excluded.identity_hashes
                """
            )
            let cutoff = Telemetry.microseconds(now.addingTimeInterval(-retention.maxMetricWindowAge))
            try await session.execute("DELETE FROM metric_windows WHERE start < \(cutoff)")
        }
    }

    /// Deletes records beyond the count bound (by id) and older than the age bound (by time); their fields go with
    /// them (`ON DELETE CASCADE`).
    ///
    /// Ids grow with insertion, so the newest `maxRecords` are those above `MAX(id) - maxRecords` (fewer when the
    /// age bound or a rolled-back batch left holes, never more), as in the SQLite store.
    static func pruneShadowRecords(_ session: PostgresSession, retention: ShadowRetention, now: Date) async throws {
        let keep = max(0, retention.maxRecords)
        try await session.execute(
            "DELETE FROM shadow_records WHERE id <= (SELECT MAX(id) FROM shadow_records) - \(keep)"
        )
        let cutoff = Telemetry.microseconds(now.addingTimeInterval(-retention.maxRecordAge))
        try await session.execute("DELETE FROM shadow_records WHERE time < \(cutoff)")
    }

    /// Deletes minute aggregates older than the aggregate age bound, every table in one statement.
    ///
    /// Every aggregate table is keyed by minute first, so each delete removes a prefix of its primary key.
    static func pruneShadowAggregates(_ session: PostgresSession, retention: ShadowRetention, now: Date) async throws {
        let cutoff = Telemetry.seconds(now.addingTimeInterval(-retention.maxAggregateAge))
        let deletes = Telemetry.aggregateTables.enumerated().map { index, table in
            "d\(index) AS (DELETE FROM \(table) WHERE bucket < $1)"
        }
        var binds = PostgresBindings()
        binds.append(cutoff, context: .default)
        try await session.execute(
            PostgresQuery(unsafeSQL: "WITH " + deletes.joined(separator: ", ") + " SELECT 1", binds: binds)
        )
    }

    /// The number of rows in each telemetry table.
    ///
    /// What retention bounds, for diagnostics and for tests of retention, which is about rows no query returns.
    func shadowTableSizes() async throws -> [String: Int] {
        let tables = ["shadow_records", "shadow_record_fields", "metric_windows"] + Telemetry.aggregateTables
        return try await self.perform { session in
            var sizes: [String: Int] = [:]
            for table in tables {
                sizes[table] =
                    try await session.row(
                        PostgresQuery(unsafeSQL: "SELECT COUNT(*) AS count FROM \(table)")
                    )?["count"].decode(Int.self) ?? 0
            }
            return sizes
        }
    }
}
