import FicusCore
import FicusTesting
import Foundation
import NIOCore
import Testing

@testable import FicusProxy

/// The small things an edge proxy gets right (issue 14), through a real proxy on loopback sockets.
@Suite("Edge hardening through a real proxy", .serialized)
struct ProxyEdgeTests {
    /// Fields an upstream would believe about the client or the URL: removed from untrusted peers, kept from trusted
    /// ones; the operator's extra names too.
    @Test func clientForwardingFieldsAreRemovedFromUntrustedPeersOnly() async throws {
        let fields = [
            ("Forwarded", "for=6.6.6.6"), ("X-Real-IP", "6.6.6.6"), ("True-Client-IP", "6.6.6.6"),
            ("X-Original-URL", "/admin"), ("X-Rewrite-URL", "/admin"), ("X-Internal-User", "root"),
            ("X-Ficus-Shadow", "1"), ("X-Kept", "yes"),
        ]
        for trusted in [false, true] {
            let (harness, upstream) = try await ProxyHarness.start(.echo) { configuration in
                configuration.untrustedFields = ["x-internal-user"]
                if trusted { configuration.trustedProxies = [CIDR("127.0.0.0/8")!] }
            }
            let client = try await harness.client()
            let response = try await client.request(path: "/", headers: fields)
            #expect(response.status == 200)
            let received = try await upstream.waitForRequests(1, timeout: .seconds(2))[0]
            for name in ["forwarded", "x-real-ip", "true-client-ip", "x-original-url", "x-rewrite-url", "x-internal-user"] {
                #expect((received.header(name) != nil) == trusted, "\(name), trusted: \(trusted)")
            }
            // A client's X-Ficus-* field never reaches an upstream, trusted or not.
            #expect(received.header("x-ficus-shadow") == nil)
            #expect(received.header("x-kept") == "yes")
            client.close()
            await harness.stop()
            try await upstream.shutdown()
        }
    }

    /// `/orders/../admin` is routed (and forwarded) as `/admin`, never as `/orders`.
    @Test func dotSegmentsAreRemovedBeforeRoutingAndForwarding() async throws {
        let orders = try await TestUpstream.start(.echo, group: testGroup)
        let other = try await TestUpstream.start(.echo, group: testGroup)
        let configuration = Configuration(
            upstreams: [
                Upstream(name: "orders", addresses: [Endpoint(parsing: orders.address)!]),
                Upstream(name: "other", addresses: [Endpoint(parsing: other.address)!]),
            ],
            routes: [
                Route(name: "orders", path: "/orders", legacy: "orders"),
                Route(name: "rest", legacy: "other"),
            ]
        )
        let harness = try await ProxyHarness.start(configuration: configuration)
        let client = try await harness.client()
        for (target, _) in [
            ("/orders/../admin", "/admin"), ("/orders/%2e%2e/admin?x=1", "/admin?x=1"), ("/orders/./a/../b", "/orders/b"),
        ] {
            try await client.send("GET \(target) HTTP/1.1\r\nHost: a\r\n\r\n")
            let response = try #require(try await client.readResponse())
            #expect(response.status == 200)
        }
        let toOther = try await other.waitForRequests(2, timeout: .seconds(2)).map(\.uri)
        #expect(toOther == ["/admin", "/admin?x=1"])
        let toOrders = try await orders.waitForRequests(1, timeout: .seconds(2)).map(\.uri)
        #expect(toOrders == ["/orders/b"])
        client.close()
        await harness.stop()
        try await orders.shutdown()
        try await other.shutdown()
    }

    /// `Upgrade: h2c` is an offer Ficus declines by answering in HTTP/1.1; the upgrade fields do not travel on.
    @Test func h2cUpgradeIsIgnoredAndAnsweredInHTTP11() async throws {
        let (harness, upstream) = try await ProxyHarness.start(.echo)
        let client = try await harness.client()
        try await client.send(
            "GET /h2c HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                + "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
        )
        let response = try #require(try await client.readResponse())
        #expect(response.status == 200)
        let received = try await upstream.waitForRequests(1, timeout: .seconds(2))[0]
        #expect(received.header("upgrade") == nil)
        #expect(received.header("http2-settings") == nil)
        // Any protocol other than websocket (tunnelled, see ProxyWebSocketTests) is still refused.
        try await client.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c, TLS/1.0\r\n\r\n")
        let refused = try #require(try await client.readResponse())
        #expect(refused.status == 501)
        client.close()
        await harness.stop()
        try await upstream.shutdown()
    }

