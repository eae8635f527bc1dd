import Atomics
import FicusCore
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// The health of a proxy's upstream addresses and its retries in flight, shared by all of its event loops.
///
/// Pools are per event loop, but an address that failed on one loop must be out of rotation on all of them, and
/// `max_retries` is one number for the proxy: so one object per proxy (and another for the shadow side, whose
/// copies must never eject an address for clients) holds `OutlierState` and `RetryAdmission` behind a lock. It is
/// touched only for upstreams that have an outlier policy (once when an address is picked, once per outcome) and for
/// retries, so that upstreams without one pay nothing. Time is the caller's (the event loop's `now`).
final class UpstreamHealth: Sendable {
    /// Everything behind the lock, so that one acquisition answers one question.
    private struct State {
        /// Counters and ejections per address.
        var outliers = OutlierState()
        /// Retries in flight per upstream.
        var retries = RetryAdmission()
        /// Added to every `now` (tests move the ejection clock forward instead of sleeping).
        var skew: TimeAmount = .nanoseconds(0)
        /// Addresses that failed their active health checks, by upstream (`HealthChecker`), with the last failure.
        var unhealthy: [String: [String: String]] = [:]
    }

    /// The shared state; held only for map lookups and counter updates, never across I/O.
    private let state = NIOLockedValueBox(State())
    /// No address out of rotation (no ejection, no failed health check): `ejected` answers without the lock.
    /// Written under the lock after every change, read without it; a reader that races a change sees the state just
    /// before it, as it would had it taken the lock a moment earlier.
    private let nothingOut = ManagedAtomic(true)
    /// `OutlierState.isSettled`: a success changes nothing, so `record` returns without the lock. A healthy
    /// upstream's answers, the common case, then cost two atomic loads instead of two locked map lookups.
    private let settled = ManagedAtomic(true)
    /// Where ejections, the ejected gauge and `max_retries` overflows are counted.
    private let metrics: ProxyMetrics?
    /// Where each ejection is logged (a warning: an address leaving rotation is worth a line).
    private let logger: Logger?
    /// `side` label of the log lines: `serving` or `shadow`.
    private let side: String

    /// Creates an empty state (every address in rotation) for the serving side or, with `side: "shadow"`, the
    /// shadow loop's pool.
    init(metrics: ProxyMetrics?, logger: Logger?, side: String = "serving") {
        self.metrics = metrics
        self.logger = logger
        self.side = side
    }

    /// Whether `upstream` has anything that takes addresses out of rotation (ejection or health checks).
    static func watches(_ upstream: Upstream) -> Bool {
        upstream.outlier?.isEnabled == true || upstream.healthCheck != nil
    }

    /// The addresses of `upstream` out of rotation at `now`, ejected or failing their health checks; empty (without
    /// a lock) when it has neither an outlier policy nor a health check.
    ///
    /// A preview (`orders@green`) finds its health checks under the configured upstream's name, where both slots
    /// are checked.
    func ejected(_ upstream: Upstream, now: NIODeadline) -> [String] {
        guard Self.watches(upstream), !self.nothingOut.load(ordering: .relaxed) else { return [] }
        let (ejected, returned) = self.state.withLockedValue { state -> ([String], Int) in
            let unhealthy = state.unhealthy[Upstream.configuredName(upstream.name)].map { Array($0.keys) } ?? []
            guard state.outliers.ejectedCount > 0 else { return (unhealthy, 0) }
            let now = now + state.skew
            let returned = state.outliers.sweep(upstream: upstream.name, now: now)
            let ejected = state.outliers.ejected(upstream: upstream.name, now: now)
            if returned > 0 { self.publish(state) }
            return (unhealthy.isEmpty ? ejected : Array(Set(ejected).union(unhealthy)), returned)
        }
        if returned > 0 { self.returned(upstream: upstream.name, count: returned) }
        return ejected
    }

