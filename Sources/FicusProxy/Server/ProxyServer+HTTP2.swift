import Logging
import NIOCore
import NIOHTTP2
import NIOSSL
import NIOTLS

extension ProxyServer {
    /// Chooses the connection's protocol from ALPN once its TLS handshake is done: HTTP/2 for `h2`, HTTP/1.1 for
    /// `http/1.1` or no choice.
    func protocolNegotiation(resources: UnsafeTransfer<LoopResources>) -> ApplicationProtocolNegotiationHandler {
        let shared = self.shared
        return ApplicationProtocolNegotiationHandler { [self] result, channel in
            channel.eventLoop.makeCompletedFuture {
                // A drain that began during the handshake was signalled before these handlers existed.
                defer {
                    if self.isDraining { channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent()) }
                }
                let subject = try? channel.pipeline.syncOperations.nioSSL_peerCertificate()?.subjectText
                switch result {
                case .negotiated("h2"):
                    try Self.configureHTTP2(channel, shared: shared, resources: resources, subject: subject)
                default:
                    try channel.pipeline.syncOperations.addHandler(
                        ProxyConnectionHandler(
                            shared: shared,
                            resources: resources.value,
                            clientCertificateSubject: subject
                        )
                    )
                }
            }
        }
    }

    /// The HTTP/2 server pipeline: nio-http2's handler with Ficus's limits, its connection manager (GOAWAY on
    /// drain, idle connections closed), and per stream a bridge to the HTTP/1.1 data path.
    ///
    /// Limits: `SETTINGS_MAX_CONCURRENT_STREAMS` and `SETTINGS_MAX_HEADER_LIST_SIZE` from `http2`, the initial flow
    /// control windows at HTTP/2's 64 KiB (a stream's body is read as its upstream takes it), and resets capped per
    /// window: a client that resets more streams than that is disconnected, so a rapid-reset flood costs one
    /// connection, not the proxy.
    static func configureHTTP2(
        _ channel: Channel,
        shared: ProxyContext,
        resources: UnsafeTransfer<LoopResources>,
        subject: String?
    ) throws {
        let limits = shared.configuration.http2
        let management = NIOHTTP2ServerConnectionManagementHandler(
            eventLoop: channel.eventLoop,
            configuration: .init(
                maxIdleTime: shared.configuration.timeouts.clientIdle,
                maxAge: nil,
                maxGraceTime: shared.configuration.drainTimeout,
                keepalive: nil
            )
        )
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: limits.maxConcurrentStreams),
            HTTP2Setting(parameter: .maxHeaderListSize, value: limits.maxHeaderListSize),
        ]
        var stream = NIOHTTP2Handler.StreamConfiguration()
        stream.streamResetFrameRateLimit.maximumCount = limits.maxResets
        stream.streamResetFrameRateLimit.windowLength = limits.resetWindow
        let handler = NIOHTTP2Handler(
            mode: .server,
            eventLoop: channel.eventLoop,
            connectionConfiguration: connection,
            streamConfiguration: stream,
            streamDelegate: management.http2StreamDelegate
        ) { streamChannel in
            streamChannel.eventLoop.makeCompletedFuture {
                try streamChannel.pipeline.syncOperations.addHandler(HTTP2StreamBridge())
                try streamChannel.pipeline.syncOperations.addHandler(
                    ProxyConnectionHandler(
                        shared: shared,
                        resources: resources.value,
                        clientCertificateSubject: subject
                    )
                )
            }
        }
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.pipeline.syncOperations.addHandler(management)
        try channel.pipeline.syncOperations.addHandler(HTTP2ConnectionErrorHandler(logger: shared.logger))
    }
}

/// Closes an HTTP/2 connection on a connection error: nio-http2 sends GOAWAY for a protocol error or abuse (too many
/// resets, control frames, glitches) and reports it, and this is where the connection ends.
final class HTTP2ConnectionErrorHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame

    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.logger.debug(
            "HTTP/2 connection closed",
            metadata: ["error": "\(error)", "client": "\(context.channel.remoteAddress?.ipAddress ?? "-")"]
        )
        context.close(promise: nil)
    }
}
