import FicusCore
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import FicusProxy

/// A proxy connection and its upstream connections, all on one `EmbeddedEventLoop`: time moves only when a test moves
/// it, and an upstream's writes can be made to fail, so exchanges that sockets make racy run the same way every time.
final class EmbeddedExchange {
    /// Holds the writes of an upstream channel until the test lets them through or fails them (a socket whose
    /// peer died: the write fails and the channel closes).
    final class WriteGate: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        var holding = false
        var held: [(ByteBuffer, EventLoopPromise<Void>?)] = []
        var context: ChannelHandlerContext?

        func handlerAdded(context: ChannelHandlerContext) { self.context = context }

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            if self.holding {
                self.held.append((self.unwrapOutboundIn(data), promise))
            } else {
                context.write(data, promise: promise)
            }
        }

        /// Fails every held write and closes the channel, as a dead peer does.
        func failHeld() {
            let held = self.held
            self.held = []
            for (_, promise) in held {
                promise?.fail(ChannelError.ioOnClosedChannel)
            }
            self.context?.close(promise: nil)
        }
    }

    let loop: EmbeddedEventLoop
    let resources: LoopResources

    init(_ configure: (inout ProxyConfiguration) -> Void = { _ in }) throws {
        var configuration = ProxyConfiguration()
        configuration.accessLog = false
        configure(&configuration)
        let routing = Configuration.catchAll(
            upstreams: [Upstream(name: "backend", addresses: [Endpoint(host: "127.0.0.1", port: 8080)])],
            defaultUpstream: "backend"
        )
        let shared = ProxyContext(
            configuration: configuration,
            routing: RoutingState(try RoutingTable(configuration: routing, revision: 1)),
            metrics: nil,
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        let loop = EmbeddedEventLoop()
        self.loop = loop
        let box = UnsafeTransfer(Opened())
        self.resources = LoopResources(
            eventLoop: loop,
            configuration: configuration,
            loops: 1,
            metrics: nil,
            transport: .connector { request in
                let channel = EmbeddedChannel(loop: loop)
                let gate = WriteGate()
                do {
                    try channel.pipeline.syncOperations.addHandler(gate)
                    try channel.pipeline.syncOperations.addHandler(request.connection)
                    box.value.channels.append((channel, gate))
                    let address = try SocketAddress(ipAddress: "127.0.0.1", port: request.endpoint.port)
                    return channel.connect(to: address).map { channel as Channel }
                } catch {
                    return loop.makeFailedFuture(error)
                }
            }
        )
        self.opened = box.value
        let clientChannel = EmbeddedChannel(loop: loop)
        self.clientChannel = clientChannel
        try clientChannel.connect(to: SocketAddress(ipAddress: "192.0.2.10", port: 40000)).wait()
        try clientChannel.pipeline.syncOperations.addHandler(
            ProxyConnectionHandler(shared: shared, resources: self.resources))
    }

    final class Opened {
        var channels: [(EmbeddedChannel, WriteGate)] = []
    }

    private let opened: Opened
    let clientChannel: EmbeddedChannel

    /// The upstream channel opened `index`-th (0-based) and its write gate.
    func upstream(_ index: Int) -> (channel: EmbeddedChannel, gate: WriteGate)? {
        self.loop.run()
        guard index < self.opened.channels.count else { return nil }
        return self.opened.channels[index]
    }

    var upstreamCount: Int {
        self.loop.run()
        return self.opened.channels.count
    }

    func send(_ text: String) throws {
        try self.clientChannel.writeInbound(ByteBuffer(string: text))
        self.loop.run()
    }

    func send(_ bytes: [UInt8]) throws {
        try self.clientChannel.writeInbound(ByteBuffer(bytes: bytes))
        self.loop.run()
    }

    /// What the proxy wrote to the client since the last call.
    func clientReceived() throws -> String {
        self.loop.run()
        var text = ""
        while let part = try self.clientChannel.readOutbound(as: ByteBuffer.self) {
            text += String(buffer: part)
        }
        return text
    }

    /// What the proxy wrote to upstream connection `index` since the last call.
    func upstreamReceived(_ index: Int) throws -> String {
        guard let channel = self.upstream(index)?.channel else { return "" }
        var text = ""
        while let part = try channel.readOutbound(as: ByteBuffer.self) {
            text += String(buffer: part)
        }
        return text
    }

    /// The upstream's answer on connection `index`.
    func answer(_ index: Int, _ text: String) throws {
        try self.upstream(index)?.channel.writeInbound(ByteBuffer(string: text))
        self.loop.run()
    }

    func finish() {
        for (channel, _) in self.opened.channels where channel.isActive {
            _ = try? channel.finish(acceptAlreadyClosed: true)
        }
        _ = try? self.clientChannel.finish(acceptAlreadyClosed: true)
        self.resources.pool.closeIdle()
        self.opened.channels.removeAll()
        try? self.loop.syncShutdownGracefully()
    }
}

