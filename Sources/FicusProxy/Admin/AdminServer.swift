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

        public init(health: @escaping @Sendable () -> (status: Int, body: String), metrics: @escaping @Sendable () -> [UInt8]) {
            self.health = health
            self.metrics = metrics
        }
    }

    private let host: String
    private let port: Int
    private let sources: Sources
    private let group: EventLoopGroup
    private let channel = NIOLockedValueBox<Channel?>(nil)

    public init(host: String, port: Int, sources: Sources, group: EventLoopGroup) {
        self.host = host
        self.port = port
        self.sources = sources
        self.group = group
    }

    public var localAddress: SocketAddress? { self.channel.withLockedValue { $0?.localAddress } }

    public func start() async throws {
        let sources = self.sources
        let channel = try await ServerBootstrap(group: self.group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(sources: sources))
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
    private var parser = HTTP1Parser(kind: .request, limits: HTTPLimits())
    private var inbound = ByteBuffer()
    private var answered = false

    init(sources: AdminServer.Sources) {
        self.sources = sources
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = self.unwrapInboundIn(data)
        self.inbound.writeBuffer(&buffer)
        guard !self.answered else { return }
        do {
            guard case .head(let head)? = try self.parser.next(&self.inbound) else { return }
            self.answered = true
            self.answer(head, context: context)
        } catch {
            self.answered = true
            self.write(status: error.status, contentType: "application/json", body: Array("{\"error\":\"\(error.reason.rawValue)\"}\n".utf8), context: context)
        }
    }

    private func answer(_ head: HTTPHead, context: ChannelHandlerContext) {
        let target = head.target
        let path = target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? target
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
        default:
            self.write(status: 404, contentType: "application/json", body: Array("{\"error\":\"not_found\",\"paths\":[\"/healthz\",\"/metrics\"]}\n".utf8), context: context)
        }
    }

    private func write(status: Int, contentType: String, body: [UInt8], context: ChannelHandlerContext) {
        var out = ByteBuffer()
        out.writeString("HTTP/1.1 \(status) \(status == 200 ? "OK" : LocalResponse.reason(status))\r\n")
        out.writeString("content-type: \(contentType)\r\ncontent-length: \(body.count)\r\nconnection: close\r\n\r\n")
        out.writeBytes(body)
        context.writeAndFlush(self.wrapOutboundOut(out)).whenComplete { _ in context.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
