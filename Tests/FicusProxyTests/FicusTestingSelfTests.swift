import FicusTesting
import NIOCore
import NIOPosix
import Testing

/// Checks the test support itself against real loopback sockets, without the proxy.
///
/// Integration tests trust these servers and this client to tell the truth; a bug here would make proxy tests pass
/// or fail for the wrong reason.
@Suite struct FicusTestingSelfTests {
    let group = MultiThreadedEventLoopGroup.singleton

    private func withUpstream(
        _ behavior: TestUpstream.Behavior,
        _ body: (TestUpstream, RawClient) async throws -> Void
    ) async throws {
        let upstream = try await TestUpstream.start(behavior, group: self.group)
        let client = try await RawClient.connect(port: upstream.port, group: self.group)
        do {
            try await body(upstream, client)
        } catch {
            client.close()
            try await upstream.shutdown()
            throw error
        }
        client.close()
        try await upstream.shutdown()
    }

    @Test func echoRoundTripIsRecorded() async throws {
        try await self.withUpstream(.echo) { upstream, client in
            let response = try await client.request(
                method: "POST",
                path: "/orders?id=7",
                headers: [("X-Trace", "a"), ("x-trace", "b")],
                body: Array("hello".utf8)
            )
            #expect(response.status == 200)
            #expect(response.version == "HTTP/1.1")
            #expect(response.header("x-echo-method") == "POST")
            #expect(response.header("X-Echo-URI") == "/orders?id=7")
            #expect(response.header("X-Echo-Version") == "HTTP/1.1")
            #expect(response.header("Content-Length") == "5")
            #expect(response.bodyString == "hello")
            let recorded = try await upstream.waitForRequests(1, timeout: .seconds(2))
            #expect(recorded.count == 1)
            #expect(recorded[0].method == "POST")
            #expect(recorded[0].uri == "/orders?id=7")
            #expect(recorded[0].headers("X-TRACE") == ["a", "b"])
            #expect(recorded[0].header("host") == "localhost")
            #expect(recorded[0].bodyString == "hello")
            #expect(recorded[0].trailers == nil)
            #expect(recorded[0].connectionID == 1)
        }
    }

