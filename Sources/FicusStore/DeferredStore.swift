import FicusCore
import FicusDiff
import Foundation
import NIOConcurrencyHelpers

/// A store that could not be opened yet: a proxy that started from its configuration cache while its store was
/// unreachable or unreadable (docs/FLEET.md, "Starting without the store").
///
/// Its watch keeps trying to open the store, with a back-off from 0.1 s doubling to 5 s, reporting each new failure
/// as `.failed`; once the store opens, the watch goes on as that store's watch (whose first event is the store's
/// newest revision) and every other call goes to the store. Until then every call throws the last attempt's error,
/// so heartbeats, telemetry and canary steps fail as they do when an opened store goes away.
public final class DeferredStore: StoreBackend {
    public let location: String
    public let storesTelemetry: Bool
    private let opener: @Sendable () async throws -> any StoreBackend
    private let opened = NIOLockedValueBox<(any StoreBackend)?>(nil)
    private let closed = NIOLockedValueBox(false)
    /// Why the store could not be opened at the last attempt: what every call throws until it opens.
    private let lastFailure: NIOLockedValueBox<any Error>
    /// The back-off between attempts to open.
    let firstPause: Duration
    let longestPause: Duration

    /// A store at `location` (as it may be printed) opened by `opener`, which already failed with `failure`;
    /// `storesTelemetry` is what the opened store will say (SQLite and PostgreSQL: true).
    public init(
        location: String,
        storesTelemetry: Bool,
        failure: any Error,
        firstPause: Duration = .milliseconds(100),
        longestPause: Duration = .seconds(5),
        opener: @escaping @Sendable () async throws -> any StoreBackend
    ) {
        self.location = location
        self.storesTelemetry = storesTelemetry
        self.firstPause = firstPause
        self.longestPause = longestPause
        self.opener = opener
        self.lastFailure = NIOLockedValueBox(failure)
    }

    /// The opened store, or nil while it could not be opened.
    public var store: (any StoreBackend)? { self.opened.withLockedValue { $0 } }

    /// Opens the store unless it is open; throws the opener's error.
    func open() async throws -> any StoreBackend {
        if let store = self.store {
            return store
        }
        let store: any StoreBackend
        do {
            store = try await self.opener()
        } catch {
            self.lastFailure.withLockedValue { $0 = error }
            throw error
        }
        // Closed meanwhile, or opened first by another caller: the store just opened is not needed.
        let (kept, isNew): ((any StoreBackend)?, Bool) = self.opened.withLockedValue { opened in
            if self.closed.withLockedValue({ $0 }) {
                return (nil, false)
            }
            if let earlier = opened {
                return (earlier, false)
            }
            opened = store
            return (store, true)
        }
        if !isNew {
            await store.close()
        }
        guard let kept else {
            throw StoreError.unreachable(store: self.location, detail: "the store was closed")
        }
        return kept
    }

    private func current() throws -> any StoreBackend {
        guard let store = self.store else {
            throw self.lastFailure.withLockedValue { $0 }
        }
        return store
    }

    public func close() async {
        self.closed.withLockedValue { $0 = true }
        await self.store?.close()
    }