    /// An h2c offer with a body, on a plain listener and on a TLS one whose client chose HTTP/1.1 by ALPN (HTTP/2
    /// on): answered in HTTP/1.1 without a 101, the body forwarded, no upgrade field forwarded or answered, and the
    /// connection goes on in HTTP/1.1 (docs/PROXY.md, WebSocket: "`Upgrade: h2c` is ignored").
    @Test(arguments: [false, true])
    func h2cUpgradeWithABodyIsAnsweredInHTTP11OnTheSameConnection(tls: Bool) async throws {
        let files = try ProxyTLSTests.ListenerFiles()
        defer { try? FileManager.default.removeItem(at: files.directory) }
        let configure: (inout ProxyConfiguration) -> Void = { if tls { $0.tls = files.configuration() } }
        try await ProxyHarness.with(.echo, configure: configure) { harness, upstream in
            let client =
                tls
                ? try await RawClient.connect(
                    port: harness.port, group: testGroup, tls: try files.client(), serverHostname: "localhost")
                : try await harness.client()
            defer { client.close() }
            try await client.send(
                "POST /h2c HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                    + "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nContent-Length: 5\r\n\r\nhello"
            )
            let response = try #require(try await client.readResponse())
            #expect(response.status == 200 && response.version == "HTTP/1.1", "\(response.status) \(response.version)")
            #expect(response.bodyString == "hello")
            #expect(response.header("upgrade") == nil)
            #expect(response.header("connection")?.lowercased().contains("upgrade") != true)
            let received = try await upstream.waitForRequests(1, timeout: .seconds(2))[0]
            #expect(received.method == "POST" && received.body == Array("hello".utf8))
            #expect(received.header("upgrade") == nil)
            #expect(received.header("http2-settings") == nil)
            let connection = received.headers("connection").joined(separator: ",").lowercased()
            #expect(!connection.contains("upgrade") && !connection.contains("http2-settings"), "\(connection)")
            // The connection is still HTTP/1.1: the next request on it is answered as one.
            let next = try await client.request(path: "/next")
            #expect(next.status == 200 && next.version == "HTTP/1.1")
            #expect(upstream.received.map(\.uri) == ["/h2c", "/next"])
        }
    }

