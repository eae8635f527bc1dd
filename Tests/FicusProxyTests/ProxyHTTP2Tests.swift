import FicusCore
import FicusProxy
import FicusTesting
import Foundation
import NIOCore
import Testing

/// HTTP/2 from clients (TLS, ALPN h2) through a real proxy to HTTP/1.1 upstreams.
@Suite("HTTP/2 through a real proxy", .serialized)
struct ProxyHTTP2Tests {
    /// A TLS proxy (h2 and http/1.1 by ALPN) in front of one upstream with `behavior`.
    static func with(
        _ behavior: TestUpstream.Behavior,
        configure: (inout ProxyConfiguration) -> Void = { _ in },
        _ body: (ProxyHarness, TestUpstream, TestCertificateAuthority) async throws -> Void
    ) async throws {
        let authority = try TestCertificateAuthority()
        let directory = try TestTLS.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let files = try authority.issue(commonName: "localhost").write(to: directory, name: "listener")
        try await ProxyHarness.with(
            behavior,
            configure: {
                $0.tls = ServerTLSConfiguration(certificatePath: files.certificate, keyPath: files.key)
                configure(&$0)
            }
        ) { harness, upstream in
            try await body(harness, upstream, authority)
        }
    }

    @Test func manyConcurrentStreamsOnOneConnectionAreEachForwarded() async throws {
        try await Self.with(.echo) { harness, upstream, authority in
            let client = try await HTTP2TestClient.connect(
                port: harness.port, group: testGroup, trusting: authority.certificatePEM)
            defer { client.close() }
            let count = 60
            let responses = try await withThrowingTaskGroup(of: (Int, HTTP2TestClient.Response).self) { group in
                for index in 0..<count {
                    group.addTask {
                        let body: [UInt8]? = index % 3 == 0 ? Array("body \(index)".utf8) : nil
                        let response = try await client.request(
                            method: body == nil ? "GET" : "POST",
                            path: "/stream/\(index)?q=\(index)",
                            headers: [("cookie", "a=1"), ("cookie", "b=2")],
                            body: body
                        )
                        return (index, response)
                    }
                }
                var all: [(Int, HTTP2TestClient.Response)] = []
                for try await result in group { all.append(result) }
                return all
            }
            #expect(responses.count == count)
            for (index, response) in responses {
                #expect(response.status == 200)
                #expect(response.header("x-echo-uri") == "/stream/\(index)?q=\(index)")
                if index % 3 == 0 { #expect(response.bodyString == "body \(index)") }
                #expect(response.header("connection") == nil)
            }
            let received = try await upstream.waitForRequests(count, timeout: .seconds(10))
            #expect(received.allSatisfy { $0.header("x-forwarded-proto") == "https" })
            #expect(received.allSatisfy { $0.header("host") == "localhost" })
            // Split cookies are joined for HTTP/1.1 (RFC 9113 8.2.3).
            #expect(received.allSatisfy { $0.header("cookie") == "a=1; b=2" })
            #expect(received.allSatisfy { $0.version == "HTTP/1.1" })
        }
    }

    @Test func aStreamResetMidBodyLeavesTheConnectionServing() async throws {
        try await Self.with(.echo) { harness, upstream, authority in
            let client = try await HTTP2TestClient.connect(
                port: harness.port, group: testGroup, trusting: authority.certificatePEM)
            defer { client.close() }
            try await client.startAndReset(path: "/upload", bodyPart: Array(repeating: 0x61, count: 10_000))
            let response = try await client.request(path: "/after-reset")
            #expect(response.status == 200)
            #expect(response.header("x-echo-uri") == "/after-reset")
        }
    }

    @Test func aRapidResetFloodCostsOnlyItsOwnConnection() async throws {
        try await Self.with(.echo, configure: { $0.http2.maxResets = 50 }) { harness, _, authority in
            let attacker = try await HTTP2TestClient.connect(
                port: harness.port, group: testGroup, trusting: authority.certificatePEM)
            defer { attacker.close() }
            let bystander = try await HTTP2TestClient.connect(
                port: harness.port, group: testGroup, trusting: authority.certificatePEM)
            defer { bystander.close() }
            await attacker.rapidReset(count: 500, path: "/flood")
            #expect(await attacker.isClosed(within: .seconds(5)))
            // Other clients are still answered.
            #expect(try await bystander.request(path: "/still-here").status == 200)
            let fresh = try await HTTP2TestClient.connect(
                port: harness.port, group: testGroup, trusting: authority.certificatePEM)
            defer { fresh.close() }
            #expect(try await fresh.request(path: "/new").status == 200)
        }
    }

    @Test func drainSendsGoAwayAndClosesIdleConnections() async throws {
        try await Self.with(.echo) { harness, _, authority in
            let client = try await HTTP2TestClient.connect(
                port: harness.port, group: testGroup, trusting: authority.certificatePEM)
            defer { client.close() }
            #expect(try await client.request(path: "/before").status == 200)
            let started = ContinuousClock.now
            await harness.proxy.shutdown(drainTimeout: .seconds(5))
            // GOAWAY, then the connection closes as soon as it has no open stream: well before the drain timeout.
            #expect(ContinuousClock.now - started < .seconds(4))
            #expect(await client.isClosed(within: .seconds(2)))
        }
    }

    @Test func http11ClientsStillGetHTTP11() async throws {
        try await Self.with(.echo) { harness, upstream, authority in
            let client = try await RawClient.connect(
                port: harness.port,
                group: testGroup,
                tls: try TestTLS.clientContext(trusting: authority.certificatePEM),
                serverHostname: "localhost"
            )
            defer { client.close() }
            let response = try await client.request(path: "/one")
            #expect(response.status == 200)
            #expect(response.version == "HTTP/1.1")
            _ = try await upstream.waitForRequests(1, timeout: .seconds(5))
        }
    }
}
