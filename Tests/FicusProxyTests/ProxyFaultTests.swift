import FicusCore
import FicusProxy
import FicusTesting
import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing

/// One event loop for the tests that count pool slots.
///
/// Pool limits are divided among event loops and client connections are spread over them, so with the shared
/// two-loop group three clients may never meet in the same pool; on one loop "the third client" is exact.
private let oneLoop = MultiThreadedEventLoopGroup(numberOfThreads: 1)

/// The faults and limits of docs/PROXY.md through a real proxy on loopback sockets.
///
/// Every timeout is shrunk to a few hundred milliseconds so that each test ends by itself in about a second.
@Suite("Faults and limits through a real proxy", .serialized)
struct ProxyFaultTests {
    // MARK: Connect failures

    @Test func refusedConnectIs502NamingTheUpstream() async throws {
        let refusing = try DeadUpstream.RefusingPort()
        defer { refusing.close() }
        let port = refusing.port
        let harness = try await ProxyHarness.start(
            upstreams: [("backend", ["127.0.0.1:\(port)"])],
            defaultUpstream: "backend",
            configure: Self.tight()
        )
        let client = try await harness.client()
        let response = try await client.request(path: "/refused", timeout: .seconds(3))
        #expect(response.status == 502)
        #expect(response.header("content-type") == "application/json")
        let body = Self.json(response)
        #expect(body["upstream"] == "backend")
        #expect(body["error"] == "upstream_unavailable")
        #expect(body["detail"]?.contains("backend") == true)
        // The address and the socket's error stay in the log: they tell a client how the network behind is laid out.
        #expect(!response.bodyString.contains("127.0.0.1"), "\(response.bodyString)")
        #expect(!response.bodyString.contains(String(port)), "\(response.bodyString)")
        #expect(!response.bodyString.lowercased().contains("refused"), "\(response.bodyString)")
        client.close()
        await harness.stop()
    }

    @Test func connectTimeoutIs503() async throws {
        let blackhole = try BlackholeListener.start()
        defer { blackhole.close() }
        let harness = try await ProxyHarness.start(
            upstreams: [("backend", ["127.0.0.1:\(blackhole.port)"])],
            defaultUpstream: "backend",
            configure: Self.tight { $0.timeouts.connect = .milliseconds(300) }
        )
        let client = try await harness.client()
        let start = ContinuousClock.now
        let response = try await client.request(path: "/blackhole", timeout: .seconds(3))
        let waited = ContinuousClock.now - start
        #expect(response.status == 503)
        #expect(response.header("retry-after") != nil)
        let body = Self.json(response)
        #expect(body["error"] == "upstream_connect_timeout")
        #expect(body["upstream"] == "backend")
        // No upper bound on `waited`: the body's error already says the connect timeout (not the client's 3 s wait)
        // ended the request, and on a loaded machine the 300 ms timer fired after 2.4 s once.
        #expect(waited >= .milliseconds(250), "answered before the connect timeout: \(waited)")
        client.close()
        await harness.stop()
    }

    /// A request waiting for a pooled connection longer than the connect timeout is answered 503, and the pool
    /// opens no second connection for it.
    @Test func poolWaitLongerThanConnectTimeoutIs503() async throws {
        let upstream = try await TestUpstream.start(.hang, group: testGroup)
        let harness = try await Self.startOnOneLoop(upstream: upstream.address) {
            $0.timeouts.connect = .milliseconds(300)
            $0.pool.maxConnectionsPerUpstream = 1
        }
        let holder = try await harness.client()
        try await holder.send(HTTPTestClient.requestBytes(path: "/holds-the-only-connection"))
        _ = try await upstream.waitForRequests(1, timeout: .seconds(2))
        let waiter = try await harness.client()
        let start = ContinuousClock.now
        let response = try await waiter.request(path: "/waits", timeout: .seconds(3))
        let waited = ContinuousClock.now - start
        #expect(response.status == 503)
        #expect(response.header("retry-after") != nil)
        #expect(Self.json(response)["error"] == "upstream_connect_timeout")
        #expect(Self.json(response)["upstream"] == "backend")
        #expect(waited >= .milliseconds(250), "answered before the wait timed out: \(waited)")
        #expect(waited < .seconds(2))
        #expect(upstream.connectionsAccepted == 1)
        #expect(upstream.received.map(\.uri) == ["/holds-the-only-connection"])
        holder.close()
        waiter.close()
        await harness.stop()
        try await upstream.shutdown()
    }

    // MARK: Response head timeout

