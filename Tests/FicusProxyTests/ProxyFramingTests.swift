import FicusTesting
import NIOCore
import Testing

@Suite("Framing refusals through a real proxy", .serialized)
struct ProxyFramingTests {
    /// Each bad request, with `GET /smuggled` pipelined behind it, earns its status, `Connection: close`, a closed
    /// connection, and an upstream that never sees a complete request.
    @Test(arguments: FramingCases.refused)
    func refusedAndNothingForwarded(_ refused: FramingCases.Refused) async throws {
        try await ProxyHarness.with(.echo) { harness, upstream in
            let client = try await harness.client()
            defer { client.close() }
            try await client.send(refused.request + "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
            let response = try await client.readResponse()
            #expect(response?.status == refused.status, "\(refused.name)")
            #expect(response?.header("connection")?.lowercased() == "close", "\(refused.name)")
            #expect(await client.isClosed(within: .seconds(2)), "\(refused.name)")
            try await Task.sleep(for: .milliseconds(50))
            #expect(upstream.received.isEmpty, "\(refused.name): \(upstream.received.map(\.uri))")
            #expect(!upstream.received.contains { $0.uri == "/smuggled" })
        }
    }

    @Test func unknownFieldThatLooksLikeTransferEncodingIsForwardedAsAField() async throws {
        try await ProxyHarness.with(.echo) { harness, upstream in
            let client = try await harness.client()
            defer { client.close() }
            try await client.send("GET /a HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n")
            let response = try await client.readResponse()
            #expect(response?.status == 200)
            let received = try await upstream.waitForRequests(1, timeout: .seconds(2))
            #expect(received[0].header("transfer_encoding") == "chunked")
            #expect(received[0].header("transfer-encoding") == nil)
        }
    }

    @Test func absoluteFormTargetNeverConnectsElsewhere() async throws {
        try await ProxyHarness.with(.echo) { harness, upstream in
            let client = try await harness.client()
            defer { client.close() }
            try await client.send("GET http://169.254.169.254/latest/meta-data?x=1 HTTP/1.1\r\nHost: ignored\r\n\r\n")
            let response = try await client.readResponse()
            #expect(response?.status == 200)
            let received = try await upstream.waitForRequests(1, timeout: .seconds(2))
            #expect(received[0].uri == "/latest/meta-data?x=1")
            #expect(received[0].header("host") == "169.254.169.254")
        }
    }

    @Test func badUpstreamFramingIs502AndTheConnectionIsDiscarded() async throws {
        let cases = [
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello",
            "HTTP/1.1 200 OK\r\nContent-Length: five\r\n\r\nhello",
            "HTTP/1.1 200 OK\r\nX-A: b\r\n folded\r\nContent-Length: 0\r\n\r\n",
        ]
        for raw in cases {
            let (harness, upstream) = try await ProxyHarness.start(.raw(Array(raw.utf8)))
            let client = try await harness.client()
            try await client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            let response = try await client.readResponse()
            #expect(response?.status == 502, "\(raw)")
            #expect(response?.bodyString.contains("backend") == true)
            // The upstream connection was discarded: a second request needs a new one.
            try await client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            _ = try await client.readResponse()
            #expect(upstream.connectionsAccepted == 2, "\(raw)")
            client.close()
            await harness.stop()
            try await upstream.shutdown()
        }
    }
}
