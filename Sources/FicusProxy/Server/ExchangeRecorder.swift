import Foundation
import Logging
import NIOCore

/// Records finished exchanges: request metrics (with the metric windows' sticky hashes) and the access log line.
///
/// Part of `ProxyConnectionHandler`'s shell, one per connection: a keep-alive connection mostly repeats the same route,
/// upstream and status class, so the last metrics lookup is kept, and the access log line is formatted into one
/// reused buffer.
struct ExchangeRecorder {
    private let shared: ProxyContext
    private var lastMetrics: (route: String, upstream: String, statusClass: Int, metrics: ProxyMetrics.RequestMetrics)?
    /// The access log line being formatted; reused from request to request.
    private var line = ByteBuffer()

    init(shared: ProxyContext) {
        self.shared = shared
    }

    // MARK: Events of an exchange in progress: logged, and counted where they have a metric

    /// The upstream failed (`failure`) while serving `exchange`.
    func reportUpstreamFailure(_ failure: UpstreamFailure, _ exchange: ProxyConnectionHandler.Exchange?) {
        self.shared.logger.warning(
            "upstream failed",
            metadata: [
                "upstream": "\(exchange?.upstreamName ?? "-")", "failure": "\(failure)",
                "route": "\(exchange?.route ?? "-")",
            ]
        )
    }

    /// `exchange` is sent again, its retry `number`, because of `reason`.
    func reportRetry(
        _ exchange: ProxyConnectionHandler.Exchange, number: Int, reason: ExchangeStateMachine.FallbackReason
    ) {
        self.shared.metrics?.retry(route: exchange.route, upstream: exchange.upstreamName, reason: reason.rawValue)
        self.shared.logger.info(
            "retry",
            metadata: [
                "route": "\(exchange.route)", "upstream": "\(exchange.upstreamName)", "retry": "\(number)",
                "reason": "\(reason.rawValue)", "request_id": "\(exchange.requestID)",
            ]
        )
    }

    /// The stream of `exchange` made no progress for the idle timeout; `stalled` names the side that stalled.
    func reportStall(_ stalled: String, _ exchange: ProxyConnectionHandler.Exchange?) {
        self.shared.logger.warning(
            "stream idle timeout",
            metadata: [
                "route": "\(exchange?.route ?? "-")", "upstream": "\(exchange?.upstreamName ?? "-")",
                "stalled": "\(stalled)", "client": "\(exchange?.client ?? "-")",
            ]
        )
    }

    /// `exchange` goes from its upstream to its fallback `name` because of `reason`; records where it came from.
    func reportFallback(
        _ exchange: ProxyConnectionHandler.Exchange, to name: String, reason: ExchangeStateMachine.FallbackReason
    ) {
        let from = exchange.upstreamName
        self.shared.metrics?.fallback(route: exchange.route, from: from, reason: reason.rawValue)
        self.shared.logger.notice(
            "fallback",
            metadata: [
                "route": "\(exchange.route)", "from": "\(from)", "to": "\(name)", "reason": "\(reason.rawValue)",
                "request_id": "\(exchange.requestID)",
            ]
        )
        exchange.fallbackFrom = "\(from):\(reason.rawValue)"
    }

    /// A kept copy answers `exchange` in place of a failure with `status`.
    func reportStaleAnswer(_ exchange: ProxyConnectionHandler.Exchange, replacing status: Int) {
        self.shared.metrics?.staleAnswer(route: exchange.route, upstream: exchange.upstreamName)
        self.shared.logger.notice(
            "stale answer",
            metadata: [
                "route": "\(exchange.route)", "upstream": "\(exchange.upstreamName)", "replacing": "\(status)",
                "request_id": "\(exchange.requestID)",
            ]
        )
    }

    // MARK: Finished exchanges

    /// Counts a failed attempt of `exchange` on the upstream it fell back from, as the client would have been
    /// answered (`status`): the failure stays in that upstream's metrics and windows, and so in canary gates.
    mutating func recordFailedAttempt(_ exchange: ProxyConnectionHandler.Exchange, status: Int) {
        guard let metrics = self.shared.metrics else { return }
        let duration = NIODeadline.now() - exchange.started
        metrics.requestMetrics(route: exchange.route, upstream: exchange.upstreamName, status: status)
            .record(status: status, duration: duration, stickyHash: exchange.stickyHash)
    }

    /// Counts a WebSocket handshake the upstream accepted: a request with status 101 (its duration up to the `101`),
    /// no longer in flight. Its access log line is the tunnel's, written when the tunnel ends.
    mutating func recordTunnelStarted(_ exchange: ProxyConnectionHandler.Exchange) {
        self.shared.metrics?.inFlight(delta: -1)
        guard let metrics = self.shared.metrics else { return }
        let duration = NIODeadline.now() - exchange.started
        metrics.requestMetrics(route: exchange.route, upstream: exchange.upstreamName, status: 101)
            .record(status: 101, duration: duration, stickyHash: exchange.stickyHash)
    }

    /// Counts `exchange` and writes its access log line; `peer` names the client when the exchange has none.
    mutating func record(_ exchange: ProxyConnectionHandler.Exchange, peer: String) {
        self.shared.metrics?.inFlight(delta: -1)
        let duration = NIODeadline.now() - exchange.started
        if let metrics = self.shared.metrics {
            // A stale copy stands in for a failure: the upstream's metrics record the failure, never a success.
            let status = exchange.staleFor ?? exchange.status
            let statusClass = status / 100
            if let last = self.lastMetrics, last.statusClass == statusClass, last.route == exchange.route,
                last.upstream == exchange.upstreamName
            {
                last.metrics.record(status: status, duration: duration, stickyHash: exchange.stickyHash)
            } else {
                let found = metrics.requestMetrics(route: exchange.route, upstream: exchange.upstreamName, status: status)
                self.lastMetrics = (exchange.route, exchange.upstreamName, statusClass, found)
                found.record(status: status, duration: duration, stickyHash: exchange.stickyHash)
            }
        }
        guard self.shared.configuration.accessLog, self.shared.logger.logLevel <= .info else { return }
        let entry = AccessLogEntry(
            time: Date(),
            method: exchange.methodString,
            path: exchange.path,
            status: exchange.status,
            route: exchange.route,
            upstream: exchange.upstreamName,
            durationNanoseconds: duration.nanoseconds,
            bytes: exchange.responseBytes,
            client: exchange.client == "-" ? peer : exchange.client,
            requestID: exchange.requestID,
            fallbackFrom: exchange.fallbackFrom,
            retries: exchange.retries,
            stale: exchange.staleFor != nil
        )
        let settings = self.shared.configuration.accessLogSettings
        if let sink = self.shared.accessLogSink {
            self.line.clear()
            entry.write(into: &self.line, settings: settings)
            sink.write(self.line)
            return
        }
        self.shared.logger.info(
            "request",
            metadata: [
                "method": "\(entry.method)",
                "path": "\(settings.redactQuery ? AccessLogEntry.redactingQuery(entry.path) : entry.path)",
                "status": .stringConvertible(entry.status),
                "route": "\(entry.route)",
                "upstream": "\(entry.upstream)",
                "duration_ms": .stringConvertible(Double(duration.nanoseconds / 1000) / 1000),
                "bytes": .stringConvertible(entry.bytes),
                "client": "\(entry.client)",
                "request_id": "\(entry.requestID)",
                "fallback": "\(entry.fallbackFrom ?? "-")",
                "retries": .stringConvertible(entry.retries),
                "stale": "\(entry.stale)",
            ]
        )
    }
}