    @Test func keepAliveRecordsEveryRequestOnOneConnection() async throws {
        try await self.withUpstream(.echo) { upstream, client in
            for index in 0..<5 {
                let response = try await client.request(path: "/r\(index)")
                #expect(response.header("X-Echo-URI") == "/r\(index)")
            }
            let recorded = try await upstream.waitForRequests(5, timeout: .seconds(2))
            #expect(recorded.map(\.uri) == ["/r0", "/r1", "/r2", "/r3", "/r4"])
            #expect(recorded.allSatisfy { $0.connectionID == 1 })
            #expect(upstream.connectionsAccepted == 1)

            let second = try await RawClient.connect(port: upstream.port, group: self.group)
            defer { second.close() }
            _ = try await second.request(path: "/other")
            let all = try await upstream.waitForRequests(6, timeout: .seconds(2))
            #expect(all.last?.connectionID == 2)
            #expect(upstream.connectionsAccepted == 2)
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        try await self.withUpstream(.echo) { _, client in
            let bytes = (1...3).flatMap { HTTPTestClient.requestBytes(path: "/p\($0)") }
            try await client.send(bytes)
            for index in 1...3 {
                let response = try #require(try await client.readResponse())
                #expect(response.header("X-Echo-URI") == "/p\(index)")
            }
        }
    }

    @Test func headAnswersHaveNoBody() async throws {
        let behavior = TestUpstream.Behavior.fixed(status: 200, headers: [("X-A", "1")], body: Array("abc".utf8))
        try await self.withUpstream(behavior) { _, client in
            let head = try await client.request(method: "HEAD", path: "/")
            #expect(head.header("content-length") == "3")
            #expect(head.body.isEmpty)
            let get = try await client.request(path: "/")
            #expect(get.status == 200)
            #expect(get.bodyString == "abc")
        }
    }

    @Test func fixedResponseIsWrittenAsGiven() async throws {
        let behavior = TestUpstream.Behavior.fixed(status: 404, headers: [("X-Why", "gone")], body: Array("no".utf8))
        try await self.withUpstream(behavior) { _, client in
            let response = try await client.request(path: "/missing")
            #expect(response.status == 404)
            #expect(response.reason == "Not Found")
            #expect(response.header("X-Why") == "gone")
            #expect(response.bodyString == "no")
            let text = String(decoding: response.raw, as: UTF8.self)
            #expect(text == "HTTP/1.1 404 Not Found\r\nX-Why: gone\r\ncontent-length: 2\r\n\r\nno")
        }
    }

    @Test func chunkedResponseKeepsTrailers() async throws {
        let behavior = TestUpstream.Behavior.chunked(
            parts: [Array("hel".utf8), [], Array("lo".utf8)],
            trailers: [("X-Checksum", "42")]
        )
        try await self.withUpstream(behavior) { _, client in
            let response = try await client.request(path: "/stream")
            #expect(response.header("transfer-encoding") == "chunked")
            #expect(response.bodyString == "hello")
            #expect(response.trailer("x-checksum") == "42")
            let text = String(decoding: response.raw, as: UTF8.self)
            #expect(text.hasSuffix("3\r\nhel\r\n2\r\nlo\r\n0\r\nX-Checksum: 42\r\n\r\n"))
            let again = try await client.request(path: "/again")
            #expect(again.bodyString == "hello")
        }
    }

    @Test func chunkedRequestIsRecordedWithTrailers() async throws {
        try await self.withUpstream(.echo) { upstream, client in
            try await client.send(
                "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "4\r\nwiki\r\n5\r\npedia\r\n0\r\nX-Sum: 9\r\n\r\n"
            )
            let response = try #require(try await client.readResponse())
            #expect(response.bodyString == "wikipedia")
            let recorded = try await upstream.waitForRequests(1, timeout: .seconds(2))
            #expect(recorded[0].bodyString == "wikipedia")
            #expect(recorded[0].header("transfer-encoding") == "chunked")
            #expect(recorded[0].trailers?.first?.0 == "X-Sum")
            #expect(recorded[0].trailers?.first?.1 == "9")
        }
    }

    @Test func slowWaitsBeforeTheHead() async throws {
        try await self.withUpstream(.slow(delay: .milliseconds(300), then: .echo)) { _, client in
            let start = NIODeadline.now()
            try await client.send(HTTPTestClient.requestBytes(path: "/slow"))
            let response = try #require(try await client.readResponse())
            #expect(response.header("X-Echo-URI") == "/slow")
            // Nothing can arrive before the delay: measuring the arrival is robust where a short read timeout is not.
            #expect(NIODeadline.now() - start >= .milliseconds(300))
        }
    }

    @Test func largeBodyArrivesWholeAndInOrder() async throws {
        let size = 3 * 1024 * 1024 + 17
        try await self.withUpstream(.largeBody(bytes: size)) { _, client in
            let response = try await client.request(path: "/big", timeout: .seconds(20))
            #expect(response.header("content-length") == String(size))
            #expect(response.body.count == size)
            #expect(response.body == TestUpstream.patternBytes(count: size))
            let next = try await client.request(method: "HEAD", path: "/big")
            #expect(next.body.isEmpty)
        }
    }

    @Test func resetBeforeHeadRecordsThenResets() async throws {
        try await self.withUpstream(.resetBeforeHead) { upstream, client in
            try await client.send(HTTPTestClient.requestBytes(path: "/boom"))
            let response = try await client.readResponse()
            #expect(response == nil)
            #expect(client.wasReset)
            let recorded = try await upstream.waitForRequests(1, timeout: .seconds(2))
            #expect(recorded[0].uri == "/boom")
        }
    }

    @Test func resetMidBodyLeadsToAShortRead() async throws {
        try await self.withUpstream(.resetMidBody(after: 100)) { _, client in
            try await client.send(HTTPTestClient.requestBytes(path: "/cut"))
            let error = await #expect(throws: FicusTestingError.self) {
                _ = try await client.readResponse()
            }
            #expect(error?.kind == .closedMidResponse)
            let partial = error?.partial ?? []
            let text = String(decoding: partial, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 200 OK\r\ncontent-length: 1124\r\n\r\n"))
            #expect(Array(partial.suffix(100)) == TestUpstream.patternBytes(count: 100))
            #expect(client.wasReset)
        }
    }

    @Test func hangRecordsButNeverAnswers() async throws {
        try await self.withUpstream(.hang) { upstream, client in
            try await client.send(HTTPTestClient.requestBytes(path: "/hang"))
            let recorded = try await upstream.waitForRequests(1, timeout: .seconds(2))
            #expect(recorded[0].uri == "/hang")
            let error = await #expect(throws: FicusTestingError.self) {
                _ = try await client.readResponse(timeout: .milliseconds(200))
            }
            #expect(error?.kind == .timedOut)
            #expect(await client.isClosed(within: .milliseconds(50)) == false)
        }
    }

