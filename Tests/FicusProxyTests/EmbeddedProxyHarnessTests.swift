import FicusProxy
import Testing

/// The public harness: whole exchanges through the real handler and upstream connection, with no socket.
@Suite struct EmbeddedProxyHarnessTests {
    static func text(_ bytes: [UInt8]) -> String {
        String(decoding: bytes, as: UTF8.self)
    }

    @Test func aRequestIsForwardedAndItsAnswerComesBack() throws {
        let outcome = try EmbeddedProxyHarness().run(
            client: Array("GET /orders/7?x=1 HTTP/1.1\r\nHost: api.example.com\r\n\r\n".utf8),
            upstream: Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-From: upstream\r\n\r\nok".utf8)
        )
        #expect(outcome.upstreamConnections == 1)
        let forwarded = Self.text(outcome.upstreamReceived[0])
        #expect(forwarded.hasPrefix("GET /orders/7?x=1 HTTP/1.1\r\n"), "\(forwarded)")
        #expect(forwarded.lowercased().contains("x-forwarded-for: 192.0.2.10"), "\(forwarded)")
        let answer = Self.text(outcome.clientReceived)
        #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(answer)")
        #expect(answer.contains("X-From: upstream"))
        #expect(answer.hasSuffix("\r\n\r\nok"))
        #expect(!outcome.clientClosed)
    }

    /// Bytes cut into one-byte pieces on both sides carry the same messages as whole writes (the proxy re-chunks a
    /// chunked body as it reads it, so the chunk sizes differ, but heads and payloads do not).
    @Test func piecesMakeNoDifference() throws {
        let client = Array(
            "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n".utf8)
        let upstream = Array("HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n".utf8)
        let whole = try EmbeddedProxyHarness().run(client: client, upstream: upstream)
        let pieces = try EmbeddedProxyHarness().run(
            client: client, upstream: upstream, pieces: Array(repeating: 1, count: client.count))
        let pairs = [
            (whole.clientReceived, pieces.clientReceived), (whole.upstreamReceived[0], pieces.upstreamReceived[0]),
        ]
        for (one, other) in pairs {
            let (head, payload) = Self.dechunk(Self.text(one))
            let (otherHead, otherPayload) = Self.dechunk(Self.text(other))
            #expect(head == otherHead)
            #expect(payload == otherPayload)
        }
        #expect(Self.dechunk(Self.text(pieces.clientReceived)).payload == "hi")
        #expect(Self.dechunk(Self.text(pieces.upstreamReceived[0])).payload == "abc")
        #expect(Self.text(whole.clientReceived).hasPrefix("HTTP/1.1 201 Created\r\n"))
    }

    /// The head of a chunked message and its payload with the chunk framing removed.
    static func dechunk(_ message: String) -> (head: String, payload: String) {
        let bytes = Array(message.utf8)
        let crlf: [UInt8] = [13, 10]
        func find(_ pattern: [UInt8], from start: Int) -> Int? {
            guard start + pattern.count <= bytes.count else { return nil }
            return (start...(bytes.count - pattern.count)).first { Array(bytes[$0..<$0 + pattern.count]) == pattern }
        }
        guard let headEnd = find(crlf + crlf, from: 0) else { return (message, "") }
        var position = headEnd + 4
        var payload: [UInt8] = []
        while let lineEnd = find(crlf, from: position),
            let size = Int(String(decoding: bytes[position..<lineEnd], as: UTF8.self), radix: 16), size > 0,
            lineEnd + 2 + size <= bytes.count
        {
            payload += bytes[(lineEnd + 2)..<(lineEnd + 2 + size)]
            position = lineEnd + 2 + size + 2
        }
        return (String(decoding: bytes[..<headEnd], as: UTF8.self), String(decoding: payload, as: UTF8.self))
    }

    /// A refused request: one 400 with `connection: close`, no upstream connection, and the follower never parsed.
    @Test func aRefusedRequestNeverReachesTheUpstream() throws {
        let outcome = try EmbeddedProxyHarness().run(
            client: Array(
                ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                    + "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n").utf8
            ),
            upstream: Array("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".utf8)
        )
        let answer = Self.text(outcome.clientReceived)
        #expect(answer.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), "\(answer)")
        #expect(answer.lowercased().contains("connection: close"))
        #expect(answer.components(separatedBy: "HTTP/1.1 ").count == 2)
        #expect(outcome.upstreamConnections == 0)
        #expect(outcome.clientClosed)
    }

    /// An upstream that closes without answering: 502 to the client, naming the upstream.
    @Test func anUpstreamThatSaysNothingIs502() throws {
        let outcome = try EmbeddedProxyHarness().run(
            client: Array("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx".utf8),
            upstream: []
        )
        let answer = Self.text(outcome.clientReceived)
        #expect(answer.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"), "\(answer)")
        #expect(answer.contains("upstream"))
        #expect(outcome.upstreamConnections == 1)
    }
}
