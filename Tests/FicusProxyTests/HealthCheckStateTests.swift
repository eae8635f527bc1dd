import FicusCore
import NIOCore
import Testing

@testable import FicusProxy

/// The active health checks' state with a manual clock: what is due, and what answers make of an address.
@Suite("Health check state")
struct HealthCheckStateTests {
    static func upstream(_ addresses: [String], healthy: Int = 2, unhealthy: Int = 3) -> Upstream {
        var upstream = Upstream(name: "orders", addresses: addresses.map { Endpoint(parsing: $0)! })
        upstream.healthCheck = HealthCheckPolicy(
            path: "/healthz", interval: .seconds(10), healthy: healthy, unhealthy: unhealthy)
        return upstream
    }

    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    @Test func everyAddressIsCheckedAtOnceThenEveryInterval() {
        var state = HealthCheckState()
        let upstreams = [Self.upstream(["10.0.0.1:80", "10.0.0.2:80"]), Upstream(name: "plain", addresses: [])]
        let first = state.due(upstreams: upstreams, now: Self.start)
        #expect(first.probes.map(\.target.address) == ["10.0.0.1:80", "10.0.0.2:80"])
        #expect(first.probes.first?.path == "/healthz" && first.probes.first?.timeout == .seconds(1))
        #expect(state.due(upstreams: upstreams, now: Self.start + .seconds(20)).probes.isEmpty, "still in flight")
        for probe in first.probes { _ = state.finished(probe.target, ok: true) }
        #expect(state.due(upstreams: upstreams, now: Self.start + .seconds(9)).probes.isEmpty)
        #expect(state.due(upstreams: upstreams, now: Self.start + .seconds(10)).probes.count == 2)
    }

    /// The checker's tick skips `due` before `earliestDue` (with the same table): nothing may be due before it.
    @Test func earliestDueIsTheSoonestNextCheck() {
        var state = HealthCheckState()
        #expect(state.earliestDue == nil)
        let upstreams = [Self.upstream(["10.0.0.1:80", "10.0.0.2:80"])]
        let first = state.due(upstreams: upstreams, now: Self.start)
        #expect(state.earliestDue == Self.start + .seconds(10))
        _ = state.finished(first.probes[0].target, ok: true)
        #expect(state.earliestDue == Self.start + .seconds(10), "a finished check does not move its next one")
        #expect(state.due(upstreams: upstreams, now: Self.start + .milliseconds(9_999)).probes.isEmpty)
        _ = state.finished(first.probes[1].target, ok: true)
        #expect(state.due(upstreams: upstreams, now: Self.start + .seconds(10)).probes.count == 2)
        #expect(state.earliestDue == Self.start + .seconds(20))
        _ = state.due(upstreams: [Upstream(name: "plain", addresses: [])], now: Self.start + .seconds(11))
        #expect(state.earliestDue == nil, "nothing left to check")
    }

    @Test func thresholdsDecideTheTransitions() {
        var state = HealthCheckState()
        let upstreams = [Self.upstream(["10.0.0.1:80"], healthy: 2, unhealthy: 3)]
        let target = HealthCheckState.Target(upstream: "orders", address: "10.0.0.1:80")
        var now = Self.start
        func check(_ ok: Bool) -> HealthCheckState.Transition? {
            _ = state.due(upstreams: upstreams, now: now)
            now = now + .seconds(10)
            return state.finished(target, ok: ok)
        }
        #expect(check(false) == nil)
        #expect(check(false) == nil)
        #expect(check(true) == nil, "a success resets the failures")
        #expect(check(false) == nil && check(false) == nil)
        #expect(check(false) == .unhealthy(target), "three failures in a row")
        #expect(check(false) == nil, "already unhealthy")
        #expect(check(true) == nil)
        #expect(check(true) == .healthy(target), "two successes in a row")
    }

    @Test func addressesNoLongerConfiguredAreForgotten() {
        var state = HealthCheckState()
        let target = HealthCheckState.Target(upstream: "orders", address: "10.0.0.1:80")
        _ = state.due(upstreams: [Self.upstream(["10.0.0.1:80"], unhealthy: 1)], now: Self.start)
        #expect(state.finished(target, ok: false) == .unhealthy(target))
        let after = state.due(upstreams: [Self.upstream(["10.0.0.2:80"])], now: Self.start + .seconds(1))
        #expect(after.forgotten == [target], "an unhealthy address that is gone is no longer out")
        #expect(state.records[target] == nil)
        #expect(state.finished(target, ok: true) == nil, "a late answer about it changes nothing")
    }

    @Test(arguments: [
        ("200-399", [200, 302, 399], [199, 400, 503]), ("200", [200], [201, 204]), ("200,204,300-301", [204, 301], [302]),
    ])
    func expectedStatuses(_ text: String, _ good: [Int], _ bad: [Int]) throws {
        let ranges = try #require(HealthCheckPolicy.statusRanges(text))
        #expect(good.allSatisfy { HealthCheckState.isExpected($0, ranges) })
        #expect(!bad.contains { HealthCheckState.isExpected($0, ranges) })
    }

    @Test func badPoliciesAreNamedField() {
        for text in ["", "2xx", "600", "300-200", "20", "200-"] {
            #expect(HealthCheckPolicy.statusRanges(text) == nil, "\(text)")
        }
        let policy = HealthCheckPolicy(
            path: "healthz", interval: TimeSpan(milliseconds: 10), timeout: .seconds(90), healthy: 0, expect: "ok")
        #expect(policy.problems.map(\.field) == ["path", "interval", "timeout", "healthy", "expect"])
    }

    @Test func bothSlotsAreCheckedUnderTheUpstreamsNameWithItsTLSSettings() {
        var state = HealthCheckState()
        var upstream = Upstream(
            name: "orders",
            slots: BlueGreenSlots(
                blue: [Endpoint(parsing: "10.0.0.1:80")!],
                green: [Endpoint(parsing: "https://api.internal:8443")!, Endpoint(parsing: "10.0.0.1:80")!],
                active: .blue))
        upstream.healthCheck = HealthCheckPolicy(path: "/healthz", interval: .seconds(10))
        upstream.caFile = "/etc/ficus/ca.pem"
        let probes = state.due(upstreams: [upstream], now: Self.start).probes
        #expect(
            probes.map(\.target) == [
                .init(upstream: "orders", address: "10.0.0.1:80"),
                .init(upstream: "orders", address: "https://api.internal:8443"),
            ], "the idle slot too, an address in both slots once")
        #expect(probes.map(\.host) == ["10.0.0.1:80", "api.internal:8443"], "Host without the scheme")
        #expect(probes.allSatisfy { $0.tls.caFile == "/etc/ficus/ca.pem" })
        // A flip changes nothing: no address is forgotten, none is due before its interval.
        upstream.slots?.active = .green
        let flipped = state.due(upstreams: [upstream], now: Self.start + .seconds(1))
        #expect(flipped.probes.isEmpty && flipped.forgotten.isEmpty)
    }
}
