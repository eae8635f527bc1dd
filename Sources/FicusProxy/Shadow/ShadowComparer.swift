import CoreMetrics
import FicusDiff
import Foundation
import Logging
import NIOConcurrencyHelpers

/// Where compared shadow records go: the store, in production.
public protocol ShadowRecordSink: Sendable {
    func write(_ records: [ShadowRecord]) async throws
}

/// Compares shadow observations and hands the records to a sink in batches.
///
/// `submit` is called on the proxy's shadow loop, never on a loop that serves clients: it compares there (the shadow
/// thread runs at a lower priority than the client loops) and enqueues the record into a bounded queue that `run`
/// stores in batches. When storing falls behind, records are dropped and counted, and the client path never waits.
public final class ShadowComparer: ShadowSink, Sendable {
    /// Per-route comparison settings (ignored paths, sensitive fields).
    public typealias OptionsProvider = @Sendable (_ route: String) -> CompareOptions

    private let queue = NIOLockedValueBox<[ShadowRecord]>([])
    private let queueLimit: Int
    private let signals: AsyncStream<Void>
    private let signal: AsyncStream<Void>.Continuation
    private let sink: ShadowRecordSink
    private let options: OptionsProvider
    private let batchSize: Int
    private let gatherMilliseconds: Int
    private let logger: Logger
    private let factory: MetricsFactory?
    private let counters: CounterCache?
    /// Where observations and records dropped here are counted by endpoint (the proxy's `ProxyMetrics.coverage`).
    private let coverage: ShadowCoverage?
    /// Shadow latency timers by route and upstream.
    private let timers = NIOLockedValueBox<[[String]: CoreMetrics.Timer]>([:])

    public init(
        sink: ShadowRecordSink,
        queueLimit: Int = 1000,
        batchSize: Int = 100,
        gatherMilliseconds: Int = 100,
        logger: Logger,
        metrics: MetricsFactory?,
        coverage: ShadowCoverage? = nil,
        options: @escaping OptionsProvider = { _ in CompareOptions() }
    ) {
        self.queueLimit = queueLimit
        (self.signals, self.signal) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        self.sink = sink
        self.options = options
        self.batchSize = batchSize
        self.gatherMilliseconds = gatherMilliseconds
        self.logger = logger
        self.factory = metrics
        self.counters = metrics.map { CounterCache(factory: $0) }
        self.coverage = coverage
    }

    public func submit(_ observation: ShadowObservation) {
        let full = self.queue.withLockedValue { $0.count >= self.queueLimit }
        guard !full else {
            self.dropped(
                route: observation.route,
                endpoint: ShadowRecord.endpoint(method: observation.method, target: observation.target),
                reason: "comparer_queue_full"
            )
            return
        }
        let record = self.record(for: observation)
        let queued = self.queue.withLockedValue { queue -> Bool in
            guard queue.count < self.queueLimit else { return false }
            queue.append(record)
            return true
        }
        if queued {
            self.signal.yield(())
        } else {
            self.dropped(route: record.route, endpoint: record.endpoint, reason: "comparer_queue_full")
        }
    }

    /// Counts a copy that was sent but whose comparison is lost, by route and reason and by endpoint.
    private func dropped(route: String, endpoint: String, reason: String) {
        self.count("ficus_shadow_dropped_total", [("route", route), ("reason", reason)])
        self.coverage?.dropped(route: route, endpoint: endpoint, reason: reason, sent: true)
    }

    /// Stops taking observations; `run` returns once what is queued has been compared and stored.
    public func finish() {
        self.signal.finish()
    }

    /// Compares and stores until `finish` is called.
    ///
    /// Everything queued while the previous batch gathered or was being written becomes the next batch, so batches
    /// grow with the load and a quiet proxy stores a record within a fraction of a second.
    public func run() async {
        for await _ in self.signals {
            // Let a batch gather: one store transaction per interval instead of one per record at a steady rate.
            try? await Task.sleep(nanoseconds: UInt64(self.gatherMilliseconds) * 1_000_000)
            await self.drain()
        }
        await self.drain()
    }

    private func drain() async {
        while true {
            let records = self.queue.withLockedValue { queue -> [ShadowRecord] in
                defer { queue.removeAll(keepingCapacity: true) }
                return queue
            }
            guard !records.isEmpty else { return }
            var start = 0
            while start < records.count {
                let end = min(start + self.batchSize, records.count)
                var batch = Array(records[start..<end])
                await self.write(&batch)
                start = end
            }
        }
    }

    private func write(_ batch: inout [ShadowRecord]) async {
        guard !batch.isEmpty else { return }
        let records = batch
        batch.removeAll(keepingCapacity: true)
        do {
            try await self.sink.write(records)
        } catch {
            self.logger.error("storing shadow records failed", metadata: ["error": "\(error)", "records": "\(records.count)"])
            for record in records {
                self.dropped(route: record.route, endpoint: record.endpoint, reason: "store_failed")
            }
        }
    }

