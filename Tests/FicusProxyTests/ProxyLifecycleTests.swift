import FicusCore
import FicusTesting
import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import Prometheus
import Testing

@testable import FicusProxy

@Suite("Shutdown, admin and metrics", .serialized)
struct ProxyLifecycleTests {
    @Test func gracefulShutdownFinishesInFlightRequestsAndStopsAccepting() async throws {
        // The upstream answers long after the drain starts, even on a loaded machine (the drain starts once the slow
        // request has reached it; its answer comes 4 s later).
        let (harness, upstream) = try await ProxyHarness.start(.slow(delay: .seconds(4), then: .echo))
        do {
            let busy = try await harness.client()
            let idle = try await harness.client()
            defer { busy.close(); idle.close() }
            _ = try await idle.request(path: "/warm")
            try await busy.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
            // Both connections are the proxy's before the drain starts (on a loaded machine the busy one's
            // initializer can run late; the drain then still reaches it, but this test is about the plain case).
            let deadline = NIODeadline.now() + .seconds(5)
            while harness.proxy.openConnections < 2, NIODeadline.now() < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(harness.proxy.openConnections == 2)
            _ = try await upstream.waitForRequests(2, timeout: .seconds(10))
            async let drained: Void = harness.proxy.shutdown(drainTimeout: .seconds(10))
            // The idle keep-alive connection is closed at once; the busy one gets its answer, marked close.
            #expect(await idle.isClosed(within: .seconds(2)))
            let response = try await busy.readResponse(timeout: .seconds(10))
            #expect(response?.status == 200)
            #expect(response?.header("connection") == "close")
            #expect(await busy.isClosed(within: .seconds(2)))
            await drained
            await #expect(throws: (any Error).self) {
                _ = try await RawClient.connect(port: harness.port, group: testGroup)
            }
        } catch {
            try? await upstream.shutdown()
            throw error
        }
        try? await upstream.shutdown()
    }

    @Test func aConnectionInitializedDuringTheDrainIsDrainedAndOneAfterItIsClosedUnanswered() async throws {
        let (harness, upstream) = try await ProxyHarness.start(.slow(delay: .seconds(4), then: .echo))
        do {
            // A listener of the test's own hands its connections to the proxy's initializer: they stand for connections
            // the kernel accepted before the proxy's listener closed and whose initializer ran only afterwards.
            let side = try await ServerBootstrap(group: testGroup)
                .childChannelInitializer { harness.proxy.initializeChild($0) }
                .bind(host: "127.0.0.1", port: 0).get()
            defer { side.close(promise: nil) }
            let sidePort = side.localAddress!.port!
            let busy = try await harness.client()
            defer { busy.close() }
            try await busy.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
            let deadline = NIODeadline.now() + .seconds(5)
            while harness.proxy.openConnections < 1, NIODeadline.now() < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            // The busy request has reached the upstream (which answers 4 s later) before the drain starts.
            _ = try await upstream.waitForRequests(1, timeout: .seconds(10))
            async let drained: Void = harness.proxy.shutdown(drainTimeout: .seconds(15))
            while harness.proxy.localAddress != nil, NIODeadline.now() < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(harness.proxy.localAddress == nil)
            // Draining: the late connection's request is answered, and the connection closed after it.
            let late = try await RawClient.connect(port: sidePort, group: testGroup)
            defer { late.close() }
            try await late.send("GET /late HTTP/1.1\r\nHost: a\r\n\r\n")
            let lateResponse = try await late.readResponse(timeout: .seconds(10))
            #expect(lateResponse?.status == 200)
            #expect(lateResponse?.header("connection") == "close")
            #expect(await late.isClosed(within: .seconds(2)))
            let busyResponse = try await busy.readResponse(timeout: .seconds(10))
            #expect(busyResponse?.status == 200)
            #expect(busyResponse?.header("connection") == "close")
            await drained
            // Stopped (a second shutdown is harmless): a connection initialized now is closed without a byte of answer.
            await harness.proxy.shutdown(drainTimeout: .milliseconds(100))
            let after = try await RawClient.connect(port: sidePort, group: testGroup)
            defer { after.close() }
            try? await after.send("GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(await after.isClosed(within: .seconds(2)))
            #expect(try await after.readAll(timeout: .milliseconds(100)).isEmpty)
            #expect(harness.proxy.openConnections == 0)
        } catch {
            try? await upstream.shutdown()
            throw error
        }
        try? await upstream.shutdown()
    }

    @Test func drainTimeoutClosesWhatIsLeft() async throws {
        let (harness, upstream) = try await ProxyHarness.start(.hang)
        do {
            let client = try await harness.client()
            defer { client.close() }
            try await client.send("GET /forever HTTP/1.1\r\nHost: a\r\n\r\n")
            _ = try await upstream.waitForRequests(1, timeout: .seconds(10))
            let started = NIODeadline.now()
            await harness.proxy.shutdown(drainTimeout: .milliseconds(300))
            // The 300 ms given, not the default 30 s: the upper bound leaves room for a slow machine.
            #expect(NIODeadline.now() - started < .seconds(15))
            #expect(await client.isClosed(within: .seconds(2)))
        } catch {
            try? await upstream.shutdown()
            throw error
        }
        try? await upstream.shutdown()
    }

    @Test func metricsAndHealthOnTheAdminListener() async throws {
        let registry = PrometheusCollectorRegistry()
        let metrics = ProxyMetrics(factory: PrometheusMetricsFactory(registry: registry))
        let upstream = try await TestUpstream.start(.echo, group: testGroup)
        let harness = try await ProxyHarness.start(
            upstreams: [("backend", [upstream.address])],
            defaultUpstream: "backend",
            metrics: metrics
        )
        let admin = AdminServer(
            host: "127.0.0.1",
            port: 0,
            sources: AdminServer.Sources(
                health: { (200, "{\"status\":\"ok\",\"revision\":\(harness.routing.current.revision)}") },
                metrics: { registry.emitToBuffer() }
            ),
            group: testGroup
        )
        try await admin.start()
        do {
            let client = try await harness.client()
            _ = try await client.request(path: "/ok")
            try await client.send("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n")
            _ = try await client.readResponse()
            client.close()
            let adminPort = admin.localAddress!.port!
            let health = try await HTTPTestClient.get(port: adminPort, path: "/healthz", group: testGroup)
            #expect(health.status == 200)
            #expect(health.bodyString.contains("\"revision\":1"))
            let scrape = try await HTTPTestClient.get(port: adminPort, path: "/metrics", group: testGroup)
            let text = scrape.bodyString
            #expect(scrape.status == 200)
            #expect(text.contains("ficus_requests_total{route=\"default\",upstream=\"backend\",status=\"2xx\"} 1"))
            #expect(text.contains("ficus_request_duration_seconds_bucket"))
            #expect(text.contains("ficus_framing_refusals_total{reason=\"bad_content_length\"} 1"))
            #expect(text.contains("ficus_upstream_connections_open{upstream=\"backend\"} 1"))
            #expect(text.contains("ficus_requests_in_flight 0"))
            let missing = try await HTTPTestClient.get(port: adminPort, path: "/nope", group: testGroup)
            #expect(missing.status == 404)
        } catch {
            await admin.shutdown()
            await harness.stop()
            try? await upstream.shutdown()
            throw error
        }
        await admin.shutdown()
        await harness.stop()
        try? await upstream.shutdown()
    }

    /// Exchanges that end by a closed connection (a reset after the head, a client that leaves) are counted once,
    /// so the in-flight gauge returns to zero.
    @Test func inFlightReturnsToZeroAfterAbortedExchanges() async throws {
        let registry = PrometheusCollectorRegistry()
        let metrics = ProxyMetrics(factory: PrometheusMetricsFactory(registry: registry))
        let reset = try await TestUpstream.start(.resetMidBody(after: 100), group: testGroup)
        let hang = try await TestUpstream.start(.hang, group: testGroup)
        let harness = try await ProxyHarness.start(
            upstreams: [("reset", [reset.address]), ("hang", [hang.address])],
            defaultUpstream: "reset",
            // A client's close reads as a half-close (it may still want its answer), so the hanging exchange ends
            // at the response timeout.
            configure: { $0.timeouts.responseHead = .milliseconds(300) },
            metrics: metrics
        )
        let first = try await harness.client()
        try await first.send("GET /reset HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(await first.isClosed(within: .seconds(3)))
        first.close()
        harness.routing.replace(
            with: try RoutingTable(
                configuration: .catchAll(
                    upstreams: [Upstream(name: "hang", addresses: [Endpoint(parsing: hang.address)!])],
                    defaultUpstream: "hang"
                ),
                revision: 2
            )
        )
        let second = try await harness.client()
        try await second.send("GET /hang HTTP/1.1\r\nHost: a\r\n\r\n")
        _ = try await hang.waitForRequests(1, timeout: .seconds(3))
        second.close()
        var text = ""
        let deadline = ContinuousClock.now + .seconds(3)
        while ContinuousClock.now < deadline {
            text = registry.emitToString()
            if text.contains("ficus_requests_in_flight 0.0") { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(text.contains("ficus_requests_in_flight 0.0"), "\(text.split(separator: "\n").filter { $0.contains("in_flight") })")
        await harness.stop()
        try await reset.shutdown()
        try await hang.shutdown()
    }

    /// The connection handler refuses bad framing on its own, without any upstream: checked on an EmbeddedChannel.
    @Test func handlerRefusesOnEmbeddedChannel() throws {
        let loop = EmbeddedEventLoop()
        let table = try RoutingTable(
            configuration: .catchAll(upstreams: [Upstream(name: "b", addresses: [Endpoint(host: "127.0.0.1", port: 1)])], defaultUpstream: "b"),
            revision: 1
        )
        var configuration = ProxyConfiguration()
        configuration.accessLog = false
        let shared = ProxyContext(
            configuration: configuration,
            routing: RoutingState(table),
            metrics: nil,
            logger: Logger(label: "test")
        )
        let resources = LoopResources(eventLoop: loop, configuration: configuration, loops: 1, metrics: nil)
        let channel = EmbeddedChannel(handler: ProxyConnectionHandler(shared: shared, resources: resources), loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"))
        var written = ByteBuffer()
        while var part = try channel.readOutbound(as: ByteBuffer.self) { written.writeBuffer(&part) }
        let text = String(buffer: written)
        #expect(text.hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        #expect(text.contains("connection: close\r\n"))
        #expect(text.contains("conflicting_content_length"))
        #expect(!channel.isActive)
    }
}
