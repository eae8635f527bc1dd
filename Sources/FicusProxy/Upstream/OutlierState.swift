import FicusCore
import NIOCore

/// Which addresses of which upstreams are out of rotation after failing in a row, as a value: outcomes in,
/// ejections out (docs/PROXY.md, "Outlier ejection").
///
/// Pure, with the time passed in, so that ejection, its length and the return to rotation are tested with a manual
/// clock; `UpstreamHealth` holds one behind a lock for all of a proxy's event loops, since an address that fails on
/// one loop must be out of rotation on every loop. The rules are Envoy's outlier detection (consecutive 5xx,
/// consecutive gateway failures, ejection time = base × times ejected up to a maximum, at most a share of the
/// addresses, at least one), with one difference the issue asks for: an address back in rotation is on probation,
/// and its first failure ejects it again.
struct OutlierState {
    /// What an exchange with an address came to, as far as its health is concerned.
    enum Outcome: Equatable {
        /// An answer below 500 (or a 5xx that is not a gateway failure resets the gateway counter only).
        case status(Int)
        /// The address could not be reached or did not answer: a connect failure or timeout, a reset before the
        /// answer, no answer in time, an answer that does not parse. Counts as a 5xx and as a gateway failure.
        case localFailure
    }

    /// Which counter ejected an address (the `reason` label of `ficus_upstream_ejections_total`).
    enum Reason: String, Equatable {
        case consecutive5xx = "consecutive_5xx"
        case consecutiveGatewayFailure = "consecutive_gateway_failure"
    }

    /// An address taken out of rotation.
    struct Ejection: Equatable {
        /// The upstream's name.
        var upstream: String
        /// `host:port`.
        var address: String
        /// The counter that reached its limit.
        var reason: Reason
        /// When the address is back in rotation.
        var until: NIODeadline
        /// Times the address has now been ejected (after decay), which multiplied the base time.
        var times: Int
        /// How long the ejection lasts.
        var lengthMilliseconds: Int64
    }

    /// What is known of one address.
    struct AddressRecord: Equatable {
        /// 5xx answers (and local failures) in a row.
        var consecutive5xx = 0
        /// Gateway failures in a row.
        var consecutiveGatewayFailures = 0
        /// Ejections so far, lowered by time healthy in rotation: what the next ejection's length multiplies.
        var timesEjected = 0
        /// Set while the address is out of rotation.
        var ejectedUntil: NIODeadline?
        /// When the address last came back, for the decay of `timesEjected`.
        var returnedAt: NIODeadline?
        /// Back from an ejection with no success since: the next failure ejects it again.
        var probation = false
    }

    /// One address's state, for `/upstreams` and `ficus status`.
    struct AddressStatus: Equatable {
        /// The upstream's name.
        var upstream: String
        /// `host:port`.
        var address: String
        /// Nil while in rotation.
        var ejectedUntil: NIODeadline?
        /// See `AddressRecord`.
        var timesEjected: Int
        /// See `AddressRecord`.
        var consecutive5xx: Int
        /// See `AddressRecord`.
        var consecutiveGatewayFailures: Int
    }

    /// Every address with a record, by upstream and `host:port`; an address without one is in rotation with no
    /// failures (successes of such addresses write nothing).
    private(set) var upstreams: [String: [String: AddressRecord]] = [:]

    /// Addresses out of rotation right now, over all upstreams (expired ejections are counted until swept).
    private(set) var ejectedCount = 0

    /// Addresses whose next success would change their record: a failure counter above zero, or on probation. While
    /// it and `ejectedCount` are zero, a success changes nothing (`isSettled`), which lets `UpstreamHealth` skip its
    /// lock for the answers of a healthy upstream.
    private(set) var countingCount = 0

    /// Whether no address is out of rotation and a success would change no record.
    var isSettled: Bool { self.ejectedCount == 0 && self.countingCount == 0 }

    /// Whether a success would change `record` (see `countingCount`).
    private static func counts(_ record: AddressRecord?) -> Bool {
        guard let record else { return false }
        return record.consecutive5xx > 0 || record.consecutiveGatewayFailures > 0 || record.probation
    }

    /// Writes `record` over `old` (what was there), keeping `countingCount`.
    private mutating func put(_ record: AddressRecord, upstream: String, address: String, over old: AddressRecord?) {
        self.countingCount += (Self.counts(record) ? 1 : 0) - (Self.counts(old) ? 1 : 0)
        self.upstreams[upstream, default: [:]][address] = record
    }

