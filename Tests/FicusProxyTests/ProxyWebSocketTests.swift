import FicusCore
import FicusProxy
import FicusTesting
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Prometheus
import NIOSSL
import Testing

/// WebSocket handshakes through a real proxy, and the byte tunnels they become.
@Suite("WebSocket tunnels through a real proxy", .serialized)
struct ProxyWebSocketTests {
    /// A WebSocket server and a proxy in front of it; both stopped after `body`.
    static func with(
        _ behavior: TestWebSocketServer.Behavior,
        configure: (inout ProxyConfiguration) -> Void = { _ in },
        metrics: ProxyMetrics? = nil,
        log: RecordingAccessLog? = nil,
        _ body: (ProxyHarness, TestWebSocketServer) async throws -> Void
    ) async throws {
        let server = try await TestWebSocketServer.start(behavior, group: testGroup)
        let harness = try await ProxyHarness.start(
            configuration: .catchAll(
                upstreams: [Upstream(name: "live", addresses: [Endpoint(parsing: server.address)!])],
                defaultUpstream: "live"
            ),
            configure: {
                if log != nil {
                    $0.accessLog = true
                    $0.accessLogSettings.format = .json
                }
                configure(&$0)
            },
            metrics: metrics,
            accessLogSink: log
        )
        do {
            try await body(harness, server)
        } catch {
            await harness.stop()
            try? await server.shutdown()
            throw error
        }
        await harness.stop()
        try? await server.shutdown()
    }

