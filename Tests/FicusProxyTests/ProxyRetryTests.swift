import FicusCore
import FicusTesting
import Foundation
import NIOCore
import Prometheus
import Testing

@testable import FicusProxy

/// Retries by route policy (issue 17 item 5) through a real proxy: what is retried, where it goes, and the budget
/// that keeps retries from multiplying an outage.
@Suite("Retries through a real proxy", .serialized)
struct ProxyRetryTests {
    struct Setup {
        var harness: ProxyHarness
        var registry: PrometheusCollectorRegistry

        var metricsText: String { String(decoding: self.registry.emitToBuffer(), as: UTF8.self) }
    }

    /// A proxy whose one route (`orders`, fallback off so that retries alone are seen) sends everything to
    /// `orders-v2` at `addresses`, with `retry`.
    static func with(
        addresses: [String],
        retry: RetryPolicy,
        _ body: (Setup) async throws -> Void
    ) async throws {
        let legacy = try await TestUpstream.start(.fixed(status: 200, headers: [], body: Array("legacy".utf8)), group: testGroup)
        var orders = Route(name: "orders", path: "/", legacy: "legacy", defaultUpstream: "orders-v2")
        orders.fallback = "off"
        orders.retry = retry
        let configuration = Configuration(
            upstreams: [
                Upstream(name: "legacy", addresses: [Endpoint(parsing: legacy.address)!]),
                Upstream(name: "orders-v2", addresses: addresses.map { Endpoint(parsing: $0)! }),
            ],
            routes: [orders]
        )
        let registry = PrometheusCollectorRegistry()
        let harness = try await ProxyHarness.start(
            configuration: configuration,
            configure: { $0.timeouts.responseHead = .seconds(5) },
            metrics: ProxyMetrics(factory: PrometheusMetricsFactory(registry: registry))
        )
        do {
            try await body(Setup(harness: harness, registry: registry))
        } catch {
            await harness.stop()
            try? await legacy.shutdown()
            throw error
        }
        await harness.stop()
        try? await legacy.shutdown()
        #expect(legacy.received.isEmpty, "fallback is off: legacy never sees these requests")
    }

    /// One of two addresses refuses connections: every request, a POST too (it was never received), is answered by
    /// the other, because the retry goes to the pool's next address. (The retry takes a step of the round robin, so
    /// here every first try lands on the refusing address: ten retries. Outlier ejection is what takes it out.)
    @Test func aRefusedAddressIsRetriedOnTheOther() async throws {
        let refusing = try DeadUpstream.RefusingPort()
        defer { refusing.close() }
        let good = try await TestUpstream.start(.echo, group: testGroup)
        try await Self.with(addresses: ["127.0.0.1:\(refusing.port)", good.address], retry: RetryPolicy()) { setup in
            let client = try await setup.harness.client()
            for index in 0..<10 {
                let method = index % 2 == 0 ? "GET" : "POST"
                let response = try await client.request(method: method, path: "/orders/\(index)", body: Array("b\(index)".utf8))
                #expect(response.status == 200, "\(method) \(index): \(response.status)")
            }
            client.close()
            #expect(good.received.count == 10)
            #expect(good.received.filter { $0.method == "POST" }.map(\.bodyString) == ["b1", "b3", "b5", "b7", "b9"])
            await setup.harness.stop()
            #expect(setup.metricsText.contains(#"ficus_retries_total{route="orders",upstream="orders-v2",reason="connect_failure"} 10"#), "\(setup.metricsText)")
        }
        try await good.shutdown()
    }