    /// Records `outcome` of an exchange with `address` of `upstream` (which has `addressCount` addresses) under
    /// `policy`; returns the ejection it caused, if any.
    ///
    /// Outcomes of an address already out of rotation (exchanges that were under way) change nothing.
    mutating func record(
        _ outcome: Outcome,
        upstream: String,
        address: String,
        addressCount: Int,
        policy: OutlierPolicy,
        now: NIODeadline
    ) -> Ejection? {
        guard policy.isEnabled else { return nil }
        self.sweep(upstream: upstream, now: now)
        let old = self.upstreams[upstream]?[address]
        var record = old ?? AddressRecord()
        guard record.ejectedUntil == nil else { return nil }
        let failed: Bool
        let gateway: Bool
        switch outcome {
        case .status(let status) where status >= 500:
            failed = true
            gateway = status == 502 || status == 503 || status == 504
        case .status:
            failed = false
            gateway = false
        case .localFailure:
            failed = true
            gateway = true
        }
        if !failed {
            guard record != AddressRecord() else { return nil }  // the common case: nothing to write
            record.consecutive5xx = 0
            record.consecutiveGatewayFailures = 0
            record.probation = false
            self.put(record, upstream: upstream, address: address, over: old)
            return nil
        }
        record.consecutive5xx += 1
        record.consecutiveGatewayFailures = gateway ? record.consecutiveGatewayFailures + 1 : 0
        var reason: Reason?
        let gatewayLimit = policy.effectiveConsecutiveGatewayFailure
        let serverErrorLimit = policy.effectiveConsecutive5xx
        if gateway, gatewayLimit > 0, record.probation || record.consecutiveGatewayFailures >= gatewayLimit {
            reason = .consecutiveGatewayFailure
        } else if serverErrorLimit > 0, record.probation || record.consecutive5xx >= serverErrorLimit {
            reason = .consecutive5xx
        }
        guard let reason, self.mayEject(upstream: upstream, addressCount: addressCount, policy: policy) else {
            self.put(record, upstream: upstream, address: address, over: old)
            return nil
        }
        let base = Int64(policy.effectiveBaseEjectionTime.milliseconds)
        let maximum = Int64(policy.effectiveMaxEjectionTime.milliseconds)
        var times = record.timesEjected
        if let returned = record.returnedAt, base > 0 {
            // Envoy lowers the multiplier for each interval an address stays healthy; here each base time in
            // rotation takes one ejection off.
            let healthy = max(0, (now - returned).nanoseconds / 1_000_000)
            times = max(0, times - Int(min(healthy / base, Int64(Int32.max))))
        }
        times = min(times + 1, 10_000)
        let length = min(base * Int64(times), maximum)
        record.timesEjected = times
        record.ejectedUntil = now + .milliseconds(length)
        record.consecutive5xx = 0
        record.consecutiveGatewayFailures = 0
        record.probation = false
        self.put(record, upstream: upstream, address: address, over: old)
        self.ejectedCount += 1
        return Ejection(upstream: upstream, address: address, reason: reason, until: now + .milliseconds(length), times: times,
            lengthMilliseconds: length)
    }

    /// Whether one more address of `upstream` may go: fewer are out than `max_ejection_percent` of its addresses,
    /// and never fewer than one may (Envoy ejects one host whatever the percentage).
    private func mayEject(upstream: String, addressCount: Int, policy: OutlierPolicy) -> Bool {
        let out = self.upstreams[upstream]?.values.lazy.filter { $0.ejectedUntil != nil }.count ?? 0
        let allowed = max(1, addressCount * policy.effectiveMaxEjectionPercent / 100)
        return out < allowed
    }

    /// Puts every address of `upstream` whose ejection is over back in rotation, on probation; returns how many.
    @discardableResult
    mutating func sweep(upstream: String, now: NIODeadline) -> Int {
        guard self.ejectedCount > 0, var records = self.upstreams[upstream] else { return 0 }
        var returned = 0
        for (address, record) in records {
            guard let until = record.ejectedUntil, until <= now else { continue }
            var updated = record
            updated.ejectedUntil = nil
            updated.returnedAt = now
            updated.probation = true
            records[address] = updated
            if !Self.counts(record) { self.countingCount += 1 }  // back on probation
            returned += 1
        }
        guard returned > 0 else { return 0 }
        self.upstreams[upstream] = records
        self.ejectedCount -= returned
        return returned
    }

    /// The addresses of `upstream` out of rotation at `now` (after putting back those whose time is up).
    mutating func ejected(upstream: String, now: NIODeadline) -> [String] {
        guard self.ejectedCount > 0 else { return [] }
        self.sweep(upstream: upstream, now: now)
        guard let records = self.upstreams[upstream] else { return [] }
        return records.compactMap { $0.value.ejectedUntil == nil ? nil : $0.key }.sorted()
    }

    /// Every address with a record, by upstream and address; addresses never seen are in rotation.
    func statuses() -> [AddressStatus] {
        var result: [AddressStatus] = []
        for (upstream, records) in self.upstreams {
            for (address, record) in records {
                result.append(
                    AddressStatus(
                        upstream: upstream,
                        address: address,
                        ejectedUntil: record.ejectedUntil,
                        timesEjected: record.timesEjected,
                        consecutive5xx: record.consecutive5xx,
                        consecutiveGatewayFailures: record.consecutiveGatewayFailures
                    )
                )
            }
        }
        return result.sorted { ($0.upstream, $0.address) < ($1.upstream, $1.address) }
    }

    /// Sweeps every upstream; returns how many addresses came back, by upstream.
    mutating func sweepAll(now: NIODeadline) -> [String: Int] {
        var returned: [String: Int] = [:]
        for upstream in Array(self.upstreams.keys) {
            let count = self.sweep(upstream: upstream, now: now)
            if count > 0 { returned[upstream] = count }
        }
        return returned
    }
}

/// How many re-sends, fallbacks and retries of requests that already reached an upstream are in flight to each
/// upstream, against its `max_retries` (Envoy's `max_retries` circuit breaker).
///
/// Pure; `UpstreamHealth` holds it for the whole proxy.
struct RetryAdmission {
    /// Retries in flight by upstream; an upstream with none has no entry.
    private(set) var inFlight: [String: Int] = [:]

    /// Counts one more retry to `upstream` if fewer than `limit` are in flight; false: refused.
    mutating func begin(upstream: String, limit: Int) -> Bool {
        let current = self.inFlight[upstream, default: 0]
        guard current < limit else { return false }
        self.inFlight[upstream] = current + 1
        return true
    }

    /// A retry counted by `begin` is over.
    mutating func end(upstream: String) {
        guard let current = self.inFlight[upstream] else { return }
        self.inFlight[upstream] = current > 1 ? current - 1 : nil
    }
}