    @Test func responseHeadTimeoutIs504AndTheConnectionIsNotReused() async throws {
        let (harness, upstream) = try await ProxyHarness.start(
            .hang,
            configure: Self.tight { $0.timeouts.responseHead = .milliseconds(300) }
        )
        let client = try await harness.client()
        let start = ContinuousClock.now
        let response = try await client.request(path: "/hangs", timeout: .seconds(3))
        let waited = ContinuousClock.now - start
        #expect(response.status == 504)
        #expect(Self.json(response)["error"] == "upstream_timeout")
        #expect(Self.json(response)["upstream"] == "backend")
        // The route's 300 ms, not the default 30 s: the upper bound leaves room for a slow machine.
        #expect(waited >= .milliseconds(250) && waited < .seconds(15), "\(waited)")
        // The timed-out connection is closed, not put back in the pool.
        #expect(await Self.eventually { upstream.openConnections == 0 }, "the timed-out connection is still open")
        upstream.setBehavior(.echo)
        // A new client connection: on a loaded machine the wait above may outlast the first one's idle timeout.
        client.close()
        let again = try await harness.client()
        let next = try await again.request(path: "/after", timeout: .seconds(3))
        #expect(next.status == 200)
        #expect(upstream.connectionsAccepted == 2)
        #expect(upstream.received.map(\.connectionID) == [1, 2])
        again.close()
        await harness.stop()
        try await upstream.shutdown()
    }

    // MARK: Client deadlines

    @Test func halfAHeadIs408AndTheConnectionCloses() async throws {
        let (harness, upstream) = try await ProxyHarness.start(
            .echo,
            configure: Self.tight { $0.timeouts.clientHeader = .milliseconds(300) }
        )
        let client = try await harness.client()
        let start = ContinuousClock.now
        try await client.send("GET /slowloris HTTP/1.1\r\nHost: a\r\n")
        let response = try await client.readResponse(timeout: .seconds(3))
        let waited = ContinuousClock.now - start
        #expect(response?.status == 408)
        #expect(response?.header("connection")?.lowercased() == "close")
        #expect(response.flatMap { Self.json($0)["error"] } == "request_timeout")
        // The route's 300 ms, not the default 30 s: the upper bound leaves room for a slow machine.
        #expect(waited >= .milliseconds(250) && waited < .seconds(15), "\(waited)")
        #expect(await client.isClosed(within: .seconds(1)))
        #expect(upstream.received.isEmpty)
        client.close()
        await harness.stop()
        try await upstream.shutdown()
    }

    /// Bytes trickling in do not move the header deadline: it runs from the first byte of the request.
    @Test func tricklingHeadIsCutAtTheDeadline() async throws {
        let (harness, upstream) = try await ProxyHarness.start(
            .echo,
            configure: Self.tight { $0.timeouts.clientHeader = .milliseconds(300) }
        )
        let client = try await harness.client()
        let start = ContinuousClock.now
        let trickle = Task {
            for byte in "GET /trickle HTTP/1.1\r\nHost: a\r\nX-Slow: ".utf8 + Array(repeating: UInt8(ascii: "x"), count: 100) {
                guard (try? await client.send([byte])) != nil else { return }
                try? await Task.sleep(for: .milliseconds(40))
            }
        }
        defer { trickle.cancel() }
        let response = try await client.readResponse(timeout: .seconds(4))
        let waited = ContinuousClock.now - start
        #expect(response?.status == 408)
        #expect(response?.header("connection")?.lowercased() == "close")
        #expect(waited < .seconds(2), "the 300 ms header deadline was extended by trickled bytes: \(waited)")
        #expect(await client.isClosed(within: .seconds(1)))
        #expect(upstream.received.isEmpty)
        client.close()
        await harness.stop()
        try await upstream.shutdown()
    }

