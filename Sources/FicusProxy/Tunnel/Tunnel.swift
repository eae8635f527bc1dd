import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// The WebSocket tunnels of a proxy: how many are open, against `ProxyConfiguration.tunnels.maxActive`.
///
/// Shared by every event loop; touched only when a handshake arrives and when a tunnel starts or ends.
final class TunnelCounter: Sendable {
    private let count = NIOLockedValueBox(0)

    /// Tunnels open now.
    var active: Int { self.count.withLockedValue { $0 } }

    /// A tunnel opened.
    func started() { self.count.withLockedValue { $0 += 1 } }

    /// A tunnel ended.
    func ended() { self.count.withLockedValue { $0 -= 1 } }
}

/// A client connection and an upstream connection glued into one byte tunnel after a WebSocket `101`: the NIO shell of
/// `TunnelStateMachine`.
///
/// swift-nio's connect-proxy pattern: each channel gets a `TunnelGlue` (its HTTP handler removed), whose reads are
/// written to the other channel; a channel is read only while the other can take writes, so a slow reader slows the
/// writer on the far side instead of filling Ficus's memory. Both channels are on one event loop (the upstream pool is
/// per loop), so the two halves call each other directly. Loop-confined.
final class Tunnel {
    /// What the access log line and the metrics say of the tunnel.
    struct Record {
        var route: String
        var upstream: String
        var method: String
        var path: String
        var client: String
        var requestID: String
        /// When the handshake's request arrived (the line's duration runs from it).
        var started: NIODeadline
        /// Bytes of the `101` answer (and any tunnel bytes that came with it) already written to the client.
        var bytesToClient: Int64

        /// What `exchange`, whose handshake the upstream accepted, records; `peer` names the client when the exchange
        /// has none.
        init(_ exchange: ProxyConnectionHandler.Exchange, peer: String) {
            self.route = exchange.route
            self.upstream = exchange.upstreamName
            self.method = exchange.methodString
            self.path = exchange.path
            self.client = exchange.client == "-" ? peer : exchange.client
            self.requestID = exchange.requestID
            self.started = exchange.started
            self.bytesToClient = exchange.responseBytes
        }
    }

    private let shared: ProxyContext
    private var machine: TunnelStateMachine
    private var record: Record
    private let eventLoop: EventLoop
    private var timer: Scheduled<Void>?
    private(set) var clientGlue: TunnelGlue?
    private(set) var upstreamGlue: TunnelGlue?
    private var clientChannel: Channel?
    private var upstreamChannel: Channel?

    /// Glues `client` and `upstream` (each with its HTTP handler already removed, or about to be) and starts the
    /// idle timer; `pending` bytes the client sent after its handshake go to the upstream first.
    ///
    /// `couple(client:upstream:pending:)` then puts the glue into the two pipelines.
    init(shared: ProxyContext, record: Record, client: Channel, upstream: Channel) {
        self.shared = shared
        self.record = record
        self.eventLoop = client.eventLoop
        self.machine = TunnelStateMachine(idleTimeout: shared.configuration.tunnels.idleTimeout, now: .now())
        self.clientChannel = client
        self.upstreamChannel = upstream
        let clientGlue = TunnelGlue(side: .client)
        let upstreamGlue = TunnelGlue(side: .upstream)
        clientGlue.partner = upstreamGlue
        upstreamGlue.partner = clientGlue
        clientGlue.tunnel = self
        upstreamGlue.tunnel = self
        self.clientGlue = clientGlue
        self.upstreamGlue = upstreamGlue
        shared.tunnels.started()
        shared.metrics?.tunnels(route: record.route, upstream: record.upstream, delta: 1)
        self.run(self.machine.start())
    }