/// The three defects of issue 16 item 3, without sockets: a stalled stream holds nothing forever, the response timeout
/// counts from the end of the request, and a re-send carries the whole request or does not happen.
@Suite("Stream timeouts and re-sends on an EmbeddedEventLoop")
struct ProxyStreamTests {
    static let warm = "GET /warm HTTP/1.1\r\nHost: a\r\n\r\n"
    static let ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"

    /// An upstream that sends the head and part of the body, then nothing: after `--idle-timeout` without progress
    /// both connections close, and the client's answer is visibly cut short (it used to hang forever: no timer ran
    /// once the head had arrived).
    @Test func anUpstreamThatStallsMidBodyIsCutOffAfterTheIdleTimeout() throws {
        let proxy = try EmbeddedExchange { $0.timeouts.clientIdle = .seconds(5) }
        defer { proxy.finish() }
        try proxy.send("GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try proxy.upstreamReceived(0).hasPrefix("GET /big HTTP/1.1\r\n"))
        try proxy.answer(0, "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhello")
        #expect(try proxy.clientReceived().hasSuffix("\r\n\r\nhello"))
        // Progress moves the deadline: more bytes 4 s later keep the stream alive past the first 5 s.
        proxy.loop.advanceTime(by: .seconds(4))
        try proxy.answer(0, " world")
        proxy.loop.advanceTime(by: .seconds(4))
        #expect(proxy.clientChannel.isActive)
        #expect(try proxy.clientReceived() == " world")
        proxy.loop.advanceTime(by: .seconds(1) + .milliseconds(1))
        #expect(!proxy.clientChannel.isActive, "the client sees the answer end early: a truncation")
        #expect(proxy.upstream(0)?.channel.isActive == false, "the stalled upstream connection is closed")
    }

    /// A client that stops reading: its connection stops being writable, the proxy stops reading the upstream
    /// (back-pressure), nothing moves, and after the idle timeout both connections close; a client that takes what
    /// was written again (writable) has made progress.
    @Test func aClientThatStopsReadingIsCutOffAfterTheIdleTimeout() throws {
        let proxy = try EmbeddedExchange { $0.timeouts.clientIdle = .seconds(5) }
        defer { proxy.finish() }
        try proxy.send("GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        try proxy.answer(0, "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhello")
        proxy.clientChannel.isWritable = false
        proxy.clientChannel.pipeline.fireChannelWritabilityChanged()
        proxy.loop.advanceTime(by: .seconds(4))
        proxy.clientChannel.isWritable = true
        proxy.clientChannel.pipeline.fireChannelWritabilityChanged()
        proxy.clientChannel.isWritable = false
        proxy.clientChannel.pipeline.fireChannelWritabilityChanged()
        proxy.loop.advanceTime(by: .seconds(4))
        #expect(proxy.clientChannel.isActive, "the client took bytes 4 s ago")
        proxy.loop.advanceTime(by: .seconds(1) + .milliseconds(1))
        #expect(!proxy.clientChannel.isActive)
        #expect(proxy.upstream(0)?.channel.isActive == false)
    }

    /// A client that stops sending its body half way: 408 and close after the idle timeout (it used to wait for the
    /// upstream's response timeout, which now starts only when the request is complete).
    @Test func aClientThatStopsSendingItsBodyGets408() throws {
        let proxy = try EmbeddedExchange {
            $0.timeouts.clientIdle = .seconds(5)
            $0.timeouts.responseHead = .seconds(2)
        }
        defer { proxy.finish() }
        try proxy.send("POST /upload HTTP/1.1\r\nHost: a\r\ncontent-length: 100\r\n\r\nfirst part")
        #expect(try proxy.upstreamReceived(0).hasSuffix("\r\n\r\nfirst part"))
        proxy.loop.advanceTime(by: .seconds(4))
        #expect(try proxy.clientReceived().isEmpty, "the response timeout has not started: the request is not complete")
        proxy.loop.advanceTime(by: .seconds(1) + .milliseconds(1))
        let text = try proxy.clientReceived()
        #expect(text.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"), "\(text)")
        #expect(text.contains("\"error\":\"request_timeout\""), "\(text)")
        #expect(!proxy.clientChannel.isActive)
        #expect(proxy.upstream(0)?.channel.isActive == false)
    }

    /// A slow upload to a healthy upstream: the response timeout (2 s) counts from the end of the body, so 6 s of
    /// upload in 1 s steps is answered, not cut off with 504.
    @Test func theResponseTimeoutCountsFromTheEndOfTheRequestBody() throws {
        let proxy = try EmbeddedExchange {
            $0.timeouts.clientIdle = .seconds(5)
            $0.timeouts.responseHead = .seconds(2)
        }
        defer { proxy.finish() }
        try proxy.send("POST /upload HTTP/1.1\r\nHost: a\r\ncontent-length: 6\r\n\r\n")
        for byte in "abcdef" {
            proxy.loop.advanceTime(by: .seconds(1))
            try proxy.send(String(byte))
        }
        #expect(try proxy.clientReceived().isEmpty)
        #expect(try proxy.upstreamReceived(0).hasSuffix("\r\n\r\nabcdef"))
        proxy.loop.advanceTime(by: .milliseconds(1900))
        try proxy.answer(0, Self.ok)
        #expect(try proxy.clientReceived().hasPrefix("HTTP/1.1 200 OK\r\n"))

        // And it still bounds the wait once the request is complete.
        try proxy.send("POST /upload HTTP/1.1\r\nHost: a\r\ncontent-length: 2\r\n\r\nab")
        proxy.loop.advanceTime(by: .seconds(2) + .milliseconds(1))
        let text = try proxy.clientReceived()
        #expect(text.hasPrefix("HTTP/1.1 504 Gateway Timeout\r\n"), "\(text)")
    }

    /// A POST on a reused connection whose writes fail (nothing reached the upstream) is re-sent on a fresh connection
    /// with its whole body: it used to go out without the body already streamed to the dead connection.
    @Test func aResendAfterAFailedHeadWriteCarriesTheWholeBody() throws {
        let proxy = try EmbeddedExchange()
        defer { proxy.finish() }
        try proxy.send(Self.warm)
        _ = try proxy.upstreamReceived(0)
        try proxy.answer(0, Self.ok)
        _ = try proxy.clientReceived()
        let gate = try #require(proxy.upstream(0)?.gate)
        gate.holding = true
        try proxy.send("POST /orders HTTP/1.1\r\nHost: a\r\ncontent-length: 11\r\n\r\n")
        try proxy.send("{\"order\":1}")
        #expect(gate.held.count >= 2, "head and body went to the reused connection")
        gate.failHeld()
        proxy.loop.run()
        #expect(proxy.upstreamCount == 2, "a fresh connection for the re-send")
        let resent = try proxy.upstreamReceived(1)
        #expect(resent.hasPrefix("POST /orders HTTP/1.1\r\n"), "\(resent)")
        #expect(resent.hasSuffix("\r\n\r\n{\"order\":1}"), "the whole body: \(resent)")
        try proxy.answer(1, Self.ok)
        #expect(try proxy.clientReceived().hasPrefix("HTTP/1.1 200 OK\r\n"))
    }

    /// The same with a chunked body that had ended: the re-send ends it too (it used to leave the fresh connection
    /// waiting for the last chunk).
    @Test func aResentChunkedRequestIsEndedOnTheFreshConnection() throws {
        let proxy = try EmbeddedExchange()
        defer { proxy.finish() }
        try proxy.send(Self.warm)
        try proxy.answer(0, Self.ok)
        _ = try proxy.clientReceived()
        let gate = try #require(proxy.upstream(0)?.gate)
        gate.holding = true
        try proxy.send("POST /orders HTTP/1.1\r\nHost: a\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        gate.failHeld()
        proxy.loop.run()
        let resent = try proxy.upstreamReceived(1)
        #expect(resent.hasSuffix("\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), "\(resent)")
    }

    /// A body longer than the 64 KiB kept for re-sends, already streamed to a connection that died: not re-sent
    /// (half a body is never sent), 502.
    @Test func aLongBodyAlreadyStreamedIsNotResent() throws {
        let proxy = try EmbeddedExchange()
        defer { proxy.finish() }
        try proxy.send(Self.warm)
        try proxy.answer(0, Self.ok)
        _ = try proxy.clientReceived()
        let gate = try #require(proxy.upstream(0)?.gate)
        gate.holding = true
        let size = ProxyConnectionHandler.retainLimit + 1
        try proxy.send("POST /orders HTTP/1.1\r\nHost: a\r\ncontent-length: \(size)\r\n\r\n")
        try proxy.send([UInt8](repeating: 0x61, count: size))
        gate.failHeld()
        proxy.loop.run()
        #expect(proxy.upstreamCount == 1, "no fresh connection")
        let text = try proxy.clientReceived()
        #expect(text.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"), "\(text)")
    }
}
