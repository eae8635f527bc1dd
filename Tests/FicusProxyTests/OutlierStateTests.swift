import FicusCore
import NIOCore
import Testing

@testable import FicusProxy

/// Outlier ejection (issue 17 item 2) as a value with a manual clock: which outcomes eject, for how long, how many
/// addresses may be out, and the return to rotation.
@Suite("Outlier ejection state, with a manual clock")
struct OutlierStateTests {
    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    static let policy = OutlierPolicy()

    /// Records `outcomes` for `address` of `svc` (with `count` addresses); the ejections they caused.
    static func feed(
        _ state: inout OutlierState, _ outcomes: [OutlierState.Outcome], address: String = "a:1", count: Int = 2,
        policy: OutlierPolicy = Self.policy, now: NIODeadline = Self.start
    ) -> [OutlierState.Ejection] {
        outcomes.compactMap {
            state.record($0, upstream: "svc", address: address, addressCount: count, policy: policy, now: now)
        }
    }

    @Test func fiveGatewayFailuresInARowEjectForTheBaseTime() {
        var state = OutlierState()
        #expect(Self.feed(&state, Array(repeating: .status(503), count: 4)).isEmpty)
        let ejections = Self.feed(&state, [.status(503)])
        #expect(ejections.count == 1)
        #expect(ejections.first?.reason == .consecutiveGatewayFailure)
        #expect(ejections.first?.until == Self.start + .seconds(30))
        #expect(state.ejected(upstream: "svc", now: Self.start) == ["a:1"])
        #expect(state.ejected(upstream: "svc", now: Self.start + .milliseconds(29_999)) == ["a:1"])
        #expect(state.ejected(upstream: "svc", now: Self.start + .seconds(30)) == [], "back in when the time is up")
    }

    @Test func fiveNonGatewayServerErrorsEjectAs5xxAndAnyOtherAnswerResetsTheCount() {
        var state = OutlierState()
        #expect(Self.feed(&state, [.status(500), .status(500), .status(500), .status(500), .status(200)]).isEmpty)
        #expect(Self.feed(&state, [.status(500), .status(500), .status(500), .status(500)]).isEmpty)
        #expect(Self.feed(&state, [.status(500)]).map(\.reason) == [.consecutive5xx])
    }

    @Test func localFailuresCountAsGatewayFailuresAndA500BreaksTheGatewayRun() {
        var state = OutlierState()
        #expect(Self.feed(&state, [.localFailure, .localFailure, .status(502), .status(500)]).isEmpty)
        // Five 5xx in a row (the 500 included): the 5xx counter ejects although the gateway run was broken.
        let next = Self.feed(&state, [.localFailure])
        #expect(next.map(\.reason) == [.consecutive5xx])
    }

    @Test func backInRotationOneMoreFailureEjectsAgainForTwiceAsLongUpToTheMaximum() {
        var state = OutlierState()
        var policy = OutlierPolicy()
        policy.maxEjectionTime = .seconds(70)
        _ = Self.feed(&state, Array(repeating: .localFailure, count: 5), policy: policy)
        var now = Self.start + .seconds(30)
        #expect(state.ejected(upstream: "svc", now: now).isEmpty)
        let second = Self.feed(&state, [.localFailure], policy: policy, now: now)
        #expect(second.first?.until == now + .seconds(60) && second.first?.times == 2, "one failure on probation")
        now = now + .seconds(60)
        #expect(state.ejected(upstream: "svc", now: now).isEmpty)
        let third = Self.feed(&state, [.localFailure], policy: policy, now: now)
        #expect(third.first?.until == now + .seconds(70), "capped at max_ejection_time")
    }

    @Test func aSuccessAfterTheReturnEndsTheProbation() {
        var state = OutlierState()
        _ = Self.feed(&state, Array(repeating: .status(503), count: 5))
        let now = Self.start + .seconds(30)
        #expect(Self.feed(&state, [.status(200), .status(503)], now: now).isEmpty)
    }

    @Test func timeHealthyInRotationLowersTheMultiplier() {
        var state = OutlierState()
        _ = Self.feed(&state, Array(repeating: .status(503), count: 5))
        let back = Self.start + .seconds(30)
        _ = Self.feed(&state, [.status(200)], now: back)
        // 65 s healthy takes two ejections off the count of one: the next ejection is a first one again.
        let later = back + .seconds(65)
        let ejection = Self.feed(&state, Array(repeating: .status(503), count: 5), now: later).first
        #expect(ejection?.times == 1 && ejection?.until == later + .seconds(30))
    }

