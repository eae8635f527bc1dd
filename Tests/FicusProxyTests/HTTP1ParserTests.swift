import NIOCore
import Testing

@testable import FicusProxy

/// Parses every event of `text` and returns them, or the framing error.
private func parseAll(
    _ text: String,
    kind: HTTP1Parser.Kind = .request,
    limits: HTTPLimits = HTTPLimits(),
    method: HTTPMethodKind = .get
) -> Result<[HTTP1Parser.Event], HTTPFramingError> {
    var parser = HTTP1Parser(kind: kind, limits: limits)
    parser.expectResponse(to: method)
    var buffer = ByteBuffer(string: text)
    var events: [HTTP1Parser.Event] = []
    do {
        while let event = try parser.next(&buffer) { events.append(event) }
        return .success(events)
    } catch {
        return .failure(error)
    }
}

/// The status a request earns: 0 when it parses completely.
private func status(_ text: String, limits: HTTPLimits = HTTPLimits()) -> Int {
    switch parseAll(text, limits: limits) {
    case .success: return 0
    case .failure(let error): return error.status
    }
}

private func body(_ events: [HTTP1Parser.Event]) -> String {
    var text = ""
    for case .body(let buffer) in events { text += String(buffer: buffer) }
    return text
}

@Suite("HTTP/1.1 parser")
struct HTTP1ParserTests {
    @Test("every refusal row of docs/PROXY.md's framing table", arguments: FramingCases.refused)
    func refusals(_ refused: FramingCases.Refused) {
        #expect(status(refused.request) == refused.status, "\(refused.name)")
    }

