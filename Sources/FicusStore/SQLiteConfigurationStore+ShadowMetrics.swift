import FicusDiff
import Foundation
import GRDB

extension SQLiteConfigurationStore {
    /// Stores `windows` (replacing any window with the same start, proxy, route and upstream) and deletes windows
    /// older than the retention, in one write transaction.
    ///
    /// A window whose latency counts do not fit its bounds is refused with `StoreError.rejected` before anything is
    /// written: summing it with others would produce nonsense percentiles.
    public func appendMetricWindows(_ windows: [MetricWindow], retention: ShadowRetention) async throws {
        guard !windows.isEmpty else {
            return
        }
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
        let rows = try windows.map { window in
            (
                window,
                bounds: try EncodedShadowRecord.json(window.latencyBucketBounds),
                counts: try EncodedShadowRecord.json(window.latencyBucketCounts),
                identities: try window.identityHashes.map { try EncodedShadowRecord.json($0) }
            )
        }
        let cutoff = Self.microseconds(self.now().addingTimeInterval(-retention.maxMetricWindowAge))
        try await self.perform {
            try await self.writeTelemetry(windows: windows.count) { db in
                let statement = try db.cachedStatement(
                    sql: """
                        INSERT OR REPLACE INTO metric_windows (
                            start, route, upstream, proxy, duration_ms, requests, server_errors,
                            latency_bounds, latency_counts, identity_hashes
                        ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """
                )
                for (window, bounds, counts, identities) in rows {
                    try statement.execute(arguments: [
                        window.start, window.route, window.upstream, window.proxy, window.durationMilliseconds,
                        window.requests, window.serverErrors, bounds, counts, identities,
                    ])
                }
                try db.execute(sql: "DELETE FROM metric_windows WHERE start < ?", arguments: [cutoff])
            }
        }
    }

    public func metricWindows(route: String?, from: Date?, to: Date?) async throws -> [MetricWindow] {
        let lower = from.map(Self.microseconds) ?? Int64.min
        let upper = to.map(Self.microseconds) ?? Int64.max
        return try await self.perform {
            try await self.readTelemetry { db in
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT * FROM metric_windows
                        WHERE start >= :lower AND start < :upper AND (:route IS NULL OR route = :route)
                        ORDER BY start, route, upstream, proxy
                        """,
                    arguments: ["lower": lower, "upper": upper, "route": route]
                )
                .map(Self.metricWindow)
            }
        }
    }

    public func trafficSummary(route: String, from: Date?, to: Date?) async throws -> [UpstreamTraffic] {
        let windows = try await self.metricWindows(route: route, from: from, to: to)
        var totals: [String: (requests: Int, serverErrors: Int, latency: LatencyHistogram)] = [:]
        for window in windows {
            var total = totals[window.upstream] ?? (0, 0, LatencyHistogram())
            total.requests += window.requests
            total.serverErrors += window.serverErrors
            Self.add(window, to: &total.latency)
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

    /// Adds a window's latency buckets to `histogram`.
    ///
    /// `MetricWindow` says the last bucket is +inf: with one count more than bounds the extra count is that bucket,
    /// with as many counts as bounds the last bound stands for +inf whatever its value. Windows with other bounds
    /// merge into the union of the bounds.
    static func add(_ window: MetricWindow, to histogram: inout LatencyHistogram) {
        let counts = window.latencyBucketCounts
        let finite = counts.count > window.latencyBucketBounds.count
            ? window.latencyBucketBounds
            : Array(window.latencyBucketBounds.dropLast())
        for (index, count) in counts.enumerated() {
            histogram.add(bound: index < finite.count ? finite[index] : LatencyHistogram.infinity, count: count)
        }
    }

    /// A `metric_windows` row as a `MetricWindow`.
    ///
    /// The latency columns are JSON arrays of integers.
    static func metricWindow(_ row: Row) throws -> MetricWindow {
        let decoder = JSONDecoder()
        return MetricWindow(
            start: row["start"],
            durationMilliseconds: row["duration_ms"],
            proxy: row["proxy"],
            route: row["route"],
            upstream: row["upstream"],
            requests: row["requests"],
            serverErrors: row["server_errors"],
            latencyBucketBounds: try decoder.decode([Int].self, from: Data((row["latency_bounds"] as String).utf8)),
            latencyBucketCounts: try decoder.decode([Int].self, from: Data((row["latency_counts"] as String).utf8)),
            identityHashes: try (row["identity_hashes"] as String?).map {
                try decoder.decode([UInt32].self, from: Data($0.utf8))
            }
        )
    }
}
