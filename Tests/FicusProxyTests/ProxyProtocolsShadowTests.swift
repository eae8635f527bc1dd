import FicusCore
import FicusTesting
import Foundation
import Logging
import NIOCore
import Testing

@testable import FicusProxy

/// Shadow copies and the new protocols: copies to an `https://` shadow upstream, and WebSocket handshakes never
/// copied.
@Suite("Shadow traffic with TLS upstreams and WebSockets", .serialized)
struct ProxyProtocolsShadowTests {
    /// A proxy serving from `legacy` and shadowing every request to `shadow` (100%), with a recording sink.
    static func withShadow(
        legacy: Upstream,
        shadow: Upstream,
        _ body: (ProxyHarness, RecordingShadowSink) async throws -> Void
    ) async throws {
        let configuration = Configuration(
            upstreams: [legacy, shadow],
            routes: [
                Route(
                    name: "all",
                    path: "/",
                    legacy: legacy.name,
                    shadow: ShadowPolicy(to: shadow.name, percent: 100, noisePercent: 0)
                )
            ]
        )
        let sink = RecordingShadowSink()
        var logger = Logger(label: "shadow-protocols-test")
        logger.logLevel = .critical
        let comparer = ShadowComparer(sink: sink, logger: logger, metrics: nil, coverage: nil)
        let consumer = Task { await comparer.run() }
        var proxyConfiguration = ProxyConfiguration()
        proxyConfiguration.listenPort = 0
        proxyConfiguration.accessLog = false
        let routing = RoutingState(try RoutingTable(configuration: configuration, revision: 1))
        let proxy = ProxyServer(
            configuration: proxyConfiguration,
            routing: routing,
            metrics: nil,
            logger: logger,
            group: testGroup,
            shadowSink: comparer
        )
        try await proxy.start()
        let harness = ProxyHarness(proxy: proxy, routing: routing, port: proxy.localAddress!.port!)
        do {
            try await body(harness, sink)
        } catch {
            await harness.stop()
            comparer.finish()
            await consumer.value
            throw error
        }
        await harness.stop()
        comparer.finish()
        await consumer.value
    }

    @Test func shadowCopiesGoToAnHTTPSShadowUpstreamWithItsVerification() async throws {
        let authority = try TestCertificateAuthority()
        let directory = try TestTLS.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let caPath = directory.appendingPathComponent("ca.pem").path
        try Data(authority.certificatePEM.utf8).write(to: URL(fileURLWithPath: caPath))
        let legacy = try await TestUpstream.start(.echo, group: testGroup)
        let modern = try await TestUpstream.start(
            .echo, group: testGroup, tls: try authority.issue(commonName: "modern").serverContext())
        var shadow = Upstream(name: "modern", addresses: [Endpoint(parsing: "https://\(modern.address)")!])
        shadow.caFile = caPath
        try await Self.withShadow(
            legacy: Upstream(name: "legacy", addresses: [Endpoint(parsing: legacy.address)!]),
            shadow: shadow
        ) { harness, sink in
            let client = try await harness.client()
            defer { client.close() }
            #expect(try await client.request(path: "/orders/1").status == 200)
            let copy = try await modern.waitForRequests(1, timeout: .seconds(5))[0]
            #expect(copy.uri == "/orders/1")
            #expect(copy.header("x-ficus-shadow") == "1")
            let records = try await sink.wait(for: 1)
            #expect(records.count == 1)
        }
        try await legacy.shutdown()
        try await modern.shutdown()
    }

    @Test func aWebSocketHandshakeIsNeverShadowed() async throws {
        let live = try await TestWebSocketServer.start(.echo, group: testGroup)
        let other = try await TestUpstream.start(.echo, group: testGroup)
        try await Self.withShadow(
            legacy: Upstream(name: "live", addresses: [Endpoint(parsing: live.address)!]),
            shadow: Upstream(name: "other", addresses: [Endpoint(parsing: other.address)!])
        ) { harness, _ in
            let client = try await harness.client()
            defer { client.close() }
            try await client.send(WebSocketFrame.handshake(path: "/live"))
            #expect(try await ProxyWebSocketTests.readHead(client).hasPrefix("HTTP/1.1 101 "))
            let ping = WebSocketFrame(opcode: WebSocketFrame.text, payload: Array("ping".utf8))
            try await client.send(ping.encoded(masked: true))
            #expect(try await ProxyWebSocketTests.readFrame(client) == ping)
            // A plain request on the same route afterwards is copied: its copy is the only one the shadow gets.
            let plain = try await harness.client()
            defer { plain.close() }
            #expect(try await plain.request(path: "/plain").status == 200)
            let copies = try await other.waitForRequests(1, timeout: .seconds(5))
            #expect(copies.map(\.uri) == ["/plain"])
            #expect(live.handshakes.count == 1)
        }
        try await live.shutdown()
        try await other.shutdown()
    }
}
