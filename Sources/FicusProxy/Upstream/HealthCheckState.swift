import FicusCore
import NIOCore

/// Which addresses are due for an active health check, and what the answers make of them, as a value: time passed
/// in, probes out, transitions out (docs/PROXY.md, "Active health checks").
///
/// `HealthChecker` runs the probes and reports their outcome here; tests drive it with a manual clock. An address is
/// healthy until `unhealthy` checks in a row failed, then unhealthy until `healthy` checks in a row succeeded
/// (Envoy's thresholds). A new address is checked at once and counts as healthy meanwhile. Both slots of a blue-green
/// upstream are checked, under the upstream's name.
struct HealthCheckState {
    /// One address of one upstream.
    struct Target: Hashable, Sendable {
        var upstream: String
        /// `host:port`, as outlier ejection names addresses.
        var address: String
    }

    /// A check to run now.
    struct Probe: Sendable {
        var target: Target
        var endpoint: Endpoint
        /// The request line's target and the Host field.
        var path: String
        var host: String
        var timeout: TimeAmount
        var expect: [ClosedRange<Int>]
        /// The upstream's TLS files, used when `endpoint` is `https://` (the same as its request pools').
        var tls: UpstreamTLSSettings
    }

    /// A change of an address's health.
    enum Transition: Equatable {
        case unhealthy(Target)
        case healthy(Target)
    }

    /// What is known of one address.
    struct Record: Equatable {
        var healthy = true
        var successes = 0
        var failures = 0
        var nextDue: NIODeadline
        var inFlight = false
        /// The thresholds of the policy the address was last checked under.
        var healthyThreshold: Int
        var unhealthyThreshold: Int
        var interval: TimeAmount
    }

    private(set) var records: [Target: Record] = [:]

    /// The checks due at `now` among the addresses of `upstreams` that have a health check; addresses no longer
    /// configured (or no longer checked) are forgotten, and the transitions that forgetting makes (an unhealthy
    /// address that is gone is no longer out of rotation) are returned with them.
    /// The soonest `nextDue` of any address after the last `due`: before it, with the same upstreams, `due` finds
    /// nothing (a check that finishes does not move its address's `nextDue`, set when it was sent). Nil: none.
    private(set) var earliestDue: NIODeadline?

    mutating func due(upstreams: [Upstream], now: NIODeadline) -> (probes: [Probe], forgotten: [Target]) {
        var probes: [Probe] = []
        var seen = Set<Target>()
        for upstream in upstreams {
            guard let policy = upstream.healthCheck, let expect = policy.expectedStatuses else { continue }
            let interval = TimeAmount.milliseconds(Int64(policy.effectiveInterval.milliseconds))
            let tls = UpstreamTLSSettings(upstream)
            // Both slots of a blue-green upstream, under its name: the idle slot's health is known before a preview
            // or a flip sends to it.
            for endpoint in upstream.addressesOfEverySlot {
                let target = Target(upstream: upstream.name, address: endpoint.address)
                seen.insert(target)
                var record =
                    self.records[target]
                    ?? Record(
                        nextDue: now, healthyThreshold: policy.effectiveHealthy,
                        unhealthyThreshold: policy.effectiveUnhealthy, interval: interval)
                record.healthyThreshold = policy.effectiveHealthy
                record.unhealthyThreshold = policy.effectiveUnhealthy
                record.interval = interval
                if !record.inFlight, now >= record.nextDue {
                    record.inFlight = true
                    record.nextDue = now + interval
                    probes.append(
                        Probe(
                            target: target, endpoint: endpoint, path: policy.path, host: endpoint.hostAndPort,
                            timeout: .milliseconds(Int64(policy.effectiveTimeout.milliseconds)), expect: expect,
                            tls: tls))
                }
                self.records[target] = record
            }
        }
        var forgotten: [Target] = []
        for (target, record) in self.records where !seen.contains(target) {
            self.records[target] = nil
            if !record.healthy { forgotten.append(target) }
        }
        self.earliestDue = self.records.values.lazy.map(\.nextDue).min()
        return (probes, forgotten)
    }

    /// A check of `target` finished (`ok`: a good status in time); the transition it makes, if any.
    mutating func finished(_ target: Target, ok: Bool) -> Transition? {
        guard var record = self.records[target] else { return nil }
        record.inFlight = false
        var transition: Transition?
        if ok {
            record.successes += 1
            record.failures = 0
            if !record.healthy, record.successes >= record.healthyThreshold {
                record.healthy = true
                transition = .healthy(target)
            }
        } else {
            record.failures += 1
            record.successes = 0
            if record.healthy, record.failures >= record.unhealthyThreshold {
                record.healthy = false
                transition = .unhealthy(target)
            }
        }
        self.records[target] = record
        return transition
    }

    /// Whether `target` is out of rotation by its checks now (false when it is not checked).
    func isUnhealthy(_ target: Target) -> Bool {
        self.records[target]?.healthy == false
    }

    /// Whether `status` is one of `expect`.
    static func isExpected(_ status: Int, _ expect: [ClosedRange<Int>]) -> Bool {
        expect.contains { $0.contains(status) }
    }
}