    @Test func idleKeepAliveConnectionIsClosed() async throws {
        let (harness, upstream) = try await ProxyHarness.start(
            .echo,
            configure: Self.tight { $0.timeouts.clientIdle = .milliseconds(500) }
        )
        let client = try await harness.client()
        // The idle timer starts once the answer is sent, which is after this instant: the close can come no sooner
        // than clientIdle after it, however late this process sees the answer on a loaded machine.
        let sent = ContinuousClock.now
        let response = try await client.request(path: "/once", timeout: .seconds(3))
        #expect(response.status == 200)
        #expect(response.header("connection")?.lowercased() != "close")
        // A close right after the answer would show within a few milliseconds. Asked only while the idle close cannot
        // have come yet: on a loaded machine this process may see the answer late, and then `idle` below says it.
        if ContinuousClock.now - sent < .milliseconds(350) {
            #expect(!(await client.isClosed(within: .milliseconds(100))), "closed right after a keep-alive answer")
        }
        #expect(await client.isClosed(within: .seconds(15)), "idle connection kept open past clientIdle")
        let idle = ContinuousClock.now - sent
        // 500 ms, not the default 60 s: the upper bound leaves room for a slow machine.
        #expect(idle >= .milliseconds(500) && idle < .seconds(15), "\(idle)")
        // A connection that never sends a byte is idle too.
        let silent = try await harness.client()
        #expect(await silent.isClosed(within: .seconds(15)), "a silent connection kept open past clientIdle")
        client.close()
        silent.close()
        await harness.stop()
        try await upstream.shutdown()
    }

    // MARK: Upstream resets

    @Test func resetBeforeHeadIs502NamingTheUpstream() async throws {
        let (harness, upstream) = try await ProxyHarness.start(.resetBeforeHead, configure: Self.tight())
        let client = try await harness.client()
        let response = try await client.request(path: "/reset", timeout: .seconds(3))
        #expect(response.status == 502)
        #expect(response.header("content-type") == "application/json")
        #expect(Self.json(response)["upstream"] == "backend")
        #expect(Self.json(response)["error"] == "upstream_reset")
        // A fresh connection that failed is not retried: once the proxy has stopped, nothing more can arrive.
        await harness.stop()
        #expect(upstream.received.count == 1)
        client.close()
        await harness.stop()
        try await upstream.shutdown()
    }

