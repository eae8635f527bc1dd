#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FicusCore
import FicusProxy
import FicusTesting
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The pattern of `TestUpstream.patternBytes`, checked and produced in pieces without holding a whole body.
///
/// Flow-control tests move hundreds of megabytes; keeping them, or comparing them byte by byte in a debug build,
/// would cost more than the transfer itself.
enum BodyPattern {
    static let period = 251
    /// The longest piece `piece(offset:count:)` and one comparison step handle.
    static let window = 251 * 299
    private static let bytes: [UInt8] = TestUpstream.patternBytes(count: 251 * 300)
    private static let buffer = ByteBuffer(bytes: BodyPattern.bytes)

    /// The pattern bytes `offset..<offset + count` (count ≤ `window`), sharing one storage.
    static func piece(offset: Int, count: Int) -> ByteBuffer {
        precondition(count <= Self.window)
        return Self.buffer.getSlice(at: offset % Self.period, length: count)!
    }

    /// Whether the readable bytes of `buffer` are the pattern bytes from `offset` on.
    static func matches(_ buffer: ByteBuffer, at offset: Int) -> Bool {
        buffer.withUnsafeReadableBytes { received in
            Self.bytes.withUnsafeBytes { pattern in
                var checked = 0
                while checked < received.count {
                    let count = min(Self.window, received.count - checked)
                    let start = (offset + checked) % Self.period
                    if memcmp(received.baseAddress! + checked, pattern.baseAddress! + start, count) != 0 {
                        return false
                    }
                    checked += count
                }
                return true
            }
        }
    }

    static func endOfHead(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        return (0...(bytes.count - 4)).first { bytes[$0..<($0 + 4)].elementsEqual([13, 10, 13, 10]) }
    }

    static func contentLength(ofHead head: String) -> Int? {
        for line in head.split(separator: "\r\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "content-length" {
                return Int(parts[1].trimmingCharacters(in: .whitespaces))
            }
        }
        return nil
    }
}

/// Sent down a flow-control peer's pipeline to make it read again.
struct ResumeReading: Sendable {}

/// Writes pattern bytes while the channel is writable and counts the bytes the kernel has taken.
///
/// The count is what left the process: what NIO still queues (at most its high-water mark and one piece) is not
/// included, so a bound on it is a bound on what the network path and the peer buffer. A class, because a write can
/// change writability (and call back into the handler) while the pump is running.
private final class PatternPump {
    static let pieceSize = 64 * 1024

    private(set) var sent = 0
    let total: Int
    let written: NIOLockedValueBox<Int>
    private var pumping = false

    init(total: Int, written: NIOLockedValueBox<Int>) {
        self.total = total
        self.written = written
    }

    var isDone: Bool { self.sent == self.total }

    /// Writes pieces until the channel is unwritable or the body is all written.
    ///
    /// A flush that empties the queue makes the channel writable again from inside this method; the loop goes on
    /// then, since that writability change finds the pump busy and cannot restart it.
    func pump(_ context: ChannelHandlerContext) {
        guard !self.pumping else { return }
        self.pumping = true
        defer { self.pumping = false }
        while self.sent < self.total, context.channel.isWritable {
            while self.sent < self.total, context.channel.isWritable {
                let count = min(Self.pieceSize, self.total - self.sent)
                let piece = BodyPattern.piece(offset: self.sent, count: count)
                self.sent += count
                let written = self.written
                context.write(NIOAny(piece)).whenSuccess { written.withLockedValue { $0 += count } }
            }
            context.flush()
        }
        context.flush()
    }
}

/// Holds `read` while paused, so that nothing more is read from the socket and the kernel's window closes.
private struct ReadGate {
    var paused: Bool
    var pending = false

    mutating func read(_ context: ChannelHandlerContext) {
        if self.paused {
            self.pending = true
        } else {
            context.read()
        }
    }

    mutating func resume(_ context: ChannelHandlerContext) {
        self.paused = false
        if self.pending {
            self.pending = false
            context.read()
        }
    }
}

