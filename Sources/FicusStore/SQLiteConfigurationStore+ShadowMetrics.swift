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
        try Telemetry.check(windows)
        let rows = try windows.map(EncodedMetricWindow.init)
        let cutoff = Telemetry.microseconds(self.now().addingTimeInterval(-retention.maxMetricWindowAge))
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
                for row in rows {
                    let window = row.window
                    try statement.execute(arguments: [
                        window.start, window.route, window.upstream, window.proxy, window.durationMilliseconds,
                        window.requests, window.serverErrors, row.bounds, row.counts, row.identities,
                    ])
                }
                try db.execute(sql: "DELETE FROM metric_windows WHERE start < ?", arguments: [cutoff])
            }
        }
    }

    public func metricWindows(route: String?, from: Date?, to: Date?) async throws -> [MetricWindow] {
        let lower = from.map(Telemetry.microseconds) ?? Int64.min
        let upper = to.map(Telemetry.microseconds) ?? Int64.max
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

    /// A `metric_windows` row as a `MetricWindow`.
    ///
    /// The latency columns are JSON arrays of integers.
    static func metricWindow(_ row: Row) throws -> MetricWindow {
        try EncodedMetricWindow.decode(
            MetricWindow(
                start: row["start"],
                durationMilliseconds: row["duration_ms"],
                proxy: row["proxy"],
                route: row["route"],
                upstream: row["upstream"],
                requests: row["requests"],
                serverErrors: row["server_errors"],
                latencyBucketBounds: [],
                latencyBucketCounts: []
            ),
            bounds: row["latency_bounds"],
            counts: row["latency_counts"],
            identities: row["identity_hashes"]
        )
    }
}