    /// Reads a response head (up to its blank line) byte by byte: after a 101 the bytes are no longer HTTP.
    static func readHead(_ client: RawClient) async throws -> String {
        var bytes: [UInt8] = []
        while !(bytes.count >= 4 && bytes.suffix(4) == [13, 10, 13, 10]) {
            bytes += try await client.read(exactly: 1)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Reads one frame.
    static func readFrame(_ client: RawClient) async throws -> WebSocketFrame {
        var bytes = try await client.read(exactly: 2)
        let length = Int(bytes[1] & 0x7F)
        if length == 126 {
            bytes += try await client.read(exactly: 2)
        } else if length == 127 {
            bytes += try await client.read(exactly: 8)
        }
        while WebSocketFrame.decode(bytes[...]) == nil {
            bytes += try await client.read(exactly: 1)
        }
        return try #require(WebSocketFrame.decode(bytes[...])).0
    }

    @Test func echoesFragmentedFramesBothWaysThroughTheTunnel() async throws {
        let log = RecordingAccessLog()
        try await Self.with(.greet("hello"), log: log) { harness, server in
            let client = try await harness.client()
            defer { client.close() }
            // The handshake, with the first fragment right behind it in the same write.
            let first = WebSocketFrame(fin: false, opcode: WebSocketFrame.text, payload: Array("Hel".utf8))
            try await client.send(
                Array(WebSocketFrame.handshake(path: "/live?room=1").utf8) + first.encoded(masked: true)
            )
            let head = try await Self.readHead(client)
            #expect(head.hasPrefix("HTTP/1.1 101 "))
            #expect(head.lowercased().contains("upgrade: websocket"))
            #expect(head.lowercased().contains("connection: upgrade"))
            #expect(head.contains(WebSocketFrame.acceptValue(for: "dGhlIHNhbXBsZSBub25jZQ==")))
            // The frame the server sent with its 101 arrives after it.
            let greeting = WebSocketFrame(opcode: WebSocketFrame.text, payload: Array("hello".utf8))
            #expect(try await Self.readFrame(client) == greeting)

            // The rest of the message, its bytes split at awkward places across writes.
            let rest =
                WebSocketFrame(fin: false, opcode: WebSocketFrame.continuation, payload: Array("lo, ".utf8))
                .encoded(masked: true)
                + WebSocketFrame(fin: true, opcode: WebSocketFrame.continuation, payload: Array("world".utf8))
                .encoded(masked: true)
            try await client.send(Array(rest[..<1]))
            try await client.send(Array(rest[1..<7]))
            try await client.send(Array(rest[7...]))
            let echoed = [
                WebSocketFrame(fin: false, opcode: WebSocketFrame.text, payload: Array("Hel".utf8)),
                WebSocketFrame(fin: false, opcode: WebSocketFrame.continuation, payload: Array("lo, ".utf8)),
                WebSocketFrame(fin: true, opcode: WebSocketFrame.continuation, payload: Array("world".utf8)),
            ]
            for frame in echoed {
                #expect(try await Self.readFrame(client) == frame)
            }

            // A large binary frame, which crosses many reads both ways.
            let large = WebSocketFrame(
                opcode: WebSocketFrame.binary, payload: TestUpstream.patternBytes(count: 300_000))
            try await client.send(large.encoded(masked: true))
            #expect(try await Self.readFrame(client) == large)

            // The handshake reached the server with its upgrade fields and the forwarding fields.
            #expect(server.handshakeField(0, "upgrade") == "websocket")
            #expect(server.handshakeField(0, "connection") == "upgrade")
            #expect(server.handshakeField(0, "sec-websocket-key") == "dGhlIHNhbXBsZSBub25jZQ==")
            #expect(server.handshakeField(0, "x-forwarded-for") == "127.0.0.1")

            // A close frame is echoed and the server closes: the tunnel ends, with one access log line.
            try await client.send(WebSocketFrame(opcode: WebSocketFrame.close, payload: [3, 232]).encoded(masked: true))
            #expect(try await Self.readFrame(client).opcode == WebSocketFrame.close)
            #expect(await client.isClosed(within: .seconds(5)))
            let line = try await Self.waitForLine(log, containing: "tunnel_end")
            #expect(line.contains("\"status\":101"))
            #expect(line.contains("\"tunnel_end\":\"upstream_closed\""))
            #expect(line.contains("\"message\":\"tunnel\""))
            #expect(line.contains("\"path\":\"/live?room=1\""))
        }
    }

    /// Waits for an access log line containing `text` (lines are written when tunnels end, on the event loop).
    static func waitForLine(_ log: RecordingAccessLog, containing text: String) async throws -> String {
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            if let line = log.lines.withLockedValue({ $0.first { $0.contains(text) } }) { return line }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw FicusTestingError(.timedOut, "no access log line with \(text): \(log.lines.withLockedValue { $0 })")
    }

    @Test func anUpgradeTheUpstreamRefusesPassesThrough() async throws {
        try await Self.with(.refuse(status: 403, body: "not here")) { harness, _ in
            let client = try await harness.client()
            defer { client.close() }
            try await client.send(WebSocketFrame.handshake(path: "/live"))
            let response = try #require(try await client.readResponse())
            #expect(response.status == 403)
            #expect(response.bodyString == "not here")
        }
    }

    @Test func aSlowReaderHoldsBackTheUpstreamInsteadOfFillingMemory() async throws {
        let total = 48 * 1024 * 1024
        try await Self.with(.firehose(bytes: total)) { harness, server in
            let client = try await harness.client()
            defer { client.close() }
            try await client.send(WebSocketFrame.handshake(path: "/firehose"))
            let head = try await Self.readHead(client)
            #expect(head.hasPrefix("HTTP/1.1 101 "))
            try await client.setReading(false)
            // Only now does the firehose start: nothing flows while the client still reads.
            try await client.send(WebSocketFrame(opcode: WebSocketFrame.text, payload: Array("go".utf8)).encoded(masked: true))
            _ = await server.firehoseBlocked()
            // With reads following writability, what left the server is bounded by the socket buffers on the way.
            let written = await server.writtenWhenSettled(quiet: .milliseconds(300), timeout: .seconds(20))
            #expect(written < total / 2, "the proxy kept reading a client that did not: \(written) bytes taken")
            try await client.setReading(true)
            let received = try await client.read(exactly: total, timeout: .seconds(60))
            // Every 4099th byte (prime to the chunk size): order and content, without a 48 MiB loop in a debug build.
            var mismatch: Int?
            for index in stride(from: 0, to: total, by: 4099)
            where received[index] != TestWebSocketServer.firehoseByte(at: index) {
                mismatch = index
                break
            }
            #expect(mismatch == nil)
        }
    }

    @Test func anIdleTunnelIsClosed() async throws {
        let log = RecordingAccessLog()
        try await Self.with(.echo, configure: { $0.tunnels.idleTimeout = .milliseconds(200) }, log: log) { harness, _ in
            let client = try await harness.client()
            defer { client.close() }
            try await client.send(WebSocketFrame.handshake(path: "/idle"))
            _ = try await Self.readHead(client)
            let ping = WebSocketFrame(opcode: WebSocketFrame.text, payload: Array("ping".utf8))
            try await client.send(ping.encoded(masked: true))
            #expect(try await Self.readFrame(client) == ping)
            #expect(await client.isClosed(within: .seconds(5)))
            let line = try await Self.waitForLine(log, containing: "tunnel_end")
            #expect(line.contains("\"tunnel_end\":\"idle_timeout\""))
            #expect(line.contains("\"bytes_in\":10"))  // the masked 4-byte frame: 2 + 4 + 4
        }
    }

    @Test func drainClosesTunnelsAfterTheDrainTimeout() async throws {
        let server = try await TestWebSocketServer.start(.echo, group: testGroup)
        let harness = try await ProxyHarness.start(
            configuration: .catchAll(
                upstreams: [Upstream(name: "live", addresses: [Endpoint(parsing: server.address)!])],
                defaultUpstream: "live"
            )
        )
        let client = try await harness.client()
        defer { client.close() }
        try await client.send(WebSocketFrame.handshake(path: "/drain"))
        _ = try await Self.readHead(client)
        let started = ContinuousClock.now
        await harness.proxy.shutdown(drainTimeout: .milliseconds(300))
        // The tunnel kept the drain waiting for its whole timeout, then was closed.
        #expect(ContinuousClock.now - started >= .milliseconds(300))
        #expect(await client.isClosed(within: .seconds(5)))
        try await server.shutdown()
    }

    @Test func tunnelsAreCountedAndLimited() async throws {
        let registry = PrometheusCollectorRegistry()
        let metrics = ProxyMetrics(factory: PrometheusMetricsFactory(registry: registry))
        try await Self.with(.echo, configure: { $0.tunnels.maxActive = 1 }, metrics: metrics) { harness, server in
            let first = try await harness.client()
            defer { first.close() }
            try await first.send(WebSocketFrame.handshake(path: "/one"))
            _ = try await Self.readHead(first)
            #expect(registry.emitToString().contains(#"ficus_tunnels_active{route="default",upstream="live"} 1"#))
            let second = try await harness.client()
            defer { second.close() }
            try await second.send(WebSocketFrame.handshake(path: "/two"))
            let refused = try #require(try await second.readResponse())
            #expect(refused.status == 503)
            #expect(refused.bodyString.contains("too_many_tunnels"))
            #expect(server.handshakes.count == 1)
            first.close()
            let deadline = ContinuousClock.now + .seconds(5)
            var text = registry.emitToString()
            let ended = #"ficus_tunnels_active{route="default",upstream="live"} 0"#
            while ContinuousClock.now < deadline, !text.contains(ended) {
                try await Task.sleep(for: .milliseconds(10))
                text = registry.emitToString()
            }
            #expect(text.contains(ended))
        }
    }

    @Test func otherUpgradesAreRefusedAndMalformedHandshakesToo() async throws {
        try await Self.with(.echo) { harness, server in
            for request in [
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: TLS/1.0\r\n\r\n",
                // No `Connection: upgrade`, a POST, HTTP/1.0: not a WebSocket handshake.
                "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
                "POST / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 1\r\n\r\nx",
                "GET / HTTP/1.0\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            ] {
                let client = try await harness.client()
                defer { client.close() }
                try await client.send(request)
                let response = try #require(try await client.readResponse())
                #expect(response.status == 501, "\(request)")
            }
            #expect(server.handshakes.isEmpty)
        }
    }

    @Test func tunnelsRunOverTLSOnBothSides() async throws {
        let authority = try TestCertificateAuthority()
        let directory = try TestTLS.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let listener = try authority.issue(commonName: "localhost").write(to: directory, name: "listener")
        let caPath = directory.appendingPathComponent("ca.pem").path
        try Data(authority.certificatePEM.utf8).write(to: URL(fileURLWithPath: caPath))
        let server = try await TestWebSocketServer.start(
            .echo, group: testGroup, tls: try authority.issue(commonName: "live").serverContext())
        var upstream = Upstream(name: "live", addresses: [Endpoint(parsing: "https://\(server.address)")!])
        upstream.caFile = caPath
        let harness = try await ProxyHarness.start(
            configuration: .catchAll(upstreams: [upstream], defaultUpstream: "live"),
            configure: {
                $0.tls = ServerTLSConfiguration(certificatePath: listener.certificate, keyPath: listener.key)
            }
        )
        do {
            let client = try await RawClient.connect(
                port: harness.port,
                group: testGroup,
                tls: try TestTLS.clientContext(trusting: authority.certificatePEM),
                serverHostname: "localhost"
            )
            defer { client.close() }
            try await client.send(WebSocketFrame.handshake(path: "/wss"))
            #expect(try await Self.readHead(client).hasPrefix("HTTP/1.1 101 "))
            let message = WebSocketFrame(
                opcode: WebSocketFrame.binary, payload: TestUpstream.patternBytes(count: 70_000))
            try await client.send(message.encoded(masked: true))
            #expect(try await Self.readFrame(client) == message)
            #expect(server.handshakeField(0, "x-forwarded-proto") == "https")
        } catch {
            await harness.stop()
            try? await server.shutdown()
            throw error
        }
        await harness.stop()
        try? await server.shutdown()
    }
}