/// A loopback server that answers the first request head on each connection with a `content-length` body of
/// pattern bytes, written only as fast as its connection is writable, and counts what it has written.
///
/// `TestUpstream.largeBody` follows writability too but does not say how much it wrote, which is what a
/// backpressure test has to bound.
final class PumpingUpstream: Sendable {
    let port: Int
    let bodyBytes: Int
    private let channel: any Channel
    private let writtenBox: NIOLockedValueBox<Int>

    private init(port: Int, bodyBytes: Int, channel: any Channel, written: NIOLockedValueBox<Int>) {
        self.port = port
        self.bodyBytes = bodyBytes
        self.channel = channel
        self.writtenBox = written
    }

    static func start(bodyBytes: Int, group: any EventLoopGroup) async throws -> PumpingUpstream {
        let written = NIOLockedValueBox(0)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Handler(bodyBytes: bodyBytes, written: written))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        let port = channel.localAddress!.port!
        return PumpingUpstream(port: port, bodyBytes: bodyBytes, channel: channel, written: written)
    }

    var address: String { "127.0.0.1:\(self.port)" }

    /// Body bytes the kernel has accepted from this server so far, over all connections.
    var written: Int { self.writtenBox.withLockedValue { $0 } }

    func shutdown() async {
        try? await self.channel.close()
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        private var head: [UInt8] = []
        private var pump: PatternPump?
        private let bodyBytes: Int
        private let written: NIOLockedValueBox<Int>

        init(bodyBytes: Int, written: NIOLockedValueBox<Int>) {
            self.bodyBytes = bodyBytes
            self.written = written
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard self.pump == nil else { return }
            self.head += self.unwrapInboundIn(data).readableBytesView
            guard BodyPattern.endOfHead(self.head) != nil else { return }
            let head = "HTTP/1.1 200 OK\r\ncontent-length: \(self.bodyBytes)\r\n\r\n"
            context.write(self.wrapOutboundOut(ByteBuffer(string: head)), promise: nil)
            self.pump = PatternPump(total: self.bodyBytes, written: self.written)
            self.pump!.pump(context)
        }

        func channelWritabilityChanged(context: ChannelHandlerContext) {
            if context.channel.isWritable, self.pump != nil {
                self.pump!.pump(context)
            }
            context.fireChannelWritabilityChanged()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}

/// A loopback server that reads one request head with a `content-length` body, then stops reading until told to
/// resume; it checks the body against the pattern as it arrives and answers `received=N intact=true|false`.
///
/// An upstream that stops reading is what must make the proxy stop reading its client.
final class StallingUpstream: Sendable {
    private struct State {
        var received = 0
        var intact = true
        var headSeen = false
        var connection: (any Channel)?
    }

    let port: Int
    private let channel: any Channel
    private let state: NIOLockedValueBox<State>

    private init(port: Int, channel: any Channel, state: NIOLockedValueBox<State>) {
        self.port = port
        self.channel = channel
        self.state = state
    }

    static func start(group: any EventLoopGroup) async throws -> StallingUpstream {
        let state = NIOLockedValueBox(State())
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                state.withLockedValue { $0.connection = channel }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Handler(state: state))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return StallingUpstream(port: channel.localAddress!.port!, channel: channel, state: state)
    }

    var address: String { "127.0.0.1:\(self.port)" }

    /// Body bytes read so far.
    var received: Int { self.state.withLockedValue { $0.received } }

    var headSeen: Bool { self.state.withLockedValue { $0.headSeen } }

    /// Starts reading again, to the end of the body.
    func resume() {
        let connection = self.state.withLockedValue { $0.connection }
        connection?.triggerUserOutboundEvent(ResumeReading(), promise: nil)
    }

    func shutdown() async {
        let connection = self.state.withLockedValue { $0.connection }
        try? await connection?.close()
        try? await self.channel.close()
    }

    private final class Handler: ChannelDuplexHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        private let state: NIOLockedValueBox<State>
        private var gate = ReadGate(paused: false)
        private var head: [UInt8] = []
        private var length: Int?
        private var received = 0
        private var intact = true

        init(state: NIOLockedValueBox<State>) {
            self.state = state
        }

        func read(context: ChannelHandlerContext) {
            self.gate.read(context)
        }

        func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
            if event is ResumeReading {
                self.gate.resume(context)
                promise?.succeed()
            } else {
                context.triggerUserOutboundEvent(event, promise: promise)
            }
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = self.unwrapInboundIn(data)
            if self.length == nil {
                self.head += buffer.readableBytesView
                guard let end = BodyPattern.endOfHead(self.head) else { return }
                let text = String(decoding: self.head[..<end], as: UTF8.self)
                self.length = BodyPattern.contentLength(ofHead: text) ?? 0
                buffer = ByteBuffer(bytes: self.head[(end + 4)...])
                self.head = []
                self.gate.paused = true
                self.state.withLockedValue { $0.headSeen = true }
            }
            guard let length = self.length, self.received < length else { return }
            self.intact = self.intact && BodyPattern.matches(buffer, at: self.received)
            self.received += buffer.readableBytes
            let (received, intact) = (self.received, self.intact)
            self.state.withLockedValue {
                $0.received = received
                $0.intact = intact
            }
            if self.received >= length {
                let body = "received=\(self.received) intact=\(self.intact)"
                let response = "HTTP/1.1 200 OK\r\ncontent-length: \(body.utf8.count)\r\n\r\n\(body)"
                context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: response)), promise: nil)
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}

