import FicusCore
import FicusTesting
import NIOCore
import NIOPosix
import Prometheus
import Testing

@testable import FicusProxy

/// Bounded resources (issue 14 item 5): the client connection limit and the admin listener's own limits.
@Suite("Connection and admin limits through real sockets", .serialized)
struct ProxyLimitsTests {
    /// Over `maxConnections`, a new connection is closed at once and counted; the ones admitted keep working, and a
    /// place that frees up is taken again.
    @Test func maxConnectionsHolds() async throws {
        let registry = PrometheusCollectorRegistry()
        let metrics = ProxyMetrics(factory: PrometheusMetricsFactory(registry: registry))
        let upstream = try await TestUpstream.start(.echo, group: testGroup)
        let harness = try await ProxyHarness.start(
            upstreams: [("backend", [upstream.address])],
            defaultUpstream: "backend",
            configure: { $0.maxConnections = 2 },
            metrics: metrics
        )
        let first = try await harness.client()
        let second = try await harness.client()
        #expect(try await first.request(path: "/1").status == 200)
        #expect(try await second.request(path: "/2").status == 200)
        let third = try await harness.client()
        #expect(await third.isClosed(within: .seconds(2)), "the third connection was not closed")
        third.close()
        #expect(try await first.request(path: "/again").status == 200, "admitted connections keep working")
        let text = String(decoding: registry.emitToBuffer(), as: UTF8.self)
        #expect(text.contains("ficus_connections_rejected_total{reason=\"max_connections\"} 1"), "\(text)")
        first.close()
        // Once the first one has gone, a new connection is admitted.
        let deadline = ContinuousClock.now + .seconds(3)
        while harness.proxy.openConnections >= 2 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        let fourth = try await harness.client()
        #expect(try await fourth.request(path: "/4").status == 200)
        fourth.close()
        second.close()
        await harness.stop()
        try await upstream.shutdown()
    }

    private static func startAdmin(_ limits: AdminServer.Limits = AdminServer.Limits()) async throws -> AdminServer {
        let admin = AdminServer(
            host: "127.0.0.1",
            port: 0,
            sources: AdminServer.Sources(health: { (200, "{\"status\":\"ok\"}\n") }, metrics: { Array("m 1\n".utf8) }),
            group: testGroup,
            limits: limits
        )
        try await admin.start()
        return admin
    }

    /// HEAD on the admin listener has the GET answer's length and no body.
    @Test func adminHeadHasNoBody() async throws {
        let admin = try await Self.startAdmin()
        let client = try await RawClient.connect(port: admin.localAddress!.port!, group: testGroup)
        try await client.send("HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        let text = String(decoding: try await client.readAll(timeout: .seconds(3)), as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(text)")
        #expect(text.contains("content-length: 16\r\n"), "\(text)")
        #expect(text.hasSuffix("\r\n\r\n"), "a body followed the head: \(text)")
        client.close()
        await admin.shutdown()
    }

    /// A head that does not arrive in time gets 408 and the connection closes; one over the size bound gets 431.
    @Test func adminHeadTimeoutAndSizeBound() async throws {
        var limits = AdminServer.Limits()
        limits.headTimeout = .milliseconds(200)
        limits.maxHeadBytes = 1024
        let admin = try await Self.startAdmin(limits)
        let port = admin.localAddress!.port!
        let slow = try await RawClient.connect(port: port, group: testGroup)
        try await slow.send("GET /healthz HTTP/1.1\r\nHost: a\r\n")
        let timedOut = try await slow.readResponse(timeout: .seconds(3))
        #expect(timedOut?.status == 408)
        #expect(await slow.isClosed(within: .seconds(2)))
        slow.close()
        let big = try await RawClient.connect(port: port, group: testGroup)
        try await big.send("GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: " + String(repeating: "a", count: 2000) + "\r\n\r\n")
        let refused = try await big.readResponse(timeout: .seconds(3))
        #expect(refused?.status == 431)
        big.close()
        await admin.shutdown()
    }

    /// The admin listener holds at most its own small number of connections.
    @Test func adminConnectionLimit() async throws {
        var limits = AdminServer.Limits()
        limits.maxConnections = 2
        let admin = try await Self.startAdmin(limits)
        let port = admin.localAddress!.port!
        let first = try await RawClient.connect(port: port, group: testGroup)
        let second = try await RawClient.connect(port: port, group: testGroup)
        try await first.send("GET /healthz HTTP/1.1\r\nHost: a\r\n")
        try await second.send("GET /healthz HTTP/1.1\r\nHost: a\r\n")
        let third = try await RawClient.connect(port: port, group: testGroup)
        #expect(await third.isClosed(within: .seconds(2)))
        third.close()
        try await first.send("\r\n")
        #expect(try await first.readResponse()?.status == 200)
        first.close()
        second.close()
        await admin.shutdown()
    }
}