    public func watch(pollInterval: TimeInterval) -> AsyncStream<StoreEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: StoreEvent.self, bufferingPolicy: .bufferingNewest(16))
        let task = Task {
            var pause = self.firstPause
            var reported: String?
            while !Task.isCancelled {
                let store: any StoreBackend
                do {
                    store = try await self.open()
                } catch {
                    guard !Task.isCancelled else { break }
                    let message = "\(error)"
                    if message != reported {
                        reported = message
                        continuation.yield(.failed("\(message); serving the configuration cache until it opens"))
                    }
                    try? await Task.sleep(for: pause)
                    pause = min(pause * 2, self.longestPause)
                    continue
                }
                for await event in store.watch(pollInterval: pollInterval) {
                    continuation.yield(event)
                }
                break
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in
            task.cancel()
        }
        return stream
    }

    // MARK: ConfigurationStore

    public func latest() async throws -> StoredRevision? {
        try await self.current().latest()
    }

    public func revision(_ number: Int) async throws -> StoredRevision {
        try await self.current().revision(number)
    }

    public func history(limit: Int?, route: String?) async throws -> [RevisionSummary] {
        try await self.current().history(limit: limit, route: route)
    }

    public func revisionStorage(_ number: Int) async throws -> RevisionStorage {
        try await self.current().revisionStorage(number)
    }

    @discardableResult
    public func commit(
        _ author: ChangeAuthor,
        expectRevision: Int?,
        allowingRuleNamesFrom restoredFrom: Int?,
        change: @Sendable (inout FicusCore.Configuration) throws -> Void
    ) async throws -> StoredRevision {
        try await self.current().commit(
            author, expectRevision: expectRevision, allowingRuleNamesFrom: restoredFrom, change: change)
    }

    public func ruleNamesEverUsed() async throws -> Set<String> {
        try await self.current().ruleNamesEverUsed()
    }

    @discardableResult
    public func rollback(to number: Int, _ author: ChangeAuthor) async throws -> StoredRevision {
        try await self.current().rollback(to: number, author)
    }

    public func appendAudit(_ author: ChangeAuthor, revision: Int?, detail: String) async throws {
        try await self.current().appendAudit(author, revision: revision, detail: detail)
    }

    public func audit(limit: Int?) async throws -> [AuditEntry] {
        try await self.current().audit(limit: limit)
    }

    public func heartbeat(_ proxy: ProxyHeartbeat) async throws {
        try await self.current().heartbeat(proxy)
    }

    public func proxies(seenWithin interval: TimeInterval) async throws -> [ProxyHeartbeat] {
        try await self.current().proxies(seenWithin: interval)
    }

    // MARK: RolloutStore

    public func canary(route: String) async throws -> CanaryRow? {
        try await self.current().canary(route: route)
    }

    public func canaries(activeOnly: Bool) async throws -> [CanaryRow] {
        try await self.current().canaries(activeOnly: activeOnly)
    }

    @discardableResult
    public func writeCanary(
        _ row: CanaryRow,
        expectVersion: Int?,
        author: ChangeAuthor,
        change: (@Sendable (inout FicusCore.Configuration) throws -> Void)?
    ) async throws -> (row: CanaryRow, revision: StoredRevision?) {
        try await self.current().writeCanary(row, expectVersion: expectVersion, author: author, change: change)
    }

    @discardableResult
    public func commit(
        _ author: ChangeAuthor,
        expectRevision: Int?,
        allowingRuleNamesFrom restoredFrom: Int?,
        overridingCanaries hook: CanaryOverrideHook,
        change: @Sendable (inout FicusCore.Configuration) throws -> Void
    ) async throws -> StoredRevision {
        try await self.current().commit(
            author,
            expectRevision: expectRevision,
            allowingRuleNamesFrom: restoredFrom,
            overridingCanaries: hook,
            change: change
        )
    }

    @discardableResult
    public func rollback(
        to number: Int,
        _ author: ChangeAuthor,
        overridingCanaries hook: CanaryOverrideHook
    ) async throws -> StoredRevision {
        try await self.current().rollback(to: number, author, overridingCanaries: hook)
    }

    public func canaryLease(route: String) async throws -> CanaryLeaseRow? {
        try await self.current().canaryLease(route: route)
    }

    public func writeCanaryLease(route: String, _ lease: CanaryLeaseRow, replacing: CanaryLeaseRow?) async throws
        -> Bool
    {
        try await self.current().writeCanaryLease(route: route, lease, replacing: replacing)
    }

    public func releaseCanaryLease(route: String, holder: String) async throws {
        try await self.current().releaseCanaryLease(route: route, holder: holder)
    }

    // MARK: BlueGreenStore

    public func blueGreen(upstream: String) async throws -> BlueGreenRow? {
        try await self.current().blueGreen(upstream: upstream)
    }

    @discardableResult
    public func writeBlueGreen(
        upstream: String,
        stateJSON: Data,
        expectVersion: Int,
        expectRevision: Int,
        author: ChangeAuthor,
        change: (@Sendable (inout FicusCore.Configuration) throws -> Void)?
    ) async throws -> StoredRevision? {
        try await self.current().writeBlueGreen(
            upstream: upstream,
            stateJSON: stateJSON,
            expectVersion: expectVersion,
            expectRevision: expectRevision,
            author: author,
            change: change
        )
    }

    // MARK: HistoryStore

    public func exportHistory() async throws -> StoreHistory {
        try await self.current().exportHistory()
    }

    public func importHistory(_ history: StoreHistory) async throws {
        try await self.current().importHistory(history)
    }

    // MARK: ShadowStore

    public func appendShadowRecords(_ records: [ShadowRecord], retention: ShadowRetention) async throws {
        try await self.current().appendShadowRecords(records, retention: retention)
    }

    public func shadowEndpoints(route: String?, from: Date?, to: Date?) async throws -> [ShadowEndpointSummary] {
        try await self.current().shadowEndpoints(route: route, from: from, to: to)
    }

    public func shadowTimeline(
        route: String?,
        from: Date?,
        to: Date?,
        bucketSeconds: Int,
        thresholds: NoiseThresholds?
    ) async throws -> [ShadowTimelinePoint] {
        try await self.current().shadowTimeline(
            route: route, from: from, to: to, bucketSeconds: bucketSeconds, thresholds: thresholds)
    }

    public func shadowSamples(
        route: String,
        endpoint: String,
        path: String?,
        kind: DifferenceKind?,
        limit: Int
    ) async throws -> [ShadowRecord] {
        try await self.current().shadowSamples(route: route, endpoint: endpoint, path: path, kind: kind, limit: limit)
    }

    public func shadowDiffRate(
        route: String?,
        from: Date?,
        to: Date?,
        thresholds: NoiseThresholds
    ) async throws -> ShadowDiffRate {
        try await self.current().shadowDiffRate(route: route, from: from, to: to, thresholds: thresholds)
    }

    public func appendShadowDrops(_ drops: [ShadowDropCount], retention: ShadowRetention) async throws {
        try await self.current().appendShadowDrops(drops, retention: retention)
    }

    public func distinctIdentities(route: String, from: Date?, to: Date?) async throws -> Int? {
        try await self.current().distinctIdentities(route: route, from: from, to: to)
    }

    public func appendMetricWindows(_ windows: [MetricWindow], retention: ShadowRetention) async throws {
        try await self.current().appendMetricWindows(windows, retention: retention)
    }

    public func metricWindows(route: String?, from: Date?, to: Date?) async throws -> [MetricWindow] {
        try await self.current().metricWindows(route: route, from: from, to: to)
    }

    public func trafficSummary(route: String, from: Date?, to: Date?) async throws -> [UpstreamTraffic] {
        try await self.current().trafficSummary(route: route, from: from, to: to)
    }

    public var telemetryDrops: TelemetryDrops {
        self.store?.telemetryDrops ?? TelemetryDrops()
    }
}
