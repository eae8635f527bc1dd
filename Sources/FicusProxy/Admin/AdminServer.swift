import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The admin listener: health and Prometheus metrics, on loopback by default.
///
/// It shares the data path's parser (so it is exactly as strict) but nothing else: each answer closes its
/// connection, which is all that health checkers and scrapers need.
public final class AdminServer: Sendable {
    /// What the admin listener reports; supplied by the CLI, which owns the store and the registry.
    public struct Sources: Sendable {
        /// Status code and JSON body for `GET /healthz`.
        public var health: @Sendable () -> (status: Int, body: String)
        /// Prometheus text exposition for `GET /metrics`.
        public var metrics: @Sendable () -> [UInt8]
        /// JSON body for `GET /upstreams`: each upstream address's state (in rotation, or ejected until when); nil:
        /// no such path.
        public var upstreams: (@Sendable () -> String)?

        public init(
            health: @escaping @Sendable () -> (status: Int, body: String),
            metrics: @escaping @Sendable () -> [UInt8],
            upstreams: (@Sendable () -> String)? = nil
        ) {
            self.health = health
            self.metrics = metrics
            self.upstreams = upstreams
        }
    }

    /// Bounds of the admin listener, small on purpose: health checkers and scrapers send one short request each.
    public struct Limits: Sendable {
        /// Admin connections open at once; beyond it a connection is closed at once.
        public var maxConnections = 64
        /// Time allowed for a connection's request head to arrive; then it is closed (408).
        public var headTimeout: TimeAmount = .seconds(5)
        /// Largest request head; over it: 431.
        public var maxHeadBytes = 8 * 1024

        public init() {}
    }

    private let host: String
    private let port: Int
    private let sources: Sources
    private let group: EventLoopGroup
    private let limits: Limits
    private let channel = NIOLockedValueBox<Channel?>(nil)
    private let open = NIOLockedValueBox(0)

    public init(host: String, port: Int, sources: Sources, group: EventLoopGroup, limits: Limits = Limits()) {
        self.host = host
        self.port = port
        self.sources = sources
        self.group = group
        self.limits = limits
    }

    public var localAddress: SocketAddress? { self.channel.withLockedValue { $0?.localAddress } }

    public func start() async throws {
        let sources = self.sources
        let limits = self.limits
        let open = self.open
        let channel = try await ServerBootstrap(group: self.group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                let admitted = open.withLockedValue { count -> Bool in
                    guard count < limits.maxConnections else { return false }
                    count += 1
                    return true
                }
                guard admitted else { return channel.close() }
                channel.closeFuture.whenComplete { _ in open.withLockedValue { $0 -= 1 } }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(sources: sources, limits: limits))
                }
            }
            .bind(host: self.host, port: self.port).get()
        self.channel.withLockedValue { $0 = channel }
    }

    public func shutdown() async {
        let channel = self.channel.withLockedValue { channel -> Channel? in
            defer { channel = nil }
            return channel
        }
        try? await channel?.close()
    }
}

/// Answers one admin request per connection.
final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let sources: AdminServer.Sources
    private let limits: AdminServer.Limits
    private var parser: HTTP1Parser
    private var inbound = ByteBuffer()
    private var answered = false
    private var headOnly = false
    private var deadline: Scheduled<Void>?

    init(sources: AdminServer.Sources, limits: AdminServer.Limits) {
        self.sources = sources
        self.limits = limits
        var parserLimits = HTTPLimits()
        parserLimits.maxHeadBytes = limits.maxHeadBytes
        parserLimits.maxRequestLine = min(parserLimits.maxRequestLine, limits.maxHeadBytes)
        parserLimits.maxBody = 0
        self.parser = HTTP1Parser(kind: .request, limits: parserLimits)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        self.deadline = context.eventLoop.scheduleTask(in: self.limits.headTimeout) {
            let (handler, context) = loopBound.value
            guard !handler.answered else { return }
            handler.answered = true
            handler.respond(408, body: "{\"error\":\"request_timeout\"}\n", context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.deadline?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // One request per connection: once it is answered, nothing more is read or kept.
        guard !self.answered else { return }
        var buffer = self.unwrapInboundIn(data)
        self.inbound.writeBuffer(&buffer)
        do {
            guard case .head(let head)? = try self.parser.next(&self.inbound) else { return }
            self.answered = true
            self.inbound = ByteBuffer()
            self.answer(head, context: context)
        } catch {
            self.answered = true
            self.inbound = ByteBuffer()
            self.respond(error.status, body: "{\"error\":\"\(error.reason.rawValue)\"}\n", context: context)
        }
    }

    private func respond(_ status: Int, body: String, context: ChannelHandlerContext) {
        self.write(status: status, contentType: "application/json", body: Array(body.utf8), context: context)
    }

    private func answer(_ head: HTTPHead, context: ChannelHandlerContext) {
        let target = head.target
        let path = target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? target
        self.headOnly = head.method == .head
        guard head.method == .get || head.method == .head else {
            self.write(status: 405, contentType: "application/json", body: Array("{\"error\":\"method_not_allowed\"}\n".utf8), context: context)
            return
        }
        switch path {
        case "/healthz":
            let (status, body) = self.sources.health()
            self.write(status: status, contentType: "application/json", body: Array(body.utf8), context: context)
        case "/metrics":
            self.write(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: self.sources.metrics(), context: context)
        case "/upstreams" where self.sources.upstreams != nil:
            self.write(status: 200, contentType: "application/json", body: Array(self.sources.upstreams!().utf8), context: context)
        default:
            let paths = self.sources.upstreams == nil ? "\"/healthz\",\"/metrics\"" : "\"/healthz\",\"/metrics\",\"/upstreams\""
            self.write(status: 404, contentType: "application/json", body: Array("{\"error\":\"not_found\",\"paths\":[\(paths)]}\n".utf8), context: context)
        }
    }

    private func write(status: Int, contentType: String, body: [UInt8], context: ChannelHandlerContext) {
        var out = ByteBuffer()
        out.writeString("HTTP/1.1 \(status) \(status == 200 ? "OK" : LocalResponse.reason(status))\r\n")
        out.writeString("content-type: \(contentType)\r\ncontent-length: \(body.count)\r\nconnection: close\r\n\r\n")
        // A HEAD answer has the GET answer's length and no body (RFC 9110 9.3.2).
        if !self.headOnly { out.writeBytes(body) }
        self.deadline?.cancel()
        // The context is loop-bound: it is closed on its own loop once the answer is out.
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(self.wrapOutboundOut(out)).whenComplete { _ in bound.value.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
