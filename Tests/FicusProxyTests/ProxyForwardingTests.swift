import FicusCore
import FicusTesting
import NIOCore
import Testing

@Suite("Forwarding through a real proxy", .serialized)
struct ProxyForwardingTests {
    @Test func forwardingFieldsAreSet() async throws {
        try await ProxyHarness.with(.echo) { harness, upstream in
            let client = try await harness.client()
            defer { client.close() }
            let response = try await client.request(path: "/orders/1?x=2", host: "shop.example:8080")
            #expect(response.status == 200)
            #expect(response.header("x-echo-uri") == "/orders/1?x=2")
            let received = try await upstream.waitForRequests(1, timeout: .seconds(2))[0]
            #expect(received.header("x-forwarded-for") == "127.0.0.1")
            #expect(received.header("x-forwarded-proto") == "http")
            #expect(received.header("x-forwarded-host") == "shop.example:8080")
            #expect(received.header("host") == "shop.example:8080")
            #expect(received.header("via") == "1.1 ficus")
            #expect(received.version == "HTTP/1.1")
        }
    }

    @Test func upstreamsNamedByIPAddressAndByHostNameAreBothReached() async throws {
        // An IP literal is connected to directly, a host name is resolved at each new connection.
        let upstream = try await TestUpstream.start(.echo, group: testGroup)
        let port = try #require(Endpoint(parsing: upstream.address)).port
        let harness = try await ProxyHarness.start(
            upstreams: [("by-address", ["127.0.0.1:\(port)"]), ("by-name", ["localhost:\(port)"])],
            defaultUpstream: "by-address"
        )
        do {
            let client = try await harness.client()
            defer { client.close() }
            #expect(try await client.request(path: "/by-address").status == 200)
            harness.routing.replace(
                with: try RoutingTable(
                    configuration: .catchAll(
                        upstreams: [Upstream(name: "by-name", addresses: [Endpoint(host: "localhost", port: port)])],
                        defaultUpstream: "by-name"
                    ),
                    revision: 2
                )
            )
            #expect(try await client.request(path: "/by-name").status == 200)
            let received = try await upstream.waitForRequests(2, timeout: .seconds(2))
            #expect(received.map(\.uri) == ["/by-address", "/by-name"])
        } catch {
            await harness.stop()
            try? await upstream.shutdown()
            throw error
        }
        await harness.stop()
        try? await upstream.shutdown()
    }

    @Test func hopByHopFieldsAreRemoved() async throws {
        try await ProxyHarness.with(.echo) { harness, upstream in
            let client = try await harness.client()
            defer { client.close() }
            let response = try await client.request(
                path: "/",
                headers: [
                    ("Connection", "X-Forwarded-For, X-Custom, keep-alive"),
                    ("Keep-Alive", "timeout=5"),
                    ("Proxy-Connection", "keep-alive"),
                    ("TE", "gzip"),
                    ("Proxy-Authorization", "Basic c2VjcmV0"),
                    ("X-Custom", "hop"),
                    ("X-Forwarded-For", "6.6.6.6"),
                    ("X-Ficus-Route", "new"),
                    ("X-Kept", "yes"),
                ]
            )
            #expect(response.status == 200)
            let received = try await upstream.waitForRequests(1, timeout: .seconds(2))[0]
            for name in ["connection", "keep-alive", "proxy-connection", "te", "proxy-authorization", "x-custom", "x-ficus-route"] {
                #expect(received.header(name) == nil, "\(name) reached the upstream")
            }
            // A client naming X-Forwarded-For in Connection must not remove the one Ficus adds.
            #expect(received.headers("x-forwarded-for") == ["127.0.0.1"])
            #expect(received.header("x-kept") == "yes")
        }
    }

    @Test func teTrailersIsPassedOn() async throws {
        try await ProxyHarness.with(.echo) { harness, upstream in
            let client = try await harness.client()
            defer { client.close() }
            _ = try await client.request(path: "/", headers: [("TE", "trailers")])
            let received = try await upstream.waitForRequests(1, timeout: .seconds(2))[0]
            #expect(received.header("te") == "trailers")
        }
    }

    /// A trusted proxy's forwarding fields are kept and extended; X-Ficus-* fields reach no upstream even from it.
    @Test func trustedProxiesKeepForwardingFieldsButNeverFicusFields() async throws {
        let (harness, upstream) = try await ProxyHarness.start(.echo) { configuration in
            configuration.trustedProxies = [CIDR("127.0.0.0/8")!]
        }
        do {
            let client = try await harness.client()
            defer { client.close() }
            _ = try await client.request(
                path: "/",
                headers: [("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-Proto", "https"), ("X-Ficus-Preview", "green")]
            )
            let received = try await upstream.waitForRequests(1, timeout: .seconds(2))[0]
            #expect(received.header("x-forwarded-for") == "1.2.3.4, 127.0.0.1")
            #expect(received.header("x-forwarded-proto") == "https")
            #expect(received.header("x-ficus-preview") == nil)
        } catch {
            await harness.stop()
            try? await upstream.shutdown()
            throw error
        }
        await harness.stop()
        try? await upstream.shutdown()
    }