    @Test func resetAfterHeadClosesTheClientWithAShortBody() async throws {
        let sent = 1000
        let declared = sent + 1024  // what `.resetMidBody` declares
        let (harness, upstream) = try await ProxyHarness.start(.resetMidBody(after: sent), configure: Self.tight())
        let client = try await harness.client()
        try await client.send(HTTPTestClient.requestBytes(path: "/cut"))
        do {
            let response = try await client.readResponse(timeout: .seconds(3))
            Issue.record("a cut answer looked complete: \(String(describing: response?.status))")
        } catch let error as FicusTestingError {
            #expect(error.kind == .closedMidResponse, "\(error)")
            let text = String(decoding: error.partial, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 200"))
            #expect(text.lowercased().contains("content-length: \(declared)\r\n"))
            if let end = Self.endOfHead(error.partial) {
                let body = Array(error.partial[(end + 4)...])
                #expect(body.count < declared)
                #expect(body == TestUpstream.patternBytes(count: body.count))
            } else {
                Issue.record("no complete head before the close")
            }
        }
        #expect(await client.isClosed(within: .seconds(1)))
        client.close()
        await harness.stop()
        try await upstream.shutdown()
    }

    /// A body delimited by the close of the connection ends with a FIN; a reset in its middle is a failure, and the
    /// client (to whom Ficus re-frames the body as chunked) must see the connection close without a last chunk.
    @Test func resetDuringACloseDelimitedBodyIsNotMadeToLookComplete() async throws {
        let body = TestUpstream.patternBytes(count: 1000)
        let head = Array("HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n\r\n".utf8)
        let upstream = try await ScriptedUpstream.start(head + body, then: .reset, group: testGroup)
        let harness = try await ProxyHarness.start(
            upstreams: [("backend", [upstream.address])],
            defaultUpstream: "backend",
            configure: Self.tight()
        )
        let client = try await harness.client()
        try await client.send(HTTPTestClient.requestBytes(path: "/until-close"))
        do {
            let response = try await client.readResponse(timeout: .seconds(3))
            Issue.record(
                """
                a reset close-delimited body reached the client as a complete response: \
                status \(String(describing: response?.status)), \
                transfer-encoding \(String(describing: response?.header("transfer-encoding"))), \
                \(response?.body.count ?? 0) body bytes
                """
            )
        } catch let error as FicusTestingError {
            #expect(error.kind == .closedMidResponse, "\(error)")
        }
        #expect(await client.isClosed(within: .seconds(1)))
        client.close()
        await harness.stop()
        await upstream.shutdown()
    }

    /// The same body ended by a FIN is complete: Ficus re-frames it as chunked and ends it properly.
    @Test func closeDelimitedBodyEndedByFINIsComplete() async throws {
        let body = TestUpstream.patternBytes(count: 1000)
        let head = Array("HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n\r\n".utf8)
        let upstream = try await ScriptedUpstream.start(head + body, then: .close, group: testGroup)
        let harness = try await ProxyHarness.start(
            upstreams: [("backend", [upstream.address])],
            defaultUpstream: "backend",
            configure: Self.tight()
        )
        let client = try await harness.client()
        let response = try await client.request(path: "/until-close", timeout: .seconds(3))
        #expect(response.status == 200)
        #expect(response.body == body)
        client.close()
        await harness.stop()
        await upstream.shutdown()
    }

    // MARK: Pool limits

    @Test func poolOverflowIs503WithRetryAfter() async throws {
        let upstream = try await TestUpstream.start(.hang, group: testGroup)
        let harness = try await Self.startOnOneLoop(upstream: upstream.address) {
            $0.timeouts.connect = .seconds(3)  // the queued client must still be queued when the third arrives
            $0.pool.maxConnectionsPerUpstream = 1
            $0.pool.maxPendingPerUpstream = 1
        }
        let first = try await harness.client()
        try await first.send(HTTPTestClient.requestBytes(path: "/first"))
        _ = try await upstream.waitForRequests(1, timeout: .seconds(2))
        let second = try await harness.client()
        try await second.send(HTTPTestClient.requestBytes(path: "/second"))
        try await Task.sleep(for: .milliseconds(100))
        let third = try await harness.client()
        let start = ContinuousClock.now
        let response = try await third.request(path: "/third", timeout: .seconds(2))
        #expect(response.status == 503)
        #expect(response.header("retry-after") != nil)
        #expect(response.header("content-type") == "application/json")
        #expect(Self.json(response)["error"] == "upstream_overloaded")
        #expect(Self.json(response)["upstream"] == "backend")
        #expect(ContinuousClock.now - start < .seconds(1), "overflow must be refused at once, not after a wait")
        // The second client is still queued, not refused.
        await #expect(throws: FicusTestingError.self) { try await second.readResponse(timeout: .milliseconds(100)) }
        #expect(upstream.connectionsAccepted == 1)
        #expect(upstream.received.map(\.uri) == ["/first"])
        first.close()
        second.close()
        third.close()
        await harness.stop()
        try await upstream.shutdown()
    }

    // MARK: Keep-alive and retries

    /// A GET on a reused connection found dead is sent again once on a fresh connection.
    @Test func idempotentRequestOnADeadReusedConnectionIsResentOnce() async throws {
        let upstream = try await FirstRequestOnlyUpstream.start(group: testGroup)
        let harness = try await ProxyHarness.start(
            upstreams: [("backend", [upstream.address])],
            defaultUpstream: "backend",
            configure: Self.tight()
        )
        let client = try await harness.client()
        let first = try await client.request(path: "/one", timeout: .seconds(3))
        #expect(first.status == 200)
        #expect(first.bodyString == "first on connection 1")
        let second = try await client.request(path: "/two", timeout: .seconds(3))
        #expect(second.status == 200)
        #expect(second.bodyString == "first on connection 2")
        client.close()
        await harness.stop()  // nothing more can arrive
        let seen = upstream.requests.map { "\($0.connection) \($0.method) \($0.uri)" }
        #expect(seen == ["1 GET /one", "1 GET /two", "2 GET /two"])
        #expect(upstream.connectionsAccepted == 2)
        client.close()
        await harness.stop()
        await upstream.shutdown()
    }

    /// A request whose body went out on a reused connection found dead is answered 502 and never sent again.
    @Test(arguments: ["POST", "PUT"])
    func requestWithABodyOnADeadReusedConnectionIsNotResent(_ method: String) async throws {
        let upstream = try await FirstRequestOnlyUpstream.start(group: testGroup)
        let harness = try await ProxyHarness.start(
            upstreams: [("backend", [upstream.address])],
            defaultUpstream: "backend",
            configure: Self.tight()
        )
        let client = try await harness.client()
        let first = try await client.request(path: "/warm", timeout: .seconds(3))
        #expect(first.status == 200)
        let response = try await client.request(
            method: method,
            path: "/write",
            body: Array("{\"order\":1}".utf8),
            timeout: .seconds(3)
        )
        #expect(response.status == 502)
        #expect(Self.json(response)["upstream"] == "backend")
        #expect(Self.json(response)["error"] == "upstream_reset")
        client.close()
        await harness.stop()  // nothing more can arrive
        let writes = upstream.requests.filter { $0.method == method }
        #expect(writes.count == 1, "\(method) sent \(writes.count) times")
        #expect(upstream.connectionsAccepted == 1, "a new connection was opened to re-send the \(method)")
        client.close()
        await harness.stop()
        await upstream.shutdown()
    }

    @Test func upstreamConnectionCloseIsHonoured() async throws {
        let (harness, upstream) = try await ProxyHarness.start(.closeAfterResponse(.echo), configure: Self.tight())
        let client = try await harness.client()
        let first = try await client.request(path: "/a", timeout: .seconds(3))
        #expect(first.status == 200)
        // The upstream's Connection: close is hop-by-hop: the client connection stays open.
        #expect(first.header("connection")?.lowercased() != "close")
        let second = try await client.request(path: "/b", timeout: .seconds(3))
        #expect(second.status == 200)
        #expect(upstream.received.map(\.connectionID) == [1, 2])
        #expect(upstream.connectionsAccepted == 2)
        client.close()
        await harness.stop()
        try await upstream.shutdown()
    }

    @Test func clientConnectionCloseIsHonoured() async throws {
        let (harness, upstream) = try await ProxyHarness.start(.echo, configure: Self.tight())
        let client = try await harness.client()
        try await client.send(
            HTTPTestClient.requestBytes(path: "/bye", headers: [("Connection", "close")])
                + HTTPTestClient.requestBytes(path: "/pipelined")
        )
        let response = try await client.readResponse(timeout: .seconds(3))
        #expect(response?.status == 200)
        #expect(response?.header("connection")?.lowercased() == "close")
        #expect(await client.isClosed(within: .seconds(1)))
        await harness.stop()  // nothing more can arrive
        #expect(upstream.received.map(\.uri) == ["/bye"])
        client.close()
        await harness.stop()
        try await upstream.shutdown()
    }

    // MARK: Sanity

    @Test func slowUpstreamStillAnswers() async throws {
        let (harness, upstream) = try await ProxyHarness.start(
            .slow(delay: .milliseconds(200), then: .echo),
            configure: Self.tight()
        )
        let client = try await harness.client()
        let start = ContinuousClock.now
        let response = try await client.request(method: "POST", path: "/slow", body: Array("hello".utf8))
        #expect(response.status == 200)
        #expect(response.bodyString == "hello")
        #expect(response.header("x-echo-uri") == "/slow")
        #expect(ContinuousClock.now - start >= .milliseconds(190))
        client.close()
        await harness.stop()
        try await upstream.shutdown()
    }

    // MARK: Support

    /// Timeouts short enough that no test waits on a default, then `edit`.
    static func tight(
        _ edit: @escaping (inout ProxyConfiguration) -> Void = { _ in }
    ) -> (inout ProxyConfiguration) -> Void {
        { configuration in
            configuration.timeouts.connect = .seconds(1)
            configuration.timeouts.responseHead = .seconds(2)
            configuration.timeouts.clientHeader = .seconds(2)
            configuration.timeouts.clientIdle = .seconds(5)
            configuration.timeouts.upstreamIdle = .seconds(5)
            edit(&configuration)
        }
    }

    /// A proxy like `ProxyHarness.start`, but on a one-loop group so that every client shares one upstream pool.
    static func startOnOneLoop(
        upstream address: String,
        configure: @escaping (inout ProxyConfiguration) -> Void
    ) async throws -> ProxyHarness {
        var configuration = ProxyConfiguration()
        configuration.listenHost = "127.0.0.1"
        configuration.listenPort = 0
        configuration.accessLog = false
        Self.tight(configure)(&configuration)
        let routes = Configuration.catchAll(
            upstreams: [Upstream(name: "backend", addresses: [Endpoint(parsing: address)!])],
            defaultUpstream: "backend"
        )
        let routing = RoutingState(try RoutingTable(configuration: routes, revision: 1))
        var logger = Logger(label: "ficus-test")
        logger.logLevel = .critical
        let proxy = ProxyServer(
            configuration: configuration,
            routing: routing,
            metrics: nil,
            logger: logger,
            group: oneLoop
        )
        try await proxy.start()
        return ProxyHarness(proxy: proxy, routing: routing, port: proxy.localAddress!.port!)
    }

    /// The top-level fields of a JSON answer as text; empty when the body is not a JSON object.
    static func json(_ response: RawResponse) -> [String: String] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] else {
            return [:]
        }
        return object.mapValues { "\($0)" }
    }

    static func endOfHead(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        return (0...(bytes.count - 4)).first { bytes[$0..<($0 + 4)].elementsEqual([13, 10, 13, 10]) }
    }

    /// Polls `condition` every 10 ms for up to `timeout`.
    static func eventually(
        within timeout: Duration = .seconds(2),
        _ condition: () -> Bool
    ) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }
}
