import FicusCore
import FicusTesting
import Foundation
import NIOCore
import Prometheus
import Testing

@testable import FicusProxy

/// Fallback to legacy (issue 17 item 1) through a real proxy: a route flipped to a new service whose failures before
/// answering send requests to legacy when that is safe.
@Suite("Fallback to legacy through a real proxy", .serialized)
struct ProxyFallbackTests {
    struct Setup {
        var harness: ProxyHarness
        var legacy: TestUpstream
        var metrics: ProxyMetrics

        func stop() async {
            await self.harness.stop()
            try? await self.legacy.shutdown()
        }
    }

    /// Legacy answers `legacy` (echoing nothing else); the route's default is `orders-v2` at `modern`.
    /// `responseTimeout` is short only for the test about it: under ThreadSanitizer legacy's own answer can take longer
    /// than half a second on a loaded machine.
    static func start(
        modern: String, responseTimeout: TimeAmount = .seconds(10), route: (inout Route) -> Void = { _ in }
    ) async throws -> Setup {
        let legacy = try await TestUpstream.start(
            .fixed(status: 200, headers: [], body: Array("legacy".utf8)), group: testGroup)
        var orders = Route(name: "orders", path: "/", legacy: "legacy", defaultUpstream: "orders-v2")
        route(&orders)
        let configuration = Configuration(
            upstreams: [
                Upstream(name: "legacy", addresses: [Endpoint(parsing: legacy.address)!]),
                Upstream(name: "orders-v2", addresses: [Endpoint(parsing: modern)!]),
            ],
            routes: [orders]
        )
        let metrics = ProxyMetrics(factory: PrometheusMetricsFactory(registry: PrometheusCollectorRegistry()))
        let harness = try await ProxyHarness.start(
            configuration: configuration,
            configure: { $0.timeouts.responseHead = responseTimeout },
            metrics: metrics
        )
        return Setup(harness: harness, legacy: legacy, metrics: metrics)
    }

    /// A new service that refuses connections: every method goes to legacy (it never received anything), marked
    /// `X-Ficus-Fallback: 1` for legacy only, and the failed attempts stay in the new side's metric window.
    @Test func refusedConnectsFallBackForEveryMethod() async throws {
        let refusing = try DeadUpstream.RefusingPort()
        defer { refusing.close() }
        let setup = try await Self.start(modern: "127.0.0.1:\(refusing.port)")
        do {
            let client = try await setup.harness.client()
            let get = try await client.request(path: "/orders/1")
            let post = try await client.request(method: "POST", path: "/orders", body: Array("{\"a\":1}".utf8))
            client.close()
            for response in [get, post] {
                #expect(response.status == 200)
                #expect(response.bodyString == "legacy")
                #expect(response.header("x-ficus-fallback") == nil, "never to clients")
            }
            let received = try await setup.legacy.waitForRequests(2, timeout: .seconds(5))
            #expect(received.map { $0.header("x-ficus-fallback") } == ["1", "1"])
            #expect(received.last?.bodyString == "{\"a\":1}", "the whole body")
            await setup.harness.stop()  // every exchange recorded
            let windows = setup.metrics.takeWindows(proxy: "p", now: 1_000_000)
            let modern = windows.first { $0.upstream == "orders-v2" }
            #expect(modern?.requests == 2 && modern?.serverErrors == 2, "the failures count against the new side")
            #expect(windows.first { $0.upstream == "legacy" }?.requests == 2)
        } catch {
            await setup.stop()
            throw error
        }
        await setup.stop()
    }

    /// A 503 from the new side sends a GET to legacy; a POST it answered is not sent again (the answer is the 503).
    @Test func aFallbackStatusSendsIdempotentRequestsOnly() async throws {
        let modern = try await TestUpstream.start(.fixed(status: 503, headers: [], body: Array("busy".utf8)), group: testGroup)
        let setup = try await Self.start(modern: modern.address)
        do {
            let client = try await setup.harness.client()
            let get = try await client.request(path: "/orders/1")
            #expect(get.status == 200 && get.bodyString == "legacy")
            let post = try await client.request(method: "POST", path: "/orders", body: Array("x".utf8))
            #expect(post.status == 503 && post.bodyString == "busy", "a POST that reached the new side stays there")
            client.close()
            await setup.harness.stop()
            #expect(setup.legacy.received.map(\.method) == ["GET"])
            #expect(modern.received.map(\.method) == ["GET", "POST"])
        } catch {
            await setup.stop()
            try? await modern.shutdown()
            throw error
        }
        await setup.stop()
        try await modern.shutdown()
    }

    /// A new service that resets after reading the request: a GET falls back, a POST is answered 502 (it may have
    /// been processed).
    @Test func aResetFallsBackOnlyForIdempotentMethods() async throws {
        let modern = try await TestUpstream.start(.resetBeforeHead, group: testGroup)
        let setup = try await Self.start(modern: modern.address)
        do {
            let client = try await setup.harness.client()
            #expect(try await client.request(path: "/orders/1").bodyString == "legacy")
            let post = try await client.request(method: "POST", path: "/orders", body: Array("x".utf8))
            #expect(post.status == 502)
            client.close()
            await setup.harness.stop()
            #expect(setup.legacy.received.map(\.method) == ["GET"])
        } catch {
            await setup.stop()
            try? await modern.shutdown()
            throw error
        }
        await setup.stop()
        try await modern.shutdown()
    }

    /// A new service that never answers: after the response timeout a GET falls back.
    @Test func aResponseTimeoutFallsBack() async throws {
        let modern = try await TestUpstream.start(.hang, group: testGroup)
        let setup = try await Self.start(modern: modern.address, responseTimeout: .milliseconds(500))
        do {
            let client = try await setup.harness.client()
            let response = try await client.request(path: "/orders/1", timeout: .seconds(10))
            #expect(response.status == 200 && response.bodyString == "legacy")
            client.close()
        } catch {
            await setup.stop()
            try? await modern.shutdown()
            throw error
        }
        await setup.stop()
        try await modern.shutdown()
    }

    /// `fallback: off`: the new side's failure is the answer.
    @Test func fallbackOffAnswersTheFailure() async throws {
        let refusing = try DeadUpstream.RefusingPort()
        defer { refusing.close() }
        let setup = try await Self.start(modern: "127.0.0.1:\(refusing.port)") { $0.fallback = "off" }
        do {
            let client = try await setup.harness.client()
            let response = try await client.request(path: "/orders/1")
            #expect(response.status == 502)
            client.close()
            await setup.harness.stop()
            #expect(setup.legacy.received.isEmpty)
        } catch {
            await setup.stop()
            throw error
        }
        await setup.stop()
    }
}
