import FicusDiff
import Foundation

/// Telemetry is not kept on PostgreSQL yet (issue 18, item 7): every write and read of it throws
/// `StoreError.unsupported`, so that nothing is lost silently, and `storesTelemetry` is false so that a proxy on this
/// store does not compare shadow copies or write metric windows only to have them refused (docs/FLEET.md).
extension PostgresConfigurationStore: ShadowStore, StoreBackend {
    public var location: String { self.url.description }

    public var storesTelemetry: Bool { false }

    public var telemetryDrops: TelemetryDrops { TelemetryDrops() }

    public func appendShadowRecords(_ records: [ShadowRecord], retention: ShadowRetention) async throws {
        throw StoreError.unsupported("storing shadow records")
    }

    public func shadowEndpoints(route: String?, from: Date?, to: Date?) async throws -> [ShadowEndpointSummary] {
        throw StoreError.unsupported("reading shadow comparisons")
    }

    public func shadowTimeline(
        route: String?,
        from: Date?,
        to: Date?,
        bucketSeconds: Int,
        thresholds: NoiseThresholds?
    ) async throws -> [ShadowTimelinePoint] {
        throw StoreError.unsupported("reading shadow comparisons")
    }

    public func shadowSamples(
        route: String,
        endpoint: String,
        path: String?,
        kind: DifferenceKind?,
        limit: Int
    ) async throws -> [ShadowRecord] {
        throw StoreError.unsupported("reading shadow samples")
    }

    public func shadowDiffRate(
        route: String?,
        from: Date?,
        to: Date?,
        thresholds: NoiseThresholds
    ) async throws -> ShadowDiffRate {
        throw StoreError.unsupported("reading shadow diff rates")
    }

    public func appendShadowDrops(_ drops: [ShadowDropCount], retention: ShadowRetention) async throws {
        throw StoreError.unsupported("storing shadow drop counts")
    }

    public func distinctIdentities(route: String, from: Date?, to: Date?) async throws -> Int? {
        throw StoreError.unsupported("reading metric windows")
    }

    public func appendMetricWindows(_ windows: [MetricWindow], retention: ShadowRetention) async throws {
        throw StoreError.unsupported("storing metric windows")
    }

    public func metricWindows(route: String?, from: Date?, to: Date?) async throws -> [MetricWindow] {
        throw StoreError.unsupported("reading metric windows")
    }

    public func trafficSummary(route: String, from: Date?, to: Date?) async throws -> [UpstreamTraffic] {
        throw StoreError.unsupported("reading metric windows")
    }
}