    /// Records the outcome of an exchange with `address` (`Endpoint.address`) of `upstream`, ejecting the address when
    /// that was one failure too many; nothing without an outlier policy. The address text is the caller's, built once
    /// per connection rather than once per answer (it was 2 % of a loaded proxy's CPU).
    func record(_ outcome: OutlierState.Outcome, upstream: Upstream, address: String, now: NIODeadline) {
        guard let policy = upstream.outlier, policy.isEnabled else { return }
        if case .status(let status) = outcome, status < 500, self.settled.load(ordering: .relaxed) { return }
        let count = upstream.addresses.count
        let (ejection, returned) = self.state.withLockedValue { state -> (OutlierState.Ejection?, Int) in
            let now = now + state.skew
            let returned = state.outliers.sweep(upstream: upstream.name, now: now)
            let ejection = state.outliers.record(
                outcome, upstream: upstream.name, address: address, addressCount: count, policy: policy,
                now: now)
            self.publish(state)
            return (ejection, returned)
        }
        if returned > 0 { self.returned(upstream: upstream.name, count: returned) }
        guard let ejection else { return }
        self.metrics?.ejection(upstream: ejection.upstream, reason: ejection.reason.rawValue, side: self.side)
        self.logger?.warning(
            "address ejected",
            metadata: [
                "upstream": "\(ejection.upstream)", "address": "\(ejection.address)",
                "reason": "\(ejection.reason.rawValue)", "times": "\(ejection.times)",
                "for_ms": "\(ejection.lengthMilliseconds)", "side": "\(self.side)",
            ]
        )
    }

    /// Takes `address` of `upstream` out of rotation (`healthy: false`, with the `failure` that says why) or brings
    /// it back, as its active health checks say; the gauge of unhealthy addresses follows.
    func setHealthChecked(upstream: String, address: String, healthy: Bool, failure: String? = nil) {
        let changed = self.state.withLockedValue { state -> Bool in
            var addresses = state.unhealthy[upstream] ?? [:]
            let changed: Bool
            if healthy {
                changed = addresses.removeValue(forKey: address) != nil
            } else {
                changed = addresses.updateValue(failure ?? "failing its health check", forKey: address) == nil
            }
            state.unhealthy[upstream] = addresses.isEmpty ? nil : addresses
            self.publish(state)
            return changed
        }
        if changed { self.metrics?.unhealthyAddresses(upstream: upstream, delta: healthy ? -1 : 1) }
    }

    /// The addresses failing their health checks with their last failure, by upstream (for `/upstreams`).
    func unhealthyAddresses() -> [String: [String: String]] {
        self.state.withLockedValue { $0.unhealthy }
    }

    /// Every address with a record and its state, swept at `now` (for `/upstreams`).
    func statuses(now: NIODeadline) -> [OutlierState.AddressStatus] {
        let (statuses, returned) = self.state.withLockedValue { state in
            let returned = state.outliers.sweepAll(now: now + state.skew)
            self.publish(state)
            let statuses = state.outliers.statuses().map { status -> OutlierState.AddressStatus in
                var shifted = status
                shifted.ejectedUntil = status.ejectedUntil.map { $0 - state.skew }
                return shifted
            }
            return (statuses, returned)
        }
        for (upstream, count) in returned { self.returned(upstream: upstream, count: count) }
        return statuses
    }

    /// Counts a re-send, fallback or retry to `upstream` if its `max_retries` allows one more in flight; false:
    /// refused, counted as `max_retries` overflow. Every true must be matched by `endRetry`.
    ///
    /// The question the exchange asks before it sends a request that already reached an upstream again.
    func beginRetry(_ upstream: Upstream) -> Bool {
        let limit = upstream.limits?.maxRetries ?? UpstreamLimits.defaultMaxRetries
        let admitted = self.state.withLockedValue { $0.retries.begin(upstream: upstream.name, limit: limit) }
        if !admitted { self.metrics?.overflow(upstream: upstream.name, reason: "max_retries") }
        return admitted
    }

    /// A retry admitted by `beginRetry` is over (its exchange finished, however).
    func endRetry(upstream: String) {
        self.state.withLockedValue { $0.retries.end(upstream: upstream) }
    }

    /// Moves this object's clock forward by `amount` (tests: an ejection ends without waiting for it).
    func advanceClock(by amount: TimeAmount) {
        self.state.withLockedValue { $0.skew = $0.skew + amount }
    }

