import FicusCore
import NIOCore
import Testing

@testable import FicusProxy

/// The pool machine's part of issue 17 items 2, 4 and 7: ejected addresses are never picked, circuit breakers refuse
/// at once, and least request counts this loop's requests in flight per address.
@Suite("The upstream pool's state machine: ejection, breakers, balancing")
struct UpstreamPoolResilienceTests {
    @Test func ejectedAddressesAreSkippedAndAllEjectedFailsWithNoHealthyAddress() {
        var script = PoolScript(addresses: ["10.0.0.1:8080", "10.0.0.2:8080"])
        script.ejected = ["10.0.0.1:8080"]
        script.run([
            (.lease("r1"), "connect 10.0.0.2:8080 for r1; open +1"),
            (.lease("r2"), "connect 10.0.0.2:8080 for r2; open +1"),
            (.connected("r1", as: "c1"), "lease c1 to r1 (new)"),
            (.release("c1"), "idle +1"),
        ])
        script.ejected = ["10.0.0.1:8080", "10.0.0.2:8080"]
        script.run([
            (.lease("r3"), "fail r3: every address is out of rotation (ejected)"),
        ])
        // Back in rotation: round robin goes on where it was, to the first address, then the second's idle c1.
        script.ejected = []
        script.run([
            (.lease("r4"), "connect 10.0.0.1:8080 for r4; open +1"),
            (.lease("r5"), "lease c1 to r5 (reused); idle -1"),
        ])
    }

    @Test func anIdleConnectionToAnEjectedAddressIsNotLeased() {
        var script = PoolScript(addresses: ["10.0.0.1:8080", "10.0.0.2:8080"], maxConnections: 1)
        script.run(
            UpstreamPoolStateMachineTests.c1InUse + [
                (.release("c1"), "idle +1")
            ])
        script.ejected = ["10.0.0.1:8080"]
        // At the connection limit, the only idle connection goes to the ejected address: the request waits.
        script.run([(.lease("r2"), "")])
    }

    @Test func maxRequestsRefusesAtOnceAndAnUpstreamsOwnLimitsAreSharedAmongLoops() {
        var script = PoolScript(maxConnections: 8, maxPending: 8, loops: 2)
        script.upstream.limits = UpstreamLimits(maxConnections: 2, maxPending: 1, maxRequests: 3)
        // Two loops: connections 1, pending 1, requests 2 on this one.
        script.run([
            (.lease("r1"), "connect 10.0.0.1:8080 for r1; open +1"),
            (.lease("r2"), ""),
            (.lease("r3"), "fail r3: max_requests reached"),
        ])
        var pending = PoolScript(maxConnections: 8, maxPending: 8)
        pending.upstream.limits = UpstreamLimits(maxConnections: 1, maxPending: 1)
        pending.run([
            (.lease("r1"), "connect 10.0.0.1:8080 for r1; open +1"),
            (.lease("r2"), ""),
            (.lease("r3"), "fail r3: no free connection and the queue is full"),
        ])
    }

    @Test func aWaitAtTheConnectionLimitIsReported() {
        var machine = PoolScript.Machine(limits: .init(maxConnections: 1, maxPending: 4, backoff: nil))
        let upstream = Upstream(name: "svc", addresses: [Endpoint(host: "10.0.0.1", port: 1)])
        let now = NIODeadline.uptimeNanoseconds(1)
        #expect(!machine.leaseRequested(upstream, by: "r1", now: now).waitsAtConnectionLimit)
        #expect(machine.leaseRequested(upstream, by: "r2", now: now).waitsAtConnectionLimit)
    }

    @Test func leastRequestSendsToTheAddressWithFewerRequestsInFlight() {
        var script = PoolScript(addresses: ["10.0.0.1:8080", "10.0.0.2:8080"])
        script.upstream.balance = .leastRequest
        // With two addresses both are drawn: each lease goes where fewer requests are in flight (a tie: either).
        _ = script.step(.lease("r1"))
        let first = script.connects["r1"]!.endpoint.description
        let other = first == "10.0.0.1:8080" ? "10.0.0.2:8080" : "10.0.0.1:8080"
        script.run([
            (.lease("r2"), "connect \(other) for r2; open +1"),
            (.connected("r1", as: "c1"), "lease c1 to r1 (new)"),
            (.connected("r2", as: "c2"), "lease c2 to r2 (new)"),
            (.release("c1"), "idle +1"),
            // c1's address has nothing in flight now, c2's has one: the next request goes to c1's, reusing c1.
            (.lease("r3"), "lease c1 to r3 (reused); idle -1"),
        ])
        #expect(script.machine.activeRequests(upstream: "svc") == [first: 1, other: 1])
    }

    @Test func weightsSplitConnectsByWeight() {
        var script = PoolScript(addresses: ["10.0.0.1:8080 weight=3", "10.0.0.2:8080"], maxConnections: 100)
        var counts: [String: Int] = [:]
        for index in 0..<40 {
            _ = script.step(.lease("r\(index)"))
            counts[script.connects["r\(index)"]!.endpoint.address, default: 0] += 1
        }
        #expect(counts == ["10.0.0.1:8080": 30, "10.0.0.2:8080": 10])
    }

    @Test func aWeightChangeKeepsTheAddressesConnections() {
        var script = PoolScript(addresses: ["10.0.0.1:8080"])
        script.run(
            UpstreamPoolStateMachineTests.c1InUse + [
                (.release("c1"), "idle +1"),
                (.readdress(["10.0.0.1:8080 weight=2"]), ""),
                (.lease("r2"), "lease c1 to r2 (reused); idle -1"),
            ])
    }
}