    /// An absolute-form target's authority is checked like a Host field.
    @Test(arguments: [
        "GET http://user@evil/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http://a b/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET gopher://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http://a\"b/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET orders/1 HTTP/1.1\r\nHost: a\r\n\r\n",
    ])
    func badAbsoluteFormIs400(request: String) async throws {
        let (harness, upstream) = try await ProxyHarness.start(.echo)
        let client = try await harness.client()
        try await client.send(request + "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
        let response = try await client.readResponse()
        #expect(response?.status == 400, "\(request)")
        #expect(response?.header("connection")?.lowercased() == "close")
        #expect(upstream.received.isEmpty)
        client.close()
        await harness.stop()
        try await upstream.shutdown()
    }

    /// A 204 or 304 reaches the client without Content-Length and without the body an upstream wrongly sent; the
    /// stray bytes make the upstream connection unusable, never the start of the next answer.
    @Test func bodilessStatusesLoseContentLengthAndBody() async throws {
        for status in [204, 304] {
            let raw = "HTTP/1.1 \(status) X\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello"
            let (harness, upstream) = try await ProxyHarness.start(.raw(Array(raw.utf8)))
            let client = try await harness.client()
            try await client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            let response = try #require(try await client.readResponse())
            #expect(response.status == status)
            #expect(response.header("content-length") == nil, "\(status)")
            #expect(response.header("x-a") == "b")
            #expect(response.body.isEmpty)
            client.close()
            await harness.stop()
            try await upstream.shutdown()
        }
    }

    /// The request that used to kill the process: a chunked body whose sizes sum past Int64.max is 413, and the
    /// proxy keeps answering; the same bytes from an upstream are a 502.
    @Test func chunkSumPastInt64MaxLeavesTheProxyRunning() async throws {
        let (harness, upstream) = try await ProxyHarness.start(.echo)
        let client = try await harness.client()
        try await client.send(
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n7fffffffffffffff\r\n"
        )
        let response = try #require(try await client.readResponse())
        #expect(response.status == 413)
        client.close()
        let again = try await harness.client()
        let ok = try await again.request(path: "/still-alive")
        #expect(ok.status == 200)
        again.close()
        await harness.stop()
        try await upstream.shutdown()

        let hostile = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n7fffffffffffffff\r\n"
        let (second, bad) = try await ProxyHarness.start(.raw(Array(hostile.utf8)))
        for _ in 0..<2 {
            let client2 = try await second.client()
            try await client2.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            let text = String(decoding: try await client2.readAll(timeout: .seconds(3)), as: UTF8.self)
            // The head was already forwarded: the client sees the connection close, never a complete-looking body.
            #expect(text.hasPrefix("HTTP/1.1 200"), "\(text)")
            #expect(!text.hasSuffix("0\r\n\r\n"), "\(text)")
            #expect(await client2.isClosed(within: .seconds(2)))
            client2.close()
        }
        await second.stop()
        try await bad.shutdown()
    }

    /// A route's connect timeout bounds the wait for its upstream (it used to be stored and never used), and a
    /// timeout past 24 h is refused (a routing table is never built from it, whatever the store holds), so nothing
    /// multiplies it into nanoseconds past `Int64.max`.
    @Test func routeTimeoutsApplyAndHostileOnesAreRefused() async throws {
        let blackhole = try BlackholeListener.start()
        defer { blackhole.close() }
        var route = Route(name: "slow", legacy: "backend")
        route.timeouts = RouteTimeouts(connectMilliseconds: 200, responseHeaderMilliseconds: RouteTimeouts.maxMilliseconds)
        var configuration = Configuration(
            upstreams: [Upstream(name: "backend", addresses: [Endpoint(parsing: "127.0.0.1:\(blackhole.port)")!])],
            routes: [route]
        )
        let harness = try await ProxyHarness.start(configuration: configuration) {
            $0.timeouts.connect = .seconds(5)
        }
        let client = try await harness.client()
        let started = ContinuousClock.now
        let response = try await client.request(path: "/", timeout: .seconds(4))
        #expect(response.status == 503)
        #expect(ContinuousClock.now - started < .seconds(2), "the route's 200 ms connect timeout was not used")
        client.close()
        await harness.stop()
        configuration.routes[0].timeouts.responseHeaderMilliseconds = Int.max
        let messages = configuration.validate().map(\.description)
        #expect(messages.contains { $0.contains("response_header_milliseconds must be at most 86400000") }, "\(messages)")
        #expect(throws: (any Error).self) { try RoutingTable(configuration: configuration, revision: 2) }
    }

    /// An HTTP/1.0 request without Host is forwarded as HTTP/1.1 with the upstream's name as Host, as nginx does
    /// (found by fuzzing: it went out as HTTP/1.1 without Host, which a strict upstream refuses).
    @Test func anHTTP10RequestWithoutHostGetsTheUpstreamsName() async throws {
        let (harness, upstream) = try await ProxyHarness.start(.echo)
        let client = try await harness.client()
        try await client.send("GET /a HTTP/1.0\r\nX-A: 1\r\n\r\n")
        let response = try #require(try await client.readResponse())
        #expect(response.status == 200)
        let received = try await upstream.waitForRequests(1, timeout: .seconds(2))[0]
        #expect(received.version == "HTTP/1.1")
        #expect(received.headers("host") == ["backend"])
        client.close()
        await harness.stop()
        try await upstream.shutdown()
        #expect(HeaderHygiene.hostName(forUpstream: "orders@green") == "orders")
    }
}