    /// Retries in flight to `upstream` (tests).
    func retriesInFlight(_ upstream: String) -> Int {
        self.state.withLockedValue { $0.retries.inFlight[upstream] ?? 0 }
    }

    /// Publishes the lock-free summaries of `state`; called under the lock after every change.
    private func publish(_ state: State) {
        self.nothingOut.store(state.outliers.ejectedCount == 0 && state.unhealthy.isEmpty, ordering: .relaxed)
        self.settled.store(state.outliers.isSettled, ordering: .relaxed)
    }

    /// Lowers the ejected gauge for addresses found back in rotation.
    private func returned(upstream: String, count: Int) {
        self.metrics?.ejectedAddresses(upstream: upstream, delta: -count, side: self.side)
    }
}

/// One upstream address's health as a running proxy sees it, for the admin listener's `/upstreams`.
///
/// Every configured address is listed; those that never failed are in rotation with zero counts.
public struct UpstreamAddressState: Sendable, Codable, Equatable {
    /// Creates a state; see the properties.
    ///
    /// Built by `ProxyServer.upstreamStates()`, decoded by `ficus status --admin`.
    public init(
        upstream: String, address: String, weight: Int, outlierDetection: Bool, ejectedUntil: Date?,
        timesEjected: Int, consecutive5xx: Int, consecutiveGatewayFailures: Int, healthCheck: String? = nil,
        healthCheckFailure: String? = nil
    ) {
        self.healthCheck = healthCheck
        self.healthCheckFailure = healthCheckFailure
        self.upstream = upstream
        self.address = address
        self.weight = weight
        self.outlierDetection = outlierDetection
        self.ejectedUntil = ejectedUntil
        self.timesEjected = timesEjected
        self.consecutive5xx = consecutive5xx
        self.consecutiveGatewayFailures = consecutiveGatewayFailures
    }

    /// Whether requests may go to the address now.
    ///
    /// The one thing `ficus status` shows first.
    public var inRotation: Bool { self.ejectedUntil == nil && self.healthCheck != "unhealthy" }

    /// The upstream's name.
    ///
    /// Shadow-side state is not included: it never changes what clients get.
    public var upstream: String
    /// `host:port`.
    ///
    /// Weights are not part of an address's identity.
    public var address: String
    /// The address's weight (1 unless configured).
    ///
    /// Shown beside the state so that a skewed split is explained at a glance.
    public var weight: Int
    /// Whether the upstream has outlier ejection on.
    ///
    /// Without it an address is always in rotation.
    public var outlierDetection: Bool
    /// When the ejection ends, or nil while the address is in rotation.
    ///
    /// Wall-clock time, converted from the proxy's monotonic clock when asked.
    public var ejectedUntil: Date?
    /// How many times the address has been ejected (what the next ejection's length is multiplied by, before decay).
    ///
    /// Shows a flapping address.
    public var timesEjected: Int
    /// Answers with a 5xx status (and local failures) in a row.
    ///
    /// How close the address is to `consecutive_5xx`.
    public var consecutive5xx: Int
    /// `healthy` or `unhealthy` as the upstream's active health checks say, or nil when it has none.
    ///
    /// An unhealthy address is out of rotation until its checks pass again.
    public var healthCheck: String?
    /// Why the last check of an unhealthy address failed (`GET /healthz: status 503`, a refused TLS certificate),
    /// or nil while it is healthy.
    ///
    /// What an operator needs first when an address is out: a wrong certificate and a dead process look alike
    /// otherwise.
    public var healthCheckFailure: String?
    /// Gateway failures in a row.
    ///
    /// How close the address is to `consecutive_gateway_failure`.
    public var consecutiveGatewayFailures: Int

    private enum CodingKeys: String, CodingKey {
        case upstream
        case address
        case weight
        case outlierDetection = "outlier_detection"
        case ejectedUntil = "ejected_until"
        case timesEjected = "times_ejected"
        case consecutive5xx = "consecutive_5xx"
        case consecutiveGatewayFailures = "consecutive_gateway_failures"
        case healthCheck = "health_check"
        case healthCheckFailure = "health_check_failure"
    }
}