    @Test func atMostTenPercentOfTheAddressesButAlwaysOne() {
        var state = OutlierState()
        let five = Array(repeating: OutlierState.Outcome.status(503), count: 5)
        #expect(Self.feed(&state, five, address: "a:1", count: 2).count == 1)
        #expect(Self.feed(&state, five, address: "b:1", count: 2).isEmpty, "the last address stays (10% of 2 is 0)")
        #expect(state.ejected(upstream: "svc", now: Self.start) == ["a:1"])

        var large = OutlierState()
        for index in 0..<3 {
            let ejected = Self.feed(&large, five, address: "h\(index):1", count: 20)
            #expect(ejected.count == (index < 2 ? 1 : 0), "10% of 20 is 2")
        }

        var single = OutlierState()
        #expect(Self.feed(&single, five, address: "only:1", count: 1).count == 1, "a lone address can be ejected")
    }

    @Test func outcomesWhileEjectedAndPoliciesTurnedOffChangeNothing() {
        var state = OutlierState()
        _ = Self.feed(&state, Array(repeating: .status(503), count: 5))
        #expect(Self.feed(&state, Array(repeating: .status(503), count: 10)).isEmpty)
        var off = OutlierState()
        #expect(Self.feed(&off, Array(repeating: .status(503), count: 10), policy: OutlierPolicy(enabled: false)).isEmpty)
        var zero = OutlierState()
        let noGateway = OutlierPolicy(consecutive5xx: 0, consecutiveGatewayFailure: 0)
        #expect(Self.feed(&zero, Array(repeating: .status(503), count: 10), policy: noGateway).isEmpty, "0 turns off")
    }

    /// `isSettled` lets `UpstreamHealth` skip its lock for successes: it must be false whenever a success would change
    /// something (a failure counted, an address on probation) or an address is out.
    @Test func settledOnlyWhileASuccessWouldChangeNothing() {
        var state = OutlierState()
        #expect(state.isSettled)
        _ = Self.feed(&state, [.status(200), .status(404)])
        #expect(state.isSettled, "successes of a healthy address write nothing")
        _ = Self.feed(&state, [.status(500)])
        #expect(!state.isSettled, "a counted failure")
        _ = Self.feed(&state, [.status(200)])
        #expect(state.isSettled, "the success reset it")
        _ = Self.feed(&state, [.status(503)], address: "b:1")
        _ = Self.feed(&state, [.status(503)], address: "c:1")
        _ = Self.feed(&state, [.status(200)], address: "b:1")
        #expect(!state.isSettled, "c:1 still counts a failure")
        _ = Self.feed(&state, [.status(200)], address: "c:1")
        #expect(state.isSettled)
        _ = Self.feed(&state, Array(repeating: .status(503), count: 5))
        #expect(!state.isSettled, "an address is out")
        let back = Self.start + .seconds(30)
        #expect(state.ejected(upstream: "svc", now: back).isEmpty)
        #expect(!state.isSettled, "back on probation: its next success ends it")
        _ = Self.feed(&state, [.status(200)], now: back)
        #expect(state.isSettled)
    }

    @Test func aHealthyUpstreamsSuccessesSkipTheLockAndFailuresStillEject() {
        let health = UpstreamHealth(metrics: nil, logger: nil)
        var upstream = Upstream(name: "svc", addresses: ["127.0.0.1:1", "127.0.0.1:2"].compactMap(Endpoint.init(parsing:)))
        upstream.outlier = OutlierPolicy()
        let now = Self.start
        for _ in 0..<3 { health.record(.status(200), upstream: upstream, address: "127.0.0.1:1", now: now) }
        #expect(health.ejected(upstream, now: now).isEmpty)
        for _ in 0..<4 { health.record(.status(502), upstream: upstream, address: "127.0.0.1:1", now: now) }
        health.record(.status(200), upstream: upstream, address: "127.0.0.1:1", now: now)
        for _ in 0..<4 { health.record(.status(502), upstream: upstream, address: "127.0.0.1:1", now: now) }
        #expect(health.ejected(upstream, now: now).isEmpty, "the success in between reset the count")
        health.record(.localFailure, upstream: upstream, address: "127.0.0.1:1", now: now)
        #expect(health.ejected(upstream, now: now) == ["127.0.0.1:1"])
        #expect(health.ejected(upstream, now: now + .seconds(30)).isEmpty, "back after the base time")
        health.record(.status(503), upstream: upstream, address: "127.0.0.1:1", now: now + .seconds(30))
        #expect(health.ejected(upstream, now: now + .seconds(30)) == ["127.0.0.1:1"], "on probation: out again")
    }

