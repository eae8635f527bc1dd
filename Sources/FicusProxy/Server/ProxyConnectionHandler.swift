import FicusCore
import FicusDiff
import Foundation
import Logging
import NIOCore

/// What one client connection shares with every other connection of its proxy.
final class ProxyContext: Sendable {
    let configuration: ProxyConfiguration
    let routing: RoutingState
    let metrics: ProxyMetrics?
    let logger: Logger
    /// Sends shadow copies from its own event loop; nil when the proxy has no shadow sink.
    let shadow: ShadowDispatcher?

    init(
        configuration: ProxyConfiguration,
        routing: RoutingState,
        metrics: ProxyMetrics?,
        logger: Logger,
        shadow: ShadowDispatcher? = nil
    ) {
        self.configuration = configuration
        self.routing = routing
        self.metrics = metrics
        self.logger = logger
        self.shadow = shadow
    }
}

/// Serves one client connection: parses requests, routes them, and streams them to and from upstreams.
///
/// Requests on a connection are handled one at a time; bytes a client pipelines behind a request wait, unparsed,
/// until its response is complete, so answers go out in order and nothing behind a refused request is ever read.
final class ProxyConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum State {
        case idle
        case readingHead
        case exchange
        case closing
        case closed
    }

    /// The request in progress and everything known about its answer.
    ///
    /// A class, so that every event updates the one record in place instead of copying it out and back.
    final class Exchange {
        var method: HTTPMethodKind
        var methodString: String
        var path: String
        var clientMinorVersion: UInt8
        var requestFraming: HTTPBodyFraming
        var started: NIODeadline
        var route = "-"
        var upstreamName = "-"
        /// The routing decision's sticky hash, which metric windows count distinct values of.
        var stickyHash: UInt32?
        var upstream: Upstream?
        var responseTimeout: TimeAmount
        /// How long to wait for an upstream connection: the proxy's connect timeout or the route's.
        var connectTimeout: TimeAmount = .seconds(5)
        var outboundHead = ByteBuffer()
        var connection: UpstreamConnection?
        var waitingForConnection = false
        var reused = false
        var retried = false
        var headWriteFailed = false
        var requestEnded = false
        var requestBodyForwarded: Int64 = 0
        var pendingBody: [ByteBuffer] = []
        var pendingBodyBytes = 0
        var pendingEnd: HTTPTrailers?? = nil
        var responseStarted = false
        var responseComplete = false
        var responseFraming: HeaderHygiene.ClientFraming = .none
        var status = 0
        var responseBytes: Int64 = 0
        var keepAlive: Bool
        var local = false
        var shadow: ShadowRecorder?
        /// The client as the access log names it: the peer, or the address trusted proxies reported.
        var client = "-"

        init(
            method: HTTPMethodKind,
            methodString: String,
            path: String,
            clientMinorVersion: UInt8,
            requestFraming: HTTPBodyFraming,
            started: NIODeadline,
            responseTimeout: TimeAmount,
            keepAlive: Bool
        ) {
            self.method = method
            self.methodString = methodString
            self.path = path
            self.clientMinorVersion = clientMinorVersion
            self.requestFraming = requestFraming
            self.started = started
            self.responseTimeout = responseTimeout
            self.keepAlive = keepAlive
        }
    }

    private let shared: ProxyContext
    private let pool: UpstreamPool
    private let resources: LoopResources
    private var context: ChannelHandlerContext?
    private var parser: HTTP1Parser
    private var inbound: ByteBuffer?
    private var state: State = .idle
    private var exchange: Exchange?
    private var timer: DeadlineTimer?
    private var processing = false
    private var readsPaused = false
    private var readPending = false
    private var needsFlush = false
    /// Small pieces of the answer, collected into one write; reused from answer to answer.
    private var outBuffer = ByteBuffer()
    /// Whether `outBuffer`'s bytes have been handed to the channel (they are cleared before the next piece).
    private var outBufferSent = false
    /// The forwarded request head; reused from request to request.
    private var headBuffer = ByteBuffer()
    private var lastMetrics: (route: String, upstream: String, statusClass: Int, metrics: ProxyMetrics.RequestMetrics)?
    private var draining = false
    private var inputClosed = false
    private var clientAddress: IPAddress?
    private var clientAddressText = "-"
    private var clientTrusted = false
    /// What the forwarded heads record of the peer; the same for every request of the connection.
    private var clientFacts = HeaderHygiene.ClientFacts(address: "-", trusted: false)

    /// Request bodies buffered while no upstream connection is ready, and pipelined bytes held while a response is
    /// in progress, are bounded by this many bytes before the client is no longer read.
    private static let bufferLimit = 64 * 1024

    /// Pieces up to this size are copied into one outgoing buffer rather than queued as writes of their own.
    private static let coalesceLimit = 4 * 1024

    /// How long an idle connection is kept open once draining starts.
    private static let drainIdleGrace: TimeAmount = .milliseconds(500)

    init(shared: ProxyContext, resources: LoopResources) {
        self.shared = shared
        self.resources = resources
        self.pool = resources.pool
        self.parser = HTTP1Parser(kind: .request, limits: shared.configuration.limits)
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.timer = DeadlineTimer(eventLoop: context.eventLoop) { self.timerExpired() }
        if let remote = context.channel.remoteAddress {
            self.clientAddressText = remote.ipAddress ?? "-"
            self.clientAddress = remote.ipAddress.flatMap { IPAddress($0) }
            if let address = self.clientAddress {
                self.clientTrusted = ClientAddress.isTrusted(address, self.shared.configuration.trustedProxies)
            }
        }
        self.clientFacts = HeaderHygiene.ClientFacts(
            address: self.clientAddressText,
            trusted: self.clientTrusted,
            untrustedFields: self.shared.configuration.untrustedFields
        )
        self.enterIdle()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timer?.cancel()
        self.context = nil  // The context holds this handler: keeping it would leak both per connection.
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = self.unwrapInboundIn(data)
        if var inbound = self.inbound, inbound.readableBytes > 0 {
            inbound.writeBuffer(&buffer)
            self.inbound = inbound
        } else {
            self.inbound = buffer
        }
        self.processInbound()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.flushIfNeeded()
        self.exchange?.connection?.flush()
    }

    func read(context: ChannelHandlerContext) {
        if self.readsPaused {
            self.readPending = true
        } else {
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        guard let connection = self.exchange?.connection else { return }
        if context.channel.isWritable {
            connection.resumeReads()
        } else {
            connection.pauseReads()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is ChannelShouldQuiesceEvent:
            // An idle keep-alive connection may have a request on the wire right now: give it a moment to arrive
            // (it is then answered with `Connection: close`) instead of racing it with a close.
            self.draining = true
            if self.state == .idle { self.timer?.set(after: Self.drainIdleGrace) }
        case ChannelEvent.inputClosed:
            self.inputClosed = true
            self.clientInputClosed()
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.state = .closed
        self.timer?.cancel()
        self.inbound = nil
        // An exchange still here was not finished (the client went away, or the connection was closed after an
        // upstream failure): release what it holds and count it once, so in-flight never drifts.
        if let exchange = self.exchange {
            self.exchange = nil
            if exchange.waitingForConnection, let upstream = exchange.upstream {
                self.pool.cancel(self, upstream: upstream.name)
            }
            exchange.connection?.abort()
            exchange.connection = nil
            if !exchange.responseComplete {
                exchange.shadow?.abandon(reason: "client_gone")
                // nginx's 499: the client went away before its answer was complete.
                exchange.status = exchange.responseStarted ? exchange.status : 499
            }
            self.record(exchange)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.close()
    }

    // MARK: Parsing

    private func processInbound() {
        guard !self.processing else { return }
        self.processing = true
        defer { self.processing = false }
        loop: while true {
            switch self.state {
            case .closing, .closed:
                self.inbound = nil
                break loop
            case .exchange where self.exchange?.requestEnded ?? false:
                break loop
            case .idle, .readingHead, .exchange:
                break
            }
            var buffer = self.inbound ?? ByteBuffer()
            let event: HTTP1Parser.Event?
            do {
                event = try self.parser.next(&buffer)
            } catch {
                self.inbound = nil
                self.refuse(error)
                break loop
            }
            self.inbound = buffer.readableBytes > 0 ? buffer : nil
            guard let event else {
                if self.state == .idle && !self.parser.isIdle {
                    self.state = .readingHead
                    self.timer?.set(after: self.shared.configuration.timeouts.clientHeader)
                }
                break loop
            }
            switch event {
            case .head(let head): self.requestHead(head)
            case .body(let body): self.requestBody(body)
            case .end(let trailers): self.requestEnd(trailers)
            }
        }
        self.updateReadPausing()
        self.flushIfNeeded()
    }

    private func requestHead(_ head: HTTPHead) {
        self.timer?.clear()
        self.state = .exchange
        self.shared.metrics?.inFlight(delta: 1)
        let table = self.shared.routing.current
        var clientAddress = self.clientAddress
        var clientText = self.clientAddressText
        if self.clientTrusted, let peer = self.clientAddress {
            let resolved = head.clientAddress(peer: peer, trusted: self.shared.configuration.trustedProxies)
            if resolved != peer {
                clientAddress = resolved
                clientText = resolved.description
            }
        }
        let view = RequestView(head: head, clientAddress: clientAddress)
        let exchange = Exchange(
            method: head.method,
            methodString: head.methodString,
            path: self.shared.configuration.accessLog ? head.target : "",
            clientMinorVersion: head.versionMinor,
            requestFraming: head.framing,
            started: .now(),
            responseTimeout: self.shared.configuration.timeouts.responseHead,
            keepAlive: head.wantsKeepAlive && !self.draining
        )
        exchange.client = clientText
        let decision = table.decide(view)
        guard let route = decision.route else {
            self.exchange = exchange
            self.respondLocally(404, error: "no_route", detail: "no route matches \(view.method) \(view.path)")
            return
        }
        exchange.route = route
        exchange.upstreamName = decision.upstream
        exchange.stickyHash = decision.stickyHash
        guard let upstream = table.upstream(named: decision.upstream) else {
            self.exchange = exchange
            self.respondLocally(
                502,
                error: "unknown_upstream",
                detail: "route '\(route)' names upstream '\(decision.upstream)', which is not configured"
            )
            return
        }
        exchange.upstream = upstream
        exchange.connectTimeout = self.shared.configuration.timeouts.connect
        if let override = decision.timeouts.responseHeaderMilliseconds {
            exchange.responseTimeout = Self.milliseconds(override)
        }
        if let override = decision.timeouts.connectMilliseconds {
            exchange.connectTimeout = Self.milliseconds(override)
        }
        let edits = HeaderHygiene.RequestEdits.forRequest(decision.rewrite, view: view)
        // Reusing one buffer saves an allocation per request: by now the last request's head has been written.
        self.headBuffer.clear()
        HeaderHygiene.writeRequestHead(
            head,
            into: &self.headBuffer,
            client: self.clientFacts,
            viaName: self.shared.configuration.viaName,
            edits: edits,
            upstreamName: upstream.name
        )
        exchange.outboundHead = self.headBuffer
        exchange.waitingForConnection = true
        if let shadowName = decision.shadow, shadowName != decision.upstream, let dispatcher = self.shared.shadow {
            exchange.shadow = self.shadowRecorder(
                view: view,
                route: route,
                serving: upstream.name,
                shadow: table.upstream(named: shadowName),
                decision: decision,
                table: table,
                dispatcher: dispatcher
            )
        }
        self.exchange = exchange
        if head.expectsContinue && head.framing != .none {
            self.writeToClient(ByteBuffer(staticString: "HTTP/1.1 100 Continue\r\n\r\n"))
        }
        self.timer?.set(after: exchange.connectTimeout)
        self.pool.acquire(upstream, for: self)
    }

    private func requestBody(_ body: ByteBuffer) {
        guard let exchange = self.exchange else { return }
        if exchange.local || exchange.responseComplete { return }  // the answer is already given; drop the rest
        exchange.shadow?.requestBody(body)
        if let connection = exchange.connection {
            Self.writeBody(body, framing: exchange.requestFraming, to: connection)
            exchange.requestBodyForwarded += Int64(body.readableBytes)
        } else {
            exchange.pendingBody.append(body)
            exchange.pendingBodyBytes += body.readableBytes
        }
    }

    private func requestEnd(_ trailers: HTTPTrailers?) {
        guard let exchange = self.exchange else { return }
        exchange.requestEnded = true
        exchange.shadow?.requestComplete()
        if let connection = exchange.connection, !exchange.responseComplete, !exchange.local {
            Self.writeEnd(trailers, framing: exchange.requestFraming, to: connection)
            connection.requestComplete(true)
            connection.flush()
        } else if exchange.connection == nil && !exchange.local {
            exchange.pendingEnd = .some(trailers)
        }
        self.finishIfDone()
    }

    private func clientInputClosed() {
        switch self.state {
        case .idle, .readingHead:
            self.close()
        case .exchange:
            if self.exchange?.requestEnded == false {
                // The client stopped sending in the middle of its request: the request is lost, not forwarded.
                self.refuse(HTTPFramingError(.truncated, "the client closed its side in the middle of a request"))
            }
        case .closing, .closed:
            break
        }
    }

    /// A route's timeout as an amount, clamped to 1 ms ... 24 h: the store is checked input too.
    private static func milliseconds(_ value: Int) -> TimeAmount {
        .milliseconds(Int64(min(max(value, 1), RouteTimeouts.maxMilliseconds)))
    }

    // MARK: Upstream connection

    private static func writeBody(_ body: ByteBuffer, framing: HTTPBodyFraming, to connection: UpstreamConnection) {
        if case .chunked = framing {
            var header = ByteBuffer()
            header.writeString(String(body.readableBytes, radix: 16))
            header.writeStaticString("\r\n")
            connection.write(header)
            connection.write(body)
            connection.write(ByteBuffer(staticString: "\r\n"))
        } else {
            connection.write(body)
        }
    }

    private static func writeEnd(_ trailers: HTTPTrailers?, framing: HTTPBodyFraming, to connection: UpstreamConnection) {
        guard case .chunked = framing else { return }
        var end = ByteBuffer(staticString: "0\r\n")
        HeaderHygiene.writeTrailers(trailers, into: &end)
        end.writeStaticString("\r\n")
        connection.write(end)
    }

    private func startExchange(on connection: UpstreamConnection, reused: Bool) {
        guard let exchange = self.exchange, self.state == .exchange else {
            self.pool.release(connection)
            return
        }
        self.timer?.clear()
        exchange.waitingForConnection = false
        exchange.connection = connection
        exchange.reused = reused
        connection.begin(delegate: self, method: exchange.method, responseTimeout: exchange.responseTimeout)
        if reused && !exchange.method.isRetryable {
            // Knowing that nothing of a non-idempotent request was written is what allows re-sending it.
            let promise = connection.context!.eventLoop.makePromise(of: Void.self)
            let this = UnsafeTransfer(self)
            promise.futureResult.whenFailure { _ in this.value.exchange?.headWriteFailed = true }
            connection.write(exchange.outboundHead, promise: promise)
        } else {
            connection.write(exchange.outboundHead)
        }
        exchange.shadow?.primarySent()
        for body in exchange.pendingBody {
            Self.writeBody(body, framing: exchange.requestFraming, to: connection)
            exchange.requestBodyForwarded += Int64(body.readableBytes)
        }
        exchange.pendingBody.removeAll()
        exchange.pendingBodyBytes = 0
        if case .some(let trailers) = exchange.pendingEnd {
            Self.writeEnd(trailers, framing: exchange.requestFraming, to: connection)
            connection.requestComplete(true)
            exchange.pendingEnd = nil
        } else if exchange.requestEnded {
            connection.requestComplete(true)
        }
        connection.flush()
        if let context = self.context, !context.channel.isWritable { connection.pauseReads() }
        self.updateReadPausing()
    }

    /// Whether a failed exchange may be sent again on a fresh connection (RELIABILITY.md: only a reused connection
    /// found dead, and only when nothing was written or the request is idempotent with no body streamed).
    private func mayRetry(_ exchange: Exchange, _ failure: UpstreamFailure) -> Bool {
        guard exchange.reused, !exchange.retried, !exchange.responseStarted else { return false }
        guard case .closedBeforeHead = failure, exchange.connection?.sawResponseBytes != true else { return false }
        if exchange.headWriteFailed { return true }
        return exchange.method.isRetryable && exchange.requestBodyForwarded == 0
    }

    // MARK: Answers

    /// Queues bytes for the client; small pieces are coalesced so that a small answer leaves in one `write`.
    private func writeToClient(_ buffer: ByteBuffer) {
        if buffer.readableBytes <= Self.coalesceLimit {
            self.prepareOutBuffer()
            self.outBuffer.writeImmutableBuffer(buffer)
        } else {
            self.writeCoalesced()
            self.context?.write(self.wrapOutboundOut(buffer), promise: nil)
        }
        self.needsFlush = true
    }

    /// Makes `outBuffer` ready for new bytes; once its last bytes were written out it is cleared in place.
    private func prepareOutBuffer() {
        if self.outBufferSent {
            self.outBufferSent = false
            self.outBuffer.clear()
        }
    }

    private func writeCoalesced() {
        if !self.outBufferSent && self.outBuffer.readableBytes > 0 {
            self.outBufferSent = true
            self.context?.write(self.wrapOutboundOut(self.outBuffer), promise: nil)
        }
    }

    private func flushIfNeeded() {
        if self.needsFlush {
            self.needsFlush = false
            self.writeCoalesced()
            self.context?.flush()
        }
    }

    /// Answers the current request from Ficus itself (no upstream involved, or the upstream failed).
    private func respondLocally(_ status: Int, error: String, detail: String, retryAfter: Bool = false) {
        guard let exchange = self.exchange else { return }
        guard !exchange.responseStarted else {
            // Part of another answer is already on the wire: a second one would corrupt the stream, so the
            // client sees the connection close instead.
            self.close()
            return
        }
        exchange.shadow?.abandon(reason: "serving_failed")
        exchange.local = true
        exchange.responseStarted = true
        exchange.responseComplete = true
        exchange.status = status
        // The connection stays open only if the request has been (or can cheaply be) read to its end.
        let bodyPending = !exchange.requestEnded && exchange.requestFraming != .none
        if bodyPending { exchange.keepAlive = false }
        let upstream = exchange.upstreamName == "-" ? nil : exchange.upstreamName
        let response = LocalResponse.json(
            status: status,
            error: error,
            detail: detail,
            upstream: upstream,
            keepAlive: exchange.keepAlive,
            retryAfter: retryAfter,
            headOnly: exchange.method == .head
        )
        exchange.responseBytes = Int64(response.readableBytes)
        self.writeToClient(response)
        self.finishIfDone()
    }

    /// Refuses a request that broke the framing rules: status, `Connection: close`, close; nothing forwarded.
    private func refuse(_ error: HTTPFramingError) {
        self.shared.metrics?.framingRefused(error.reason)
        self.shared.logger.debug(
            "refused request",
            metadata: ["reason": "\(error.reason.rawValue)", "detail": "\(error.detail)", "client": "\(self.clientAddressText)"]
        )
        self.inbound = nil
        if let exchange = self.exchange {
            exchange.connection?.abort()
            exchange.connection = nil
            if exchange.waitingForConnection, let upstream = exchange.upstream {
                self.pool.cancel(self, upstream: upstream.name)
            }
            exchange.waitingForConnection = false
            if exchange.responseStarted {
                self.close()
                return
            }
        } else {
            self.state = .exchange
            self.shared.metrics?.inFlight(delta: 1)
            self.exchange = Exchange(
                method: .other,
                methodString: "-",
                path: "-",
                clientMinorVersion: 1,
                requestFraming: .none,
                started: .now(),
                responseTimeout: .seconds(0),
                keepAlive: false
            )
        }
        self.exchange?.keepAlive = false
        self.exchange?.requestEnded = true
        guard error.reason != .truncated else {
            self.finishExchange()
            return
        }
        self.respondLocally(error.status, error: error.reason.rawValue, detail: error.detail)
    }

    private func finishIfDone() {
        guard let exchange = self.exchange, exchange.responseComplete else { return }
        if exchange.requestEnded {
            self.finishExchange()
        } else if !exchange.local || exchange.requestFraming != .none {
            // Answered before the request was fully read: close rather than read the rest.
            self.exchange?.keepAlive = false
            self.finishExchange()
        }
    }

    private func finishExchange() {
        guard let exchange = self.exchange else { return }
        self.exchange = nil
        self.record(exchange)
        // What the client was told decides: a connection promised to stay open does, even when draining began
        // meanwhile (its next request is answered with `Connection: close`).
        if exchange.keepAlive && !self.inputClosed {
            self.enterIdle()
            if self.inbound != nil, !self.processing {
                self.processInbound()
            }
        } else {
            self.closeAfterFlush()
        }
    }

    private func record(_ exchange: Exchange) {
        self.shared.metrics?.inFlight(delta: -1)
        let duration = NIODeadline.now() - exchange.started
        if let metrics = self.shared.metrics {
            // A keep-alive connection mostly repeats the same route, upstream and status class: reuse the lookup.
            let statusClass = exchange.status / 100
            if let last = self.lastMetrics, last.statusClass == statusClass, last.route == exchange.route,
                last.upstream == exchange.upstreamName
            {
                last.metrics.record(status: exchange.status, duration: duration, stickyHash: exchange.stickyHash)
            } else {
                let found = metrics.requestMetrics(route: exchange.route, upstream: exchange.upstreamName, status: exchange.status)
                self.lastMetrics = (exchange.route, exchange.upstreamName, statusClass, found)
                found.record(status: exchange.status, duration: duration, stickyHash: exchange.stickyHash)
            }
        }
        guard self.shared.configuration.accessLog else { return }
        self.shared.logger.info(
            "request",
            metadata: [
                "method": "\(exchange.methodString)",
                "path": "\(exchange.path)",
                "status": "\(exchange.status)",
                "route": "\(exchange.route)",
                "upstream": "\(exchange.upstreamName)",
                "duration_ms": "\(Double(duration.nanoseconds) / 1_000_000)",
                "bytes": "\(exchange.responseBytes)",
                "client": "\(exchange.client == "-" ? self.clientAddressText : exchange.client)",
            ]
        )
    }

    private func enterIdle() {
        self.state = .idle
        self.timer?.set(after: (self.draining ? Self.drainIdleGrace : self.shared.configuration.timeouts.clientIdle))
    }

    private func closeAfterFlush() {
        guard self.state != .closing, self.state != .closed, let context = self.context else { return }
        self.state = .closing
        self.needsFlush = false
        self.writeCoalesced()
        self.timer?.cancel()
        let this = UnsafeTransfer(self)
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(self.wrapOutboundOut(ByteBuffer()), promise: promise)
        promise.futureResult.whenComplete { _ in this.value.close() }
    }

    private func close() {
        guard self.state != .closed else { return }
        if self.state != .closing { self.state = .closing }
        self.timer?.cancel()
        self.context?.close(promise: nil)
    }

    private func updateReadPausing() {
        var pause = false
        if let exchange = self.exchange {
            if let connection = exchange.connection, !connection.isWritable { pause = true }
            if exchange.pendingBodyBytes > Self.bufferLimit { pause = true }
        }
        if let inbound = self.inbound, inbound.readableBytes > Self.bufferLimit { pause = true }
        if pause {
            self.readsPaused = true
        } else if self.readsPaused {
            self.readsPaused = false
            if self.readPending {
                self.readPending = false
                self.context?.read()
            }
        }
    }

    private func timerExpired() {
        switch self.state {
        case .idle:
            self.close()
        case .readingHead:
            self.inbound = nil
            self.shared.metrics?.framingRefused(.truncated)
            self.state = .exchange
            self.shared.metrics?.inFlight(delta: 1)
            self.exchange = Exchange(
                method: .other,
                methodString: "-",
                path: "-",
                clientMinorVersion: 1,
                requestFraming: .none,
                started: .now(),
                responseTimeout: .seconds(0),
                keepAlive: false
            )
            self.exchange?.requestEnded = true
            self.respondLocally(408, error: "request_timeout", detail: "the request head did not arrive in time")
            self.flushIfNeeded()
        case .exchange:
            // Waiting for a pooled connection took longer than the connect timeout.
            guard let exchange = self.exchange, exchange.waitingForConnection, let upstream = exchange.upstream else {
                return
            }
            self.pool.cancel(self, upstream: upstream.name)
            exchange.waitingForConnection = false
            self.connectionFailed(.connectTimeout)
        case .closing, .closed:
            break
        }
    }
}

extension ProxyConnectionHandler: UpstreamConnectionRequester {
    func connectionReady(_ connection: UpstreamConnection, reused: Bool) {
        guard self.state == .exchange, self.exchange?.waitingForConnection == true else {
            // The client went away (or was answered) while the connection was being set up.
            if connection.isUsable || connection.state == .connecting { self.pool.release(connection) }
            return
        }
        self.startExchange(on: connection, reused: reused)
        self.flushIfNeeded()
    }

    func connectionFailed(_ failure: UpstreamFailure) {
        guard self.state == .exchange, let exchange = self.exchange, !exchange.responseStarted else { return }
        exchange.waitingForConnection = false
        self.answerFailure(failure)
        self.flushIfNeeded()
    }

    /// Answers a request whose upstream failed before any of its answer reached the client.
    ///
    /// The body names the upstream and what went wrong, never its addresses or the socket's error: those tell a
    /// client how the network behind Ficus is laid out. The log line carries them for the operator.
    private func answerFailure(_ failure: UpstreamFailure) {
        let upstream = self.exchange?.upstreamName ?? "-"
        self.shared.logger.warning(
            "upstream failed",
            metadata: ["upstream": "\(upstream)", "failure": "\(failure)", "route": "\(self.exchange?.route ?? "-")"]
        )
        switch failure {
        case .connectFailed:
            self.respondLocally(502, error: "upstream_unavailable", detail: "cannot connect to upstream '\(upstream)'")
        case .connectTimeout:
            self.respondLocally(503, error: "upstream_connect_timeout", detail: "connecting to upstream '\(upstream)' timed out", retryAfter: true)
        case .poolExhausted:
            self.respondLocally(503, error: "upstream_overloaded", detail: "upstream '\(upstream)' has no free connection and its queue is full", retryAfter: true)
        case .responseTimeout:
            self.respondLocally(504, error: "upstream_timeout", detail: "upstream '\(upstream)' did not answer in time")
        case .closedBeforeHead:
            self.respondLocally(502, error: "upstream_reset", detail: "upstream '\(upstream)' closed the connection before answering")
        case .closedAfterHead:
            self.close()
        case .badResponse:
            self.respondLocally(502, error: "upstream_bad_response", detail: "upstream '\(upstream)' sent an invalid response")
        }
    }
}

extension ProxyConnectionHandler: UpstreamExchangeDelegate {
    func upstreamResponseHead(_ head: HTTPHead) {
        guard let exchange = self.exchange else { return }
        exchange.responseStarted = true
        exchange.status = head.status
        exchange.responseFraming = HeaderHygiene.clientFraming(for: head, clientMinorVersion: exchange.clientMinorVersion)
        if case .closeDelimited = exchange.responseFraming { exchange.keepAlive = false }
        if !exchange.requestEnded || self.draining { exchange.keepAlive = false }
        self.prepareOutBuffer()
        let before = self.outBuffer.readableBytes
        HeaderHygiene.writeResponseHead(
            head,
            into: &self.outBuffer,
            framing: exchange.responseFraming,
            keepAlive: exchange.keepAlive,
            clientMinorVersion: exchange.clientMinorVersion
        )
        exchange.responseBytes += Int64(self.outBuffer.readableBytes - before)
        exchange.shadow?.primaryHead(head)
        self.needsFlush = true
    }

    func upstreamResponseBody(_ body: ByteBuffer) {
        guard let exchange = self.exchange else { return }
        exchange.responseBytes += Int64(body.readableBytes)
        exchange.shadow?.primaryBody(body)
        if case .chunked = exchange.responseFraming {
            var header = ByteBuffer()
            header.writeString(String(body.readableBytes, radix: 16))
            header.writeStaticString("\r\n")
            self.writeToClient(header)
            self.writeToClient(body)
            self.writeToClient(ByteBuffer(staticString: "\r\n"))
        } else {
            self.writeToClient(body)
        }
        if let context = self.context, !context.channel.isWritable {
            self.exchange?.connection?.pauseReads()
        }
    }

    func upstreamResponseEnd(_ trailers: HTTPTrailers?) {
        guard let exchange = self.exchange else { return }
        if case .chunked = exchange.responseFraming {
            var end = ByteBuffer(staticString: "0\r\n")
            HeaderHygiene.writeTrailers(trailers, into: &end)
            end.writeStaticString("\r\n")
            self.writeToClient(end)
        }
        exchange.responseComplete = true
        exchange.connection = nil
        self.flushIfNeeded()
        exchange.shadow?.primaryEnd()
        self.finishIfDone()
    }

    func upstreamReadComplete() {
        self.flushIfNeeded()
    }

    func upstreamFailed(_ failure: UpstreamFailure) {
        guard let exchange = self.exchange else { return }
        if self.mayRetry(exchange, failure), let upstream = exchange.upstream {
            exchange.retried = true
            exchange.connection = nil
            exchange.waitingForConnection = true
            self.timer?.set(after: exchange.connectTimeout)
            self.pool.acquire(upstream, for: self, fresh: true)
            return
        }
        exchange.connection = nil
        exchange.shadow?.abandon(reason: "serving_failed")
        if exchange.responseStarted {
            // Never let a truncated answer look complete: the client sees the connection close.
            self.flushIfNeeded()
            self.close()
            return
        }
        self.answerFailure(failure)
        self.flushIfNeeded()
    }

    func upstreamWritabilityChanged(_ writable: Bool) {
        self.updateReadPausing()
    }
}

extension ProxyConnectionHandler {
    /// Sets up the shadowing of the current request, or counts why it cannot be shadowed.
    fileprivate func shadowRecorder(
        view: RequestView,
        route: String,
        serving: String,
        shadow: Upstream?,
        decision: Decision,
        table: RoutingTable,
        dispatcher: ShadowDispatcher
    ) -> ShadowRecorder? {
        guard let shadow else {
            self.shared.metrics?.shadowDropped(route: route, view: view, reason: "unknown_upstream")
            return nil
        }
        guard dispatcher.tryAcquire() else {
            self.shared.metrics?.shadowDropped(route: route, view: view, reason: "capacity")
            return nil
        }
        // Drawn only for a copy that will be made, so an endpoint's noise floor counts samples actually taken.
        var second: Upstream?
        if let candidate = decision.noise,
            dispatcher.noise.draw(route: route, method: view.method, path: view.path, percent: decision.noisePercent)
        {
            second = table.upstream(named: candidate)
        }
        let plan = ShadowJob.Plan(
            view: view,
            client: self.clientFacts,
            viaName: self.shared.configuration.viaName,
            table: table,
            route: route,
            serving: serving,
            shadow: shadow,
            second: second,
            timestamp: Int64(Date().timeIntervalSince1970 * 1_000_000)
        )
        return ShadowRecorder(
            plan: plan,
            dispatcher: dispatcher,
            limits: self.shared.configuration.shadow,
            metrics: self.shared.metrics
        )
    }
}