    /// A 503 from a listed status is not forwarded: the GET is sent again (on a new connection) and the second answer
    /// is the client's. A status the policy does not list is forwarded as it is.
    @Test func aListedStatusIsRetried() async throws {
        let flaky = try await TestUpstream.start(
            .custom { request in
                request.connectionID == 1 ? .init(status: 503, body: "busy") : .init(status: 200, body: "ok")
            },
            group: testGroup)
        try await Self.with(addresses: [flaky.address], retry: RetryPolicy(on: [.status(503)])) { setup in
            let client = try await setup.harness.client()
            let response = try await client.request(path: "/orders/1")
            #expect(response.status == 200 && response.bodyString == "ok")
            client.close()
            #expect(flaky.received.count == 2)
        }
        flaky.setBehavior(.fixed(status: 500, headers: [], body: Array("boom".utf8)))
        try await Self.with(addresses: [flaky.address], retry: RetryPolicy(on: [.status(503)])) { setup in
            let client = try await setup.harness.client()
            let response = try await client.request(path: "/orders/2")
            #expect(response.status == 500 && response.bodyString == "boom")
            client.close()
            #expect(flaky.received.count == 3, "500 is not listed: one try")
        }
        try await flaky.shutdown()
    }

    /// An upstream that resets after reading the request: a GET is retried up to `attempts` and then answered 502;
    /// a POST (it may have been processed) is never retried.
    @Test func onlyIdempotentRequestsAreRetriedAfterTheyReachedTheUpstream() async throws {
        let resetting = try await TestUpstream.start(.resetBeforeHead, group: testGroup)
        try await Self.with(addresses: [resetting.address], retry: RetryPolicy(attempts: 2)) { setup in
            let client = try await setup.harness.client()
            let get = try await client.request(path: "/orders/1")
            #expect(get.status == 502)
            #expect(resetting.received.count == 3, "the first try and two retries")
            let again = try await setup.harness.client()
            let post = try await again.request(method: "POST", path: "/orders", body: Array("x".utf8))
            #expect(post.status == 502)
            #expect(resetting.received.count == 4, "a POST that reached the upstream is tried once")
            client.close()
            again.close()
        }
        try await resetting.shutdown()
    }

    /// Per-try timeout: an upstream that does not answer within it is retried (504 is listed), and the client gets
    /// 504 once the attempts are spent, long before the route's response timeout.
    @Test func thePerTryTimeoutBoundsEachTry() async throws {
        let hanging = try await TestUpstream.start(.hang, group: testGroup)
        try await Self.with(addresses: [hanging.address], retry: RetryPolicy(attempts: 1, perTryTimeout: "200ms")) {
            setup in
            let client = try await setup.harness.client()
            let response = try await client.request(path: "/orders/1", timeout: .seconds(4))
            #expect(response.status == 504)
            // The second try reached the upstream (it records a request once it has read it: wait for that).
            #expect(try await hanging.waitForRequests(2, timeout: .seconds(5)).count == 2)
            client.close()
        }
        try await hanging.shutdown()
    }

    /// A 100% failing upstream under concurrent load: the budget keeps retries in flight to 20% of the requests in
    /// flight (or 3), so 50 simultaneous requests make at most 13 retries, not 50; the rest are refused and counted.
    @Test func theBudgetCapsRetriesUnderATotalOutage() async throws {
        let failing = try await TestUpstream.start(
            // Slow enough that all fifty requests are in flight before the first answer, however slow the machine
            // (ThreadSanitizer): the budget bounds retries against the requests in flight.
            .slow(delay: .seconds(2), then: .fixed(status: 503, headers: [], body: Array("down".utf8))),
            group: testGroup)
        let policy = RetryPolicy(on: [.status(503)], attempts: 1, backoffBase: "1ms", backoffMax: "2ms")
        let requests = 50
        try await Self.with(addresses: [failing.address], retry: policy) { setup in
            var clients: [RawClient] = []
            for _ in 0..<requests {
                clients.append(try await setup.harness.client())
            }
            for (index, client) in clients.enumerated() {
                try await client.send("GET /orders/\(index) HTTP/1.1\r\nHost: x\r\n\r\n")
            }
            for client in clients {
                let response = try await client.readResponse(timeout: .seconds(20))
                #expect(response?.status == 503)
                client.close()
            }
            let retries = failing.received.count - requests
            #expect(retries > 0, "some retries were allowed")
            #expect(retries <= requests / 5 + 3, "\(retries) retries for \(requests) requests")
            await setup.harness.stop()
            #expect(setup.metricsText.contains(#"ficus_retries_refused_total{route="orders",upstream="orders-v2"}"#))
        }
        try await failing.shutdown()
    }
}