    @Test func requestBodiesStreamWithContentLengthAndChunked() async throws {
        try await ProxyHarness.with(.echo) { harness, upstream in
            let client = try await harness.client()
            defer { client.close() }
            let fixed = try await client.request(method: "POST", path: "/cl", body: Array("hello".utf8))
            #expect(fixed.bodyString == "hello")
            try await client.send(
                "POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Check: 7\r\nContent-Length: 99\r\n\r\n"
            )
            let chunked = try await client.readResponse()
            #expect(chunked?.bodyString == "hello world")
            let received = try await upstream.waitForRequests(2, timeout: .seconds(2))
            #expect(received[1].bodyString == "hello world")
            #expect(received[1].trailers?.first { $0.0.lowercased() == "x-check" }?.1 == "7")
            // Framing fields never travel in trailers.
            #expect(received[1].trailers?.contains { $0.0.lowercased() == "content-length" } == false)
        }
    }

    @Test func chunkedResponsesKeepTheirTrailers() async throws {
        let parts: [[UInt8]] = [Array("abc".utf8), Array("defg".utf8)]
        try await ProxyHarness.with(.chunked(parts: parts, trailers: [("X-Digest", "42")])) { harness, upstream in
            let client = try await harness.client()
            defer { client.close() }
            let response = try await client.request(path: "/", headers: [("TE", "trailers")])
            #expect(response.bodyString == "abcdefg")
            #expect(response.header("transfer-encoding") == "chunked")
            #expect(response.trailer("x-digest") == "42")
        }
    }

    @Test func bodilessAnswers() async throws {
        for status in [204, 304] {
            let (harness, upstream) = try await ProxyHarness.start(.fixed(status: status, headers: [], body: []))
            let client = try await harness.client()
            let response = try await client.request(path: "/")
            #expect(response.status == status)
            #expect(response.body.isEmpty)
            // The connection stays usable: the next answer parses cleanly.
            let again = try await client.request(path: "/")
            #expect(again.status == status)
            client.close()
            await harness.stop()
            try await upstream.shutdown()
        }
        try await ProxyHarness.with(.largeBody(bytes: 1000)) { harness, upstream in
            let client = try await harness.client()
            defer { client.close() }
            try await client.send("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
            let head = try await client.readResponse(forHEAD: true)
            #expect(head?.status == 200)
            #expect(head?.header("content-length") == "1000")
            #expect(head?.body.isEmpty == true)
            let get = try await client.request(path: "/")
            #expect(get.body.count == 1000)
        }
    }

    @Test func largeBodiesStreamBothWays() async throws {
        let size = 8 * 1024 * 1024
        try await ProxyHarness.with(.largeBody(bytes: size)) { harness, upstream in
            let client = try await harness.client()
            defer { client.close() }
            let response = try await client.request(path: "/big", timeout: .seconds(30))
            #expect(response.body.count == size)
            #expect(response.body == TestUpstream.patternBytes(count: size))

            try await ProxyHarness.with(.echo) { echoHarness, _ in
                let echoClient = try await echoHarness.client()
                defer { echoClient.close() }
                let upload = TestUpstream.patternBytes(count: 5 * 1024 * 1024)
                let echoed = try await echoClient.request(
                    method: "PUT", path: "/upload", body: upload, timeout: .seconds(30))
                #expect(echoed.status == 200)
                #expect(echoed.body == upload)
            }
        }
    }

    @Test func keepAliveReusesOneUpstreamConnection() async throws {
        try await ProxyHarness.with(.echo) { harness, upstream in
            let client = try await harness.client()
            defer { client.close() }
            for i in 0..<5 {
                let response = try await client.request(path: "/\(i)")
                #expect(response.header("x-echo-uri") == "/\(i)")
            }
            #expect(upstream.connectionsAccepted == 1)
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        try await ProxyHarness.with(.slow(delay: .milliseconds(20), then: .echo)) { harness, upstream in
            let client = try await harness.client()
            defer { client.close() }
            try await client.send(
                (1...3).map { "GET /p\($0) HTTP/1.1\r\nHost: a\r\n\r\n" }.joined()
                    + "POST /p4 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
            )
            var uris: [String] = []
            for _ in 1...4 {
                let response = try await client.readResponse()
                uris.append(response?.header("x-echo-uri") ?? "?")
            }
            #expect(uris == ["/p1", "/p2", "/p3", "/p4"])
        }
    }

    @Test func expectContinueIsAnsweredByTheProxy() async throws {
        try await ProxyHarness.with(.echo) { harness, upstream in
            let client = try await harness.client()
            defer { client.close() }
            try await client.send("PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
            let interim = try await client.readResponse(forHEAD: true)
            #expect(interim?.status == 100)
            try await client.send("data")
            let final = try await client.readResponse()
            #expect(final?.status == 200)
            #expect(final?.bodyString == "data")
            let received = try await upstream.waitForRequests(1, timeout: .seconds(2))[0]
            #expect(received.header("expect") == nil)
        }
    }

    @Test func http10ClientsGetCloseDelimitedOrKeepAlive() async throws {
        try await ProxyHarness.with(.chunked(parts: [Array("old".utf8)], trailers: [])) { harness, upstream in
            let client = try await harness.client()
            defer { client.close() }
            try await client.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            let raw = try await client.readAll(timeout: .seconds(3))
            let text = String(decoding: raw, as: UTF8.self)
            // An HTTP/1.0 client cannot read chunked framing: the body ends with the connection.
            #expect(text.hasSuffix("\r\n\r\nold"))
            #expect(!text.lowercased().contains("transfer-encoding"))
            #expect(text.lowercased().contains("connection: close"))
        }
    }

    @Test func clientConnectionCloseIsHonoured() async throws {
        try await ProxyHarness.with(.echo) { harness, upstream in
            let client = try await harness.client()
            defer { client.close() }
            try await client.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            let response = try await client.readResponse()
            #expect(response?.status == 200)
            #expect(response?.header("connection") == "close")
            #expect(await client.isClosed(within: .seconds(2)))
        }
    }
}