    /// Compares one observation into a redacted record (pure apart from metrics); a record that is not a sample
    /// (`ShadowRecord.isSample`) comes without headers and bodies.
    public func record(for observation: ShadowObservation) -> ShadowRecord {
        var options = self.options(observation.route)
        if observation.method == "HEAD" { options.compareBody = false }
        let endpoint = ShadowRecord.endpoint(method: observation.method, target: observation.target)
        var differences: [Difference] = []
        if let shadow = observation.shadow {
            differences = ResponseComparer.compare(serving: observation.serving, shadow: shadow, options: options)
                .differences
        }
        let noise = observation.second.map {
            ResponseComparer.compare(serving: observation.serving, shadow: $0, options: options).differences
        }
        let route = observation.route
        self.countComparison(route: route, failed: observation.shadowError != nil, differences: differences)
        if let shadow = observation.shadow {
            self.time(route: route, upstream: observation.shadowUpstream, microseconds: shadow.latencyMicroseconds)
        }
        let record = ShadowRecord(
            timestamp: observation.timestamp,
            route: route,
            endpoint: endpoint,
            method: observation.method,
            target: Redaction.redactTarget(observation.target, options: options),
            servingUpstream: observation.servingUpstream,
            shadowUpstream: observation.shadowUpstream,
            servingStatus: observation.serving.status,
            shadowStatus: observation.shadow?.status,
            servingLatencyMicroseconds: observation.serving.latencyMicroseconds,
            shadowLatencyMicroseconds: observation.shadow?.latencyMicroseconds,
            shadowError: observation.shadowError,
            differences: differences,
            noiseDifferences: noise,
            requestHeaders: [],
            requestBody: [],
            servingHeaders: [],
            servingBody: [],
            servingTruncated: observation.serving.truncated,
            shadowHeaders: [],
            shadowBody: [],
            shadowTruncated: observation.shadow?.truncated ?? false,
            shadowWaitMicroseconds: observation.shadowWaitMicroseconds,
            requestID: observation.requestID
        )
        // An identical comparison is only counted (see `ShadowRecord.isSample`): its headers and bodies would be
        // redacted and copied for nothing.
        guard record.isSample else { return record }
        return self.withMessages(record, observation, options)
    }

    /// `record` with the request's and both answers' headers and bodies, redacted.
    private func withMessages(
        _ record: ShadowRecord,
        _ observation: ShadowObservation,
        _ options: CompareOptions
    ) -> ShadowRecord {
        var record = record
        let serving = Redaction.redact(observation.serving, options: options)
        let shadow = observation.shadow.map { Redaction.redact($0, options: options) }
        let requestHeaders = Redaction.redactHeaders(observation.requestHeaders, options: options)
        let contentType = observation.requestHeaders.first { $0.0.lowercased() == "content-type" }?.1
        record.requestHeaders = requestHeaders.map { ShadowRecord.Field(name: $0.0, value: $0.1) }
        record.requestBody = Redaction.redactBody(observation.requestBody, contentType: contentType, options: options)
        record.servingHeaders = serving.headers.map { ShadowRecord.Field(name: $0.0, value: $0.1) }
        record.servingBody = serving.body
        record.shadowHeaders = (shadow?.headers ?? []).map { ShadowRecord.Field(name: $0.0, value: $0.1) }
        record.shadowBody = shadow?.body ?? []
        return record
    }

    /// Counts one comparison in `ficus_shadow_compared_total` and, by outcome, the error or difference counters.
    private func countComparison(route: String, failed: Bool, differences: [Difference]) {
        self.count("ficus_shadow_compared_total", [("route", route)])
        if failed {
            self.count("ficus_shadow_errors_total", [("route", route)])
        } else if !differences.isEmpty {
            self.count("ficus_shadow_differing_total", [("route", route)])
            for kind in Set(differences.map(\.kind)) {
                self.count("ficus_shadow_differences_total", [("route", route), ("kind", kind.rawValue)])
            }
        }
    }

    private func count(_ label: String, _ dimensions: [(String, String)]) {
        self.counters?.counter(label, dimensions).increment()
    }

    private func time(route: String, upstream: String, microseconds: Int) {
        guard let factory = self.factory else { return }
        let key = [route, upstream]
        self.timers.withLockedValue { cache in
            if let cached = cache[key] { return cached }
            let created = CoreMetrics.Timer(
                label: "ficus_shadow_latency_seconds",
                dimensions: [("route", route), ("upstream", upstream)],
                factory: factory
            )
            cache[key] = created
            return created
        }.recordMicroseconds(microseconds)
    }
}
