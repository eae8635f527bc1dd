import FicusCore
import FicusDiff
import FicusProxy
import FicusStore
import Foundation
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle

/// Stores compared shadow records in the store.
struct StoreShadowSink: ShadowRecordSink {
    let store: any ShadowStore

    func write(_ records: [ShadowRecord]) async throws {
        try await self.store.appendShadowRecords(records)
    }
}

/// The comparison settings of every route, built once per routing table rather than once per comparison (each one
/// looks the route up and parses its ignored and sensitive paths).
final class CompareOptionsCache: Sendable {
    private let routing: RoutingState
    /// The table the options were built from (held, so that its identity cannot be reused) and the options by route.
    private let cache = NIOLockedValueBox<(table: RoutingTable?, options: [String: CompareOptions])>((nil, [:]))

    init(routing: RoutingState) {
        self.routing = routing
    }

    /// The options for `route` under the table the proxy serves now.
    func options(for route: String) -> CompareOptions {
        let table = self.routing.current
        if let cached = self.cache.withLockedValue({ cache -> CompareOptions? in
            if cache.table !== table { cache = (table, [:]) }
            return cache.options[route]
        }) {
            return cached
        }
        let built = compareOptions(for: route, in: table)
        self.cache.withLockedValue { cache in
            if cache.table === table { cache.options[route] = built }
        }
        return built
    }
}

/// The comparison settings a route's shadow policy asks for.
func compareOptions(for route: String, in table: RoutingTable) -> CompareOptions {
    var options = CompareOptions()
    guard let policy = table.configuration.routes.first(where: { $0.name == route })?.shadow else { return options }
    options.ignoredPaths += policy.ignorePaths
    options.sensitiveHeaders.formUnion(policy.sensitiveHeaders.map { $0.lowercased() })
    options.sensitivePaths += policy.sensitivePaths
    return options
}

/// Runs the shadow comparer and writes metric windows while the proxy serves; both drain on shutdown.
///
/// Comparing and storing happen here, beside the proxy and off its event loops: the proxy only enqueues.
struct ShadowFeed: Service {
    let comparer: ShadowComparer
    let metrics: ProxyMetrics
    let store: any ShadowStore
    let proxyID: String
    let windows: FicusNode.Configuration.Windows
    let clock: any NodeClock
    let logger: Logger
    /// The intervals of the active canaries, read before each window (`WindowPace`).
    var canaryIntervals: @Sendable () async -> [TimeInterval] = { [] }
    /// Where failed window writes are counted for the canary controller.
    var failures = WindowFailures()

    func run() async throws {
        // Unstructured, so that the last batches are stored even when the service group cancels this service once the
        // proxy has stopped: a cancelled store write would drop them.
        let comparing = Task { await self.comparer.run() }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    let interval = WindowPace.interval(
                        configured: self.windows.interval.seconds, canaryIntervals: await self.canaryIntervals())
                    try? await self.clock.sleep(for: .interval(interval))
                    await self.flushWindows()
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
        // Services stop in reverse order: the proxy has drained by the time this one is asked to stop, so nothing is
        // submitted any more; what is queued is stored before the comparer returns, and only then the last window.
        self.comparer.finish()
        await comparing.value
        await self.flushWindows()
    }

    /// Stores the windows that are complete and the shadow copies dropped meanwhile (by endpoint), in a task of its
    /// own: what is taken is never put back, so its write must not be cut short by the cancellation of the loop that
    /// asked for it.
    private func flushWindows() async {
        let now = Int64(self.clock.now.timeIntervalSince1970 * 1_000_000)
        let windows = self.metrics.takeWindows(proxy: self.proxyID, now: now)
        let drops = self.metrics.coverage.take()
        let store = self.store
        let logger = self.logger
        let failures = self.failures
        await Task {
            if !windows.isEmpty {
                let droppedBefore = store.telemetryDrops.windows
                do {
                    try await store.appendMetricWindows(windows)
                    // The telemetry file may drop a batch it cannot take rather than throw.
                    failures.record(max(0, store.telemetryDrops.windows - droppedBefore))
                } catch {
                    failures.record(windows.count)
                    logger.error("storing metric windows failed", metadata: ["error": "\(error)"])
                }
            }
            if !drops.isEmpty {
                do {
                    try await store.appendShadowDrops(drops)
                } catch {
                    logger.error("storing shadow drop counts failed", metadata: ["error": "\(error)"])
                }
            }
        }.value
    }
}