    @Test("accepted requests", arguments: [
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n",
        "\r\nGET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
        "GET http://other.example/x?y=1 HTTP/1.1\r\nHost: other.example\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    ])
    func accepted(request: String) {
        #expect(status(request) == 0)
    }

    @Test func contentLengthBodyAndKeepAlive() throws {
        let events = try parseAll("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /y HTTP/1.1\r\nHost: a\r\n\r\n").get()
        #expect(events.count == 5)
        guard case .head(let first) = events[0], case .head(let second) = events[3] else {
            Issue.record("expected two heads")
            return
        }
        #expect(first.methodString == "POST")
        #expect(first.target == "/x")
        #expect(first.framing == .contentLength(5))
        #expect(first.wantsKeepAlive)
        #expect(body(Array(events[0..<3])) == "hello")
        #expect(second.target == "/y")
    }

    @Test func chunkedBodyWithTrailersSplitAcrossReads() throws {
        let text = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;a=b\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n"
        var parser = HTTP1Parser(kind: .request, limits: HTTPLimits())
        var pending = ByteBuffer()
        var events: [HTTP1Parser.Event] = []
        // Feed one byte at a time: every state must resume correctly.
        for byte in text.utf8 {
            pending.writeInteger(byte)
            while let event = try parser.next(&pending) { events.append(event) }
        }
        #expect(body(events) == "hello world")
        guard case .end(let trailers?) = events.last else {
            Issue.record("expected trailers")
            return
        }
        let head = HTTPHead(bytes: trailers.bytes, fields: trailers.fields, versionMinor: 1)
        #expect(head.firstValue("x-sum") == "42")
        #expect(parser.isIdle)
    }

    @Test("a detached head reads the same and no longer holds the buffer it was parsed from")
    func detachedHeadOwnsItsBytes() throws {
        let text = "GET /orders/7?x=1 HTTP/1.1\r\nHost: shop.example:8080\r\nX-Id: 42\r\n\r\n"
        var parser = HTTP1Parser(kind: .request, limits: HTTPLimits())
        // A read buffer much larger than the head, with the next request already in it.
        var buffer = ByteBufferAllocator().buffer(capacity: 16_384)
        buffer.writeString(text + "GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
        guard case .head(let head) = try parser.next(&buffer) else {
            Issue.record("expected a head")
            return
        }
        let detached = head.detached()
        let address = { (head: HTTPHead) in head.bytes.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) } }
        #expect(address(detached) != address(head))
        #expect(detached.bytes.capacity < 1024)
        #expect(String(buffer: detached.bytes) == text)
        #expect(detached.target == "/orders/7?x=1")
        #expect(detached.methodString == "GET")
        #expect(detached.firstValue("x-id") == "42")
        #expect(detached.fieldPairs.map(\.0) == head.fieldPairs.map(\.0))
        let view = RequestView(head: head, clientAddress: nil).detached()
        #expect(view.path == "/orders/7")
        #expect(view.query == "x=1")
        #expect(view.host == "shop.example")
        #expect(view.header("X-Id") == "42")
    }

    @Test("a request's host is the Host field's or the authority's name in lower case, without its port")
    func hostIsLowerCaseWithoutPort() throws {
        func host(_ request: String) throws -> String? {
            var parser = HTTP1Parser(kind: .request, limits: HTTPLimits())
            var buffer = ByteBuffer(string: request)
            guard case .head(let head) = try parser.next(&buffer) else {
                Issue.record("expected a head")
                return nil
            }
            return RequestView(head: head, clientAddress: nil).host
        }
        #expect(try host("GET / HTTP/1.1\r\nHost: shop.example:8080\r\n\r\n") == "shop.example")
        #expect(try host("GET / HTTP/1.1\r\nHost: Shop.EXAMPLE:8080\r\n\r\n") == "shop.example")
        #expect(try host("GET / HTTP/1.1\r\nHost: Shop.Example\r\n\r\n") == "shop.example")
        #expect(try host("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n") == "[::1]")
        #expect(try host("GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n") == "[::1]")
        #expect(try host("GET http://API.Example:81/x HTTP/1.1\r\nHost: other\r\n\r\n") == "api.example")
        #expect(try host("GET / HTTP/1.0\r\n\r\n") == nil)
    }

    @Test func connectionSemantics() throws {
        let close = try parseAll("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n").get()
        let http10 = try parseAll("GET / HTTP/1.0\r\n\r\n").get()
        let http10KeepAlive = try parseAll("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").get()
        guard case .head(let a) = close[0], case .head(let b) = http10[0], case .head(let c) = http10KeepAlive[0] else {
            Issue.record("expected heads")
            return
        }
        #expect(!a.wantsKeepAlive)
        #expect(!b.wantsKeepAlive)
        #expect(c.wantsKeepAlive)
    }

    @Test("upstream responses with bad framing are refused", arguments: [
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-A: b\r\n folded\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/2.0 200 OK\r\n\r\n",
        "garbage\r\n\r\n",
    ])
    func badResponses(response: String) {
        guard case .failure = parseAll(response, kind: .response, limits: .response) else {
            Issue.record("accepted: \(response)")
            return
        }
    }

    @Test func responseFraming() throws {
        let head = try parseAll("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", kind: .response, limits: .response, method: .head).get()
        #expect(head.count == 2)  // head + end: a HEAD answer has no body
        let noContent = try parseAll("HTTP/1.1 204 No Content\r\n\r\n", kind: .response, limits: .response).get()
        #expect(noContent.count == 2)
        var parser = HTTP1Parser(kind: .response, limits: .response)
        var buffer = ByteBuffer(string: "HTTP/1.1 200 OK\r\n\r\nuntil close")
        guard case .head(let untilClose)? = try parser.next(&buffer) else {
            Issue.record("expected a head")
            return
        }
        #expect(untilClose.framing == .untilClose)
        guard case .body(let rest)? = try parser.next(&buffer) else {
            Issue.record("expected a body")
            return
        }
        #expect(String(buffer: rest) == "until close")
        guard case .end? = try parser.peerClosed() else {
            Issue.record("expected the close to end the body")
            return
        }
    }

    @Test func truncatedBodyIsReported() throws {
        var parser = HTTP1Parser(kind: .response, limits: .response)
        var buffer = ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
        while try parser.next(&buffer) != nil {}
        #expect(throws: HTTPFramingError.self) { try parser.peerClosed() }
    }
}
