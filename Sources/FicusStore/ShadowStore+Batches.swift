import FicusDiff
import Foundation

/// The units, table names and checks of telemetry, the same for every backend.
///
/// Records and windows carry microseconds and aggregates whole-second minute buckets on every backend, so that the
/// same traffic gives the same numbers whatever store keeps it.
enum Telemetry {
    /// The per-minute aggregate tables.
    ///
    /// Retention treats them alike.
    static let aggregateTables = [
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

    /// Refuses a batch of windows with a window whose latency counts do not fit its bounds, before anything is
    /// written: summing it with others would produce nonsense percentiles.
    static func check(_ windows: [MetricWindow]) throws {
        for window in windows {
            let bounds = window.latencyBucketBounds.count
            let counts = window.latencyBucketCounts.count
            guard counts == bounds || counts == bounds + 1 else {
                throw StoreError.rejected(
                    "metric window of route '\(window.route)' upstream '\(window.upstream)' from proxy "
                        + "'\(window.proxy)' has \(bounds) latency bounds but \(counts) counts"
                )
            }
        }
    }

    /// Refuses a batch of drop counts with a count that is negative or not on a minute, before anything is written.
    static func check(_ drops: [ShadowDropCount]) throws {
        for drop in drops {
            guard drop.count >= 0, drop.minute % 60 == 0 else {
                throw StoreError.rejected(
                    "shadow drop count of route '\(drop.route)' endpoint '\(drop.endpoint)' has minute \(drop.minute) "
                        + "and count \(drop.count); a minute is a multiple of 60 and a count is not negative"
                )
            }
        }
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

    /// Roughly the bytes the row takes in a store: bodies, JSON columns and a little for the rest.
    var estimatedBytes: Int64 {
        let bodies = self.record.requestBody.count + self.record.servingBody.count + self.record.shadowBody.count
        let json =
            self.differences.utf8.count + (self.noiseDifferences?.utf8.count ?? 0)
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
    /// Sorted keys keep equal values byte-for-byte equal, which keeps dumps of either backend diffable.
    static func json<Value: Encodable>(_ value: Value) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// A stored record: `plain` with the columns every backend stores as they are, and the JSON columns decoded
    /// into it.
    ///
    /// The inverse of `init(_:)`; a column that cannot be decoded is a damaged store and fails the query.
    static func decode(
        _ plain: ShadowRecord,
        differences: String,
        noiseDifferences: String?,
        requestHeaders: String,
        servingHeaders: String,
        shadowHeaders: String
    ) throws -> ShadowRecord {
        let decoder = JSONDecoder()
        var record = plain
        record.differences = try decoder.decode([Difference].self, from: Data(differences.utf8))
        record.noiseDifferences = try noiseDifferences.map {
            try decoder.decode([Difference].self, from: Data($0.utf8))
        }
        record.requestHeaders = try decoder.decode([ShadowRecord.Field].self, from: Data(requestHeaders.utf8))
        record.servingHeaders = try decoder.decode([ShadowRecord.Field].self, from: Data(servingHeaders.utf8))
        record.shadowHeaders = try decoder.decode([ShadowRecord.Field].self, from: Data(shadowHeaders.utf8))
        return record
    }
}

/// A metric window with its list columns encoded as JSON arrays, ready to be inserted.
///
/// Both backends keep the lists as JSON text, so that one encoding and one decoding serve both.
struct EncodedMetricWindow: Sendable {
    var window: MetricWindow
    var bounds: String
    var counts: String
    /// Nil when the proxy did not count identities.
    var identities: String?

    init(_ window: MetricWindow) throws {
        self.window = window
        self.bounds = try EncodedShadowRecord.json(window.latencyBucketBounds)
        self.counts = try EncodedShadowRecord.json(window.latencyBucketCounts)
        self.identities = try window.identityHashes.map { try EncodedShadowRecord.json($0) }
    }

    /// A stored window: `plain` with its plain columns, and the list columns decoded into it.
    ///
    /// The inverse of `init(_:)`.
    static func decode(_ plain: MetricWindow, bounds: String, counts: String, identities: String?) throws
        -> MetricWindow
    {
        let decoder = JSONDecoder()
        var window = plain
        window.latencyBucketBounds = try decoder.decode([Int].self, from: Data(bounds.utf8))
        window.latencyBucketCounts = try decoder.decode([Int].self, from: Data(counts.utf8))
        window.identityHashes = try identities.map { try decoder.decode([UInt32].self, from: Data($0.utf8)) }
        return window
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
                bucket: Telemetry.minuteBucket(ofMicroseconds: record.timestamp),
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