/// A client for flow-control tests: it may upload a pattern body as fast as its connection is writable, may hold its
/// reads until told to resume, and reads one `content-length` response whose body it checks against the pattern
/// without keeping it (only its first 4 KiB are kept).
final class FlowClient: Sendable {
    struct Response: Sendable {
        var status: Int
        var bodyBytes: Int
        var bodyIsPattern: Bool
        var bodyPrefix: String
    }

    private let channel: any Channel
    private let counters: NIOLockedValueBox<Int>
    private let bodyCounter: NIOLockedValueBox<Int>
    private let response: EventLoopFuture<Response>

    private init(
        channel: any Channel,
        counters: NIOLockedValueBox<Int>,
        bodyCounter: NIOLockedValueBox<Int>,
        response: EventLoopFuture<Response>
    ) {
        self.channel = channel
        self.counters = counters
        self.bodyCounter = bodyCounter
        self.response = response
    }

    /// Connects, sends `head` and then `uploadBytes` pattern bytes; reads nothing while `readsPaused`.
    static func connect(
        port: Int,
        head: String,
        uploadBytes: Int = 0,
        readsPaused: Bool = false,
        group: any EventLoopGroup
    ) async throws -> FlowClient {
        let uploaded = NIOLockedValueBox(0)
        let bodyReceived = NIOLockedValueBox(0)
        let loop = group.next()
        let promise = loop.makePromise(of: Response.self)
        let channel = try await ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = Handler(
                        head: head,
                        pump: PatternPump(total: uploadBytes, written: uploaded),
                        readsPaused: readsPaused,
                        bodyReceived: bodyReceived,
                        promise: promise
                    )
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .get()
        let response = promise.futureResult
        return FlowClient(channel: channel, counters: uploaded, bodyCounter: bodyReceived, response: response)
    }

    /// Upload bytes the kernel has accepted so far.
    var uploaded: Int { self.counters.withLockedValue { $0 } }

    /// Response body bytes read so far.
    var bodyReceived: Int { self.bodyCounter.withLockedValue { $0 } }

    func resumeReading() {
        self.channel.triggerUserOutboundEvent(ResumeReading(), promise: nil)
    }

    /// The response, once its body is complete; throws when the connection ends first or `timeout` passes.
    func waitForResponse(timeout: TimeAmount) async throws -> Response {
        let channel = self.channel
        let timer = channel.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
        defer { timer.cancel() }
        return try await self.response.get()
    }