    @Test func rawBytesArriveVerbatim() async throws {
        let bytes = Array("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc".utf8)
        try await self.withUpstream(.raw(bytes)) { _, client in
            try await client.send(HTTPTestClient.requestBytes(path: "/raw"))
            let received = try await client.readAll(timeout: .milliseconds(300))
            #expect(received == bytes)
            #expect(await client.isClosed(within: .milliseconds(50)) == false)
        }
        try await self.withUpstream(.raw(bytes)) { _, client in
            try await client.send(HTTPTestClient.requestBytes(path: "/raw"))
            let error = await #expect(throws: FicusTestingError.self) {
                _ = try await client.readResponse()
            }
            #expect(error?.kind == .malformedResponse)
        }
    }

    @Test func closeAfterResponseClosesTheConnection() async throws {
        try await self.withUpstream(.closeAfterResponse(.echo)) { upstream, client in
            let response = try await client.request(path: "/once")
            #expect(response.header("connection") == "close")
            #expect(await client.isClosed(within: .seconds(2)))
            #expect(try await client.readResponse() == nil)
            #expect(upstream.received.count == 1)
        }
    }

    @Test func customBuildsTheAnswerFromTheRequest() async throws {
        let behavior = TestUpstream.Behavior.custom { request in
            TestUpstream.Response(status: 201, headers: [("X-Seen", request.header("x-id") ?? "none")], body: "ok")
        }
        try await self.withUpstream(behavior) { upstream, client in
            let response = try await client.request(path: "/c", headers: [("X-Id", "17")])
            #expect(response.status == 201)
            #expect(response.header("X-Seen") == "17")
            #expect(response.bodyString == "ok")
            upstream.setBehavior(.fixed(status: 503, headers: [], body: []))
            let after = try await client.request(path: "/c")
            #expect(after.status == 503)
            #expect(after.header("content-length") == "0")
        }
    }

    @Test func expectContinueAndHTTP10AreRecorded() async throws {
        try await self.withUpstream(.echo) { upstream, client in
            try await client.send("POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi")
            let response = try #require(try await client.readResponse())
            #expect(response.bodyString == "hi")
            try await client.send("GET /old HTTP/1.0\r\n\r\n")
            let old = try #require(try await client.readResponse())
            #expect(old.header("X-Echo-Version") == "HTTP/1.0")
            #expect(old.header("connection") == "close")
            #expect(await client.isClosed(within: .seconds(2)))
            let recorded = try await upstream.waitForRequests(2, timeout: .seconds(2))
            #expect(recorded[0].header("expect") == "100-continue")
            #expect(recorded[1].version == "HTTP/1.0")
        }
    }

    @Test func malformedRequestIsRefusedAndNotRecorded() async throws {
        try await self.withUpstream(.echo) { upstream, client in
            try await client.send(
                "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            let response = try #require(try await client.readResponse())
            #expect(response.status == 400)
            #expect(await client.isClosed(within: .seconds(2)))
            #expect(upstream.received.isEmpty)
        }
    }

    @Test func waitForRequestsTimesOut() async throws {
        let upstream = try await TestUpstream.start(.echo, group: self.group)
        let error = await #expect(throws: FicusTestingError.self) {
            _ = try await upstream.waitForRequests(1, timeout: .milliseconds(100))
        }
        #expect(error?.kind == .timedOut)
        #expect(upstream.address == "127.0.0.1:\(upstream.port)")
        try await upstream.shutdown()
    }

    @Test func convenienceGetUsesAFreshConnection() async throws {
        let upstream = try await TestUpstream.start(.echo, group: self.group)
        let first = try await HTTPTestClient.get(port: upstream.port, path: "/a", group: self.group)
        let second = try await HTTPTestClient.get(port: upstream.port, path: "/b", group: self.group)
        #expect(first.header("X-Echo-URI") == "/a")
        #expect(second.header("X-Echo-URI") == "/b")
        #expect(upstream.connectionsAccepted == 2)
        #expect(upstream.received.map(\.connectionID) == [1, 2])
        try await upstream.shutdown()
    }
}