    @Test func retriesAreAdmittedUpToTheLimitAndReleased() {
        var retries = RetryAdmission()
        var answers: [Bool] = []
        answers.append(retries.begin(upstream: "legacy", limit: 2))
        answers.append(retries.begin(upstream: "legacy", limit: 2))
        answers.append(retries.begin(upstream: "legacy", limit: 2))
        answers.append(retries.begin(upstream: "other", limit: 2))
        retries.end(upstream: "legacy")
        answers.append(retries.begin(upstream: "legacy", limit: 2))
        answers.append(retries.begin(upstream: "none", limit: 0))
        #expect(answers == [true, true, false, true, true, false], "per upstream; 0 allows none")
    }
}

/// The balancer as a value: round robin skipping addresses out of rotation, smooth weighted round robin, and least
/// request by two random choices.
@Suite("Balancer")
struct BalancerTests {
    static func picks(
        _ balancer: inout Balancer, _ n: Int, weights: [Int], active: [Int]? = nil, ejected: Set<Int> = []
    ) -> [Int] {
        let active = active ?? Array(repeating: 0, count: weights.count)
        return (0..<n).compactMap { _ in
            balancer.pick(
                count: weights.count, weighted: weights.contains { $0 != 1 }, weight: { weights[$0] },
                active: { active[$0] }, eligible: { !ejected.contains($0) })
        }
    }

    @Test func roundRobinTakesEachAddressInTurnAndSkipsEjectedOnes() {
        var balancer = Balancer(policy: .roundRobin)
        #expect(Self.picks(&balancer, 6, weights: [1, 1, 1]) == [0, 1, 2, 0, 1, 2])
        #expect(Self.picks(&balancer, 4, weights: [1, 1, 1], ejected: [1]) == [0, 2, 0, 2])
        #expect(Self.picks(&balancer, 2, weights: [1, 1, 1], ejected: [0, 1, 2]).isEmpty, "none eligible")
    }

    @Test func weightedRoundRobinIsSmoothAndExact() {
        var balancer = Balancer(policy: .roundRobin)
        #expect(Self.picks(&balancer, 7, weights: [5, 1, 1]) == [0, 0, 1, 0, 2, 0, 0])
        let many = Self.picks(&balancer, 700, weights: [5, 1, 1])
        #expect(many.filter { $0 == 0 }.count == 500 && many.filter { $0 == 1 }.count == 100)
        let skipping = Self.picks(&balancer, 40, weights: [3, 1, 1], ejected: [0])
        #expect(skipping.filter { $0 == 1 }.count == 20 && skipping.filter { $0 == 2 }.count == 20)
    }

    @Test func leastRequestPrefersTheLessBusyOfTwoRandomAddresses() {
        var balancer = Balancer(policy: .leastRequest, seed: 42)
        // Two addresses: both are always drawn, so the idle one always wins.
        #expect(Set(Self.picks(&balancer, 50, weights: [1, 1], active: [5, 0])) == [1])
        // Three: the busiest can only win a draw against itself, which never happens (two distinct draws).
        let three = Self.picks(&balancer, 300, weights: [1, 1, 1], active: [9, 0, 0])
        #expect(!three.contains(0))
        #expect(three.filter { $0 == 1 }.count > 100 && three.filter { $0 == 2 }.count > 100)
        // Weight counts: 3 in flight on weight 4 ((3 + 1) / 4) is less busy than 1 on weight 1 ((1 + 1) / 1).
        #expect(Set(Self.picks(&balancer, 20, weights: [4, 1], active: [3, 1])) == [0])
        #expect(Self.picks(&balancer, 10, weights: [1, 1, 1], ejected: [0, 2]) == Array(repeating: 1, count: 10))
    }
}