    func close() {
        self.channel.close(promise: nil)
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private final class Handler: ChannelDuplexHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        private let head: String
        private let pump: PatternPump
        private var gate: ReadGate
        private let bodyReceived: NIOLockedValueBox<Int>
        private let promise: EventLoopPromise<Response>
        private var responseHead: [UInt8] = []
        private var status = 0
        private var length: Int?
        private var received = 0
        private var intact = true
        private var prefix: [UInt8] = []
        private var done = false

        init(
            head: String,
            pump: PatternPump,
            readsPaused: Bool,
            bodyReceived: NIOLockedValueBox<Int>,
            promise: EventLoopPromise<Response>
        ) {
            self.head = head
            self.pump = pump
            self.gate = ReadGate(paused: readsPaused)
            self.bodyReceived = bodyReceived
            self.promise = promise
        }

        func channelActive(context: ChannelHandlerContext) {
            context.write(self.wrapOutboundOut(ByteBuffer(string: self.head)), promise: nil)
            self.pump.pump(context)
            context.fireChannelActive()
        }

        func channelWritabilityChanged(context: ChannelHandlerContext) {
            if context.channel.isWritable, !self.pump.isDone {
                self.pump.pump(context)
            }
            context.fireChannelWritabilityChanged()
        }

        func read(context: ChannelHandlerContext) {
            self.gate.read(context)
        }

        func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
            if event is ResumeReading {
                self.gate.resume(context)
                promise?.succeed()
            } else {
                context.triggerUserOutboundEvent(event, promise: promise)
            }
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !self.done else { return }
            var buffer = self.unwrapInboundIn(data)
            if self.length == nil {
                self.responseHead += buffer.readableBytesView
                guard let end = BodyPattern.endOfHead(self.responseHead) else { return }
                let text = String(decoding: self.responseHead[..<end], as: UTF8.self)
                let statusLine = text.split(separator: "\r\n").first ?? ""
                let parts = statusLine.split(separator: " ")
                self.status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
                self.length = BodyPattern.contentLength(ofHead: text) ?? 0
                buffer = ByteBuffer(bytes: self.responseHead[(end + 4)...])
                self.responseHead = []
            }
            let length = self.length!
            if buffer.readableBytes > length - self.received {
                buffer = buffer.getSlice(at: buffer.readerIndex, length: length - self.received)!
            }
            self.intact = self.intact && BodyPattern.matches(buffer, at: self.received)
            if self.prefix.count < 4096 {
                self.prefix += buffer.readableBytesView.prefix(4096 - self.prefix.count)
            }
            self.received += buffer.readableBytes
            let received = self.received
            self.bodyReceived.withLockedValue { $0 = received }
            if self.received == length {
                self.done = true
                self.promise.succeed(
                    Response(
                        status: self.status,
                        bodyBytes: self.received,
                        bodyIsPattern: self.intact,
                        bodyPrefix: String(decoding: self.prefix, as: UTF8.self)
                    )
                )
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            if !self.done {
                self.done = true
                self.promise.fail(
                    Failure(description: "connection ended with \(self.received) of \(self.length ?? -1) body bytes")
                )
            }
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}

extension ProxyHarness {
    /// Starts a proxy on `group` instead of the shared test group (one loop makes per-loop pools exact).
    static func start(
        configuration: Configuration,
        group: any EventLoopGroup,
        configure: (inout ProxyConfiguration) -> Void = { _ in }
    ) async throws -> ProxyHarness {
        var proxyConfiguration = ProxyConfiguration()
        proxyConfiguration.listenHost = "127.0.0.1"
        proxyConfiguration.listenPort = 0
        proxyConfiguration.accessLog = false
        configure(&proxyConfiguration)
        let routing = RoutingState(try RoutingTable(configuration: configuration, revision: 1))
        var logger = Logger(label: "ficus-test")
        logger.logLevel = .critical
        let proxy = ProxyServer(
            configuration: proxyConfiguration,
            routing: routing,
            metrics: nil,
            logger: logger,
            group: group
        )
        try await proxy.start()
        return ProxyHarness(proxy: proxy, routing: routing, port: proxy.localAddress!.port!)
    }
}