    /// Puts the glue into both pipelines and starts both reading: `client` is the context of the client's HTTP
    /// handler, which leaves its pipeline once the glue is in; `pending` bytes the client sent behind its handshake
    /// (its first frames) go to the upstream first. A pipeline that refuses the glue ends the tunnel.
    func couple(client context: ChannelHandlerContext, upstream: Channel, pending: ByteBuffer?) {
        guard let clientGlue = self.clientGlue, let upstreamGlue = self.upstreamGlue else { return }
        do {
            try upstream.pipeline.syncOperations.addHandler(upstreamGlue)
            try context.pipeline.syncOperations.addHandler(clientGlue)
        } catch {
            self.closed(.client)
            return
        }
        if let pending, pending.readableBytes > 0 {
            self.bytesRead(pending.readableBytes, from: .client)
            upstreamGlue.write(pending)
            upstreamGlue.flush()
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        clientGlue.startReading()
        upstreamGlue.startReading()
    }

    /// Bytes went through from `side`.
    func bytesRead(_ count: Int, from side: TunnelStateMachine.Side) {
        self.machine.bytesRead(count, from: side, now: .now())
    }

    /// `side` closed, half-closed or failed: the tunnel ends.
    func closed(_ side: TunnelStateMachine.Side) {
        self.run(self.machine.closed(side))
    }

    /// Graceful shutdown began (the client channel was told to quiesce).
    func drainStarted() {
        self.machine.drainStarted()
    }

    private func run(_ action: TunnelStateMachine.Action) {
        switch action {
        case .none:
            break
        case .armTimer(let amount):
            let tunnel = NIOLoopBound(self, eventLoop: self.eventLoop)
            self.timer = self.eventLoop.scheduleTask(in: amount) {
                tunnel.value.run(tunnel.value.machine.timerFired(now: .now()))
            }
        case .end(let reason):
            self.end(reason)
        }
    }

    /// Closes both connections, breaks the references between the halves, and accounts for the tunnel.
    private func end(_ reason: TunnelStateMachine.EndReason) {
        self.timer?.cancel()
        self.timer = nil
        self.clientGlue?.tunnel = nil
        self.upstreamGlue?.tunnel = nil
        self.clientGlue?.partner = nil
        self.upstreamGlue?.partner = nil
        self.clientGlue = nil
        self.upstreamGlue = nil
        self.clientChannel?.close(promise: nil)
        self.upstreamChannel?.close(promise: nil)
        self.clientChannel = nil
        self.upstreamChannel = nil
        self.shared.tunnels.ended()
        self.shared.metrics?.tunnels(route: self.record.route, upstream: self.record.upstream, delta: -1)
        if reason == .idle {
            self.shared.logger.notice(
                "tunnel idle timeout",
                metadata: ["route": "\(self.record.route)", "upstream": "\(self.record.upstream)"]
            )
        }
        self.writeAccessLog(reason)
    }

    /// One access log line for the whole tunnel: the handshake's request, status 101, bytes each way, duration.
    private func writeAccessLog(_ reason: TunnelStateMachine.EndReason) {
        guard self.shared.configuration.accessLog, self.shared.logger.logLevel <= .info else { return }
        let duration = NIODeadline.now() - self.record.started
        let entry = AccessLogEntry(
            time: Date(),
            method: self.record.method,
            path: self.record.path,
            status: 101,
            route: self.record.route,
            upstream: self.record.upstream,
            durationNanoseconds: duration.nanoseconds,
            bytes: self.record.bytesToClient + self.machine.bytesFromUpstream,
            client: self.record.client,
            requestID: self.record.requestID,
            tunnel: AccessLogEntry.TunnelFacts(
                bytesFromClient: self.machine.bytesFromClient,
                bytesFromUpstream: self.machine.bytesFromUpstream,
                end: reason.rawValue
            )
        )
        let settings = self.shared.configuration.accessLogSettings
        if let sink = self.shared.accessLogSink {
            var line = ByteBuffer()
            entry.write(into: &line, settings: settings)
            sink.write(line)
            return
        }
        self.shared.logger.info(
            "tunnel",
            metadata: [
                "method": "\(entry.method)",
                "path": "\(settings.redactQuery ? AccessLogEntry.redactingQuery(entry.path) : entry.path)",
                "status": "101",
                "route": "\(entry.route)",
                "upstream": "\(entry.upstream)",
                "duration_ms": .stringConvertible(Double(duration.nanoseconds / 1000) / 1000),
                "bytes": .stringConvertible(entry.bytes),
                "bytes_in": .stringConvertible(self.machine.bytesFromClient),
                "client": "\(entry.client)",
                "request_id": "\(entry.requestID)",
                "tunnel_end": "\(reason.rawValue)",
            ]
        )
    }
}

/// One half of a tunnel: passes what its channel reads to the other half's channel, and reads only while that
/// channel can take it.
final class TunnelGlue: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Which connection this half reads from.
    let side: TunnelStateMachine.Side
    /// The other half; nil once the tunnel has ended.
    var partner: TunnelGlue?
    /// The tunnel, told of bytes and closes; nil once it has ended.
    var tunnel: Tunnel?
    private var context: ChannelHandlerContext?
    private var readPending = false

    init(side: TunnelStateMachine.Side) {
        self.side = side
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = self.unwrapInboundIn(data)
        self.tunnel?.bytesRead(bytes.readableBytes, from: self.side)
        self.partner?.write(bytes)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.partner?.flush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.tunnel?.closed(self.side)
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case ChannelEvent.inputClosed:
            // A half-close ends the tunnel: WebSocket peers end with close frames, then close the connection.
            self.tunnel?.closed(self.side)
        case is ChannelShouldQuiesceEvent:
            // Tunnels are not drained like requests (they may never end): the server closes them when its drain
            // timeout passes.
            self.tunnel?.drainStarted()
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.tunnel?.closed(self.side)
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            self.partner?.partnerBecameWritable()
        }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if self.partner?.isWritable ?? false {
            context.read()
        } else {
            self.readPending = true
        }
    }

    /// Writes bytes of the other half (or leftovers of the handshake) to this channel.
    func write(_ bytes: ByteBuffer) {
        self.context?.write(self.wrapOutboundOut(bytes), promise: nil)
    }

    /// Flushes what `write` queued.
    func flush() {
        self.context?.flush()
    }

    /// Whether this channel can take writes now.
    var isWritable: Bool { self.context?.channel.isWritable ?? false }

    /// The other channel drained its writes: a read held back for it goes ahead.
    private func partnerBecameWritable() {
        if self.readPending {
            self.readPending = false
            self.context?.read()
        }
    }

    /// Starts reading (a read the removed HTTP handler held back may be pending).
    func startReading() {
        self.context?.read()
    }
}
