import NIOCore
import NIOTLS

/// Closes a client connection whose TLS handshake is not done within a deadline, then leaves the pipeline.
///
/// Until the handshake is done no HTTP handler is in the pipeline when the protocol is chosen by ALPN, so nothing
/// else would time out a client that opens a connection and never finishes its handshake (a TLS slowloris). The
/// request-head deadline (`--header-timeout`) is used: the handshake is the first part of a request's head.
final class TLSHandshakeDeadline: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { self.arm(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        self.arm(context)
        context.fireChannelActive()
    }

    private func arm(_ context: ChannelHandlerContext) {
        guard self.timer == nil else { return }
        let channel = context.channel
        self.timer = context.eventLoop.scheduleTask(in: self.timeout) {
            channel.close(promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            self.timer?.cancel()
            self.timer = nil
            context.fireUserInboundEventTriggered(event)
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timer?.cancel()
        self.timer = nil
    }
}
