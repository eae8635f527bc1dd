import NIOCore
import NIOHTTP1
import NIOPosix

/// Carries out the actions of `UpstreamConnectionStateMachine` and plays the configured `Behavior` on the wire.
///
/// Responses are written as raw bytes (see `ResponseBytes`) so that broken framing and resets are exactly what the
/// scenario asks for.
final class UpstreamConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = ByteBuffer

    /// A `.largeBody` answer being written as the connection becomes writable.
    private struct BodyStream {
        var sent: Int
        var total: Int
        var closesConnection: Bool
    }

    private static let pieceSize = 64 * 1024

    private let recorder: UpstreamRecorder
    private var machine: UpstreamConnectionStateMachine
    private var context: ChannelHandlerContext?
    private var bodyStream: BodyStream?
    private var delayed: Scheduled<Void>?

    init(recorder: UpstreamRecorder, connectionID: Int) {
        self.recorder = recorder
        self.machine = UpstreamConnectionStateMachine(connectionID: connectionID)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            let resetsOnHead = Self.resetsOnHead(self.recorder.behavior)
            self.run(self.machine.headReceived(head, resetsOnHead: resetsOnHead))
        case .body(let bytes):
            self.machine.bodyReceived(bytes.readableBytesView)
        case .end(let trailers):
            self.run(self.machine.endReceived(trailers: trailers))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is HTTPParserError {
            self.run(self.machine.parseFailed())
        } else {
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.machine.connectionClosed()
        self.delayed?.cancel()
        self.delayed = nil
        self.bodyStream = nil
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, self.bodyStream != nil {
            self.pumpBody()
        }
        context.fireChannelWritabilityChanged()
    }

    private func run(_ actions: [UpstreamConnectionStateMachine.Action]) {
        for action in actions {
            self.run(action)
        }
    }

    private func run(_ action: UpstreamConnectionStateMachine.Action) {
        guard let context = self.context else {
            return
        }
        switch action {
        case .record(let request):
            self.recorder.record(request)
        case .recordAndReset(let request):
            self.recorder.record(request)
            Self.reset(context.channel)
        case .answer(let pending):
            self.answer(pending, with: self.recorder.behavior, closesConnection: !pending.keepAlive)
        case .answerBadRequestAndClose:
            let bytes = ResponseBytes.head(
                status: 400,
                headers: [("content-length", "0"), ("connection", "close")]
            )
            let channel = context.channel
            context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(bytes: bytes))).whenComplete { _ in
                channel.close(promise: nil)
            }
        case .close:
            context.close(promise: nil)
        }
    }

    private func answer(
        _ pending: UpstreamConnectionStateMachine.PendingRequest,
        with behavior: TestUpstream.Behavior,
        closesConnection: Bool
    ) {
        guard let context = self.context else {
            return
        }
        let request = pending.recorded
        switch behavior {
        case .echo:
            let headers = [
                ("X-Echo-Method", request.method),
                ("X-Echo-URI", request.uri),
                ("X-Echo-Version", request.version),
            ]
            self.writeComplete(200, headers, request.body, for: pending, closesConnection: closesConnection)
        case .fixed(let status, let headers, let body):
            self.writeComplete(status, headers, body, for: pending, closesConnection: closesConnection)
        case .custom(let build):
            let response = build(request)
            self.writeComplete(
                response.status,
                response.headers,
                response.body,
                for: pending,
                closesConnection: closesConnection
            )
        case .slow(let delay, let then):
            self.delayed = context.eventLoop.assumeIsolated().scheduleTask(in: delay) {
                self.delayed = nil
                self.answer(pending, with: then, closesConnection: closesConnection)
            }
        case .chunked(let parts, let trailers):
            var headers = [("transfer-encoding", "chunked")]
            headers += Self.connectionHeaders(for: pending, closesConnection: closesConnection)
            var bytes = ResponseBytes.head(status: 200, headers: headers)
            if !pending.isHEAD {
                for part in parts where !part.isEmpty {
                    bytes += ResponseBytes.chunk(part)
                }
                bytes += ResponseBytes.lastChunk(trailers: trailers)
            }
            self.writeThenFinish(bytes, closesConnection: closesConnection)
        case .largeBody(let count):
            var headers = [("content-length", String(count))]
            headers += Self.connectionHeaders(for: pending, closesConnection: closesConnection)
            let head = ResponseBytes.head(status: 200, headers: headers)
            if pending.isHEAD || count == 0 {
                self.writeThenFinish(head, closesConnection: closesConnection)
            } else {
                context.write(self.wrapOutboundOut(ByteBuffer(bytes: head)), promise: nil)
                self.bodyStream = BodyStream(sent: 0, total: count, closesConnection: closesConnection)
                self.pumpBody()
            }
        case .resetBeforeHead:
            Self.reset(context.channel)
        case .resetMidBody(let after):
            let declared = after + 1024
            let head = ResponseBytes.head(status: 200, headers: [("content-length", String(declared))])
            let bytes = head + (pending.isHEAD ? [] : TestUpstream.patternBytes(count: after))
            let channel = context.channel
            context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(bytes: bytes))).whenComplete { _ in
                Self.reset(channel)
            }
        case .hang:
            break
        case .raw(let bytes):
            self.writeThenFinish(bytes, closesConnection: closesConnection)
        case .closeAfterResponse(let inner):
            self.answer(pending, with: inner, closesConnection: true)
        }
    }

    /// Writes a content-length response, adding the framing and connection headers that the scenario left out.
    ///
    /// Scenarios then only state what they test; explicit framing headers are kept as given.
    private func writeComplete(
        _ status: Int,
        _ headers: [(String, String)],
        _ body: [UInt8],
        for pending: UpstreamConnectionStateMachine.PendingRequest,
        closesConnection: Bool
    ) {
        var headers = headers
        let allowsBody = ResponseBytes.statusAllowsBody(status)
        let framed = ResponseBytes.contains(headers, "content-length")
            || ResponseBytes.contains(headers, "transfer-encoding")
        if allowsBody, !framed {
            headers.append(("content-length", String(body.count)))
        }
        headers += Self.connectionHeaders(for: pending, closesConnection: closesConnection, existing: headers)
        var bytes = ResponseBytes.head(status: status, headers: headers)
        if allowsBody, !pending.isHEAD {
            bytes += body
        }
        self.writeThenFinish(bytes, closesConnection: closesConnection)
    }

    private func writeThenFinish(_ bytes: [UInt8], closesConnection: Bool) {
        guard let context = self.context else {
            return
        }
        let written = context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(bytes: bytes)))
        if closesConnection {
            written.assumeIsolated().whenComplete { _ in
                self.run(self.machine.answerFinished(closeConnection: true))
            }
        } else {
            self.run(self.machine.answerFinished(closeConnection: false))
        }
    }

    /// Writes pattern pieces while the channel stays writable, and finishes the answer after the last one.
    ///
    /// A slow reader must see backpressure, not a server that buffers the whole body.
    private func pumpBody() {
        guard let context = self.context, var stream = self.bodyStream else {
            return
        }
        while stream.sent < stream.total, context.channel.isWritable {
            let count = min(Self.pieceSize, stream.total - stream.sent)
            let allocator = context.channel.allocator
            let piece = ResponseBytes.patternPiece(offset: stream.sent, count: count, allocator: allocator)
            stream.sent += count
            if stream.sent == stream.total {
                self.bodyStream = nil
                let closes = stream.closesConnection
                context.writeAndFlush(self.wrapOutboundOut(piece)).assumeIsolated().whenComplete { _ in
                    self.run(self.machine.answerFinished(closeConnection: closes))
                }
                return
            }
            context.write(self.wrapOutboundOut(piece), promise: nil)
        }
        self.bodyStream = stream
        context.flush()
    }

    private static func connectionHeaders(
        for pending: UpstreamConnectionStateMachine.PendingRequest,
        closesConnection: Bool,
        existing: [(String, String)] = []
    ) -> [(String, String)] {
        guard !ResponseBytes.contains(existing, "connection") else {
            return []
        }
        if closesConnection {
            return [("connection", "close")]
        }
        if pending.recorded.version == "HTTP/1.0" {
            return [("connection", "keep-alive")]
        }
        return []
    }

    private static func resetsOnHead(_ behavior: TestUpstream.Behavior) -> Bool {
        switch behavior {
        case .resetBeforeHead:
            true
        case .closeAfterResponse(let inner):
            Self.resetsOnHead(inner)
        default:
            false
        }
    }

    /// Closes with SO_LINGER 0 so that the kernel sends RST instead of FIN.
    ///
    /// A reset is the fault real upstreams produce when they crash; a FIN would test a different path.
    static func reset(_ channel: any Channel) {
        guard let provider = channel as? any SocketOptionProvider else {
            channel.close(promise: nil)
            return
        }
        provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in
            channel.close(promise: nil)
        }
    }
}
