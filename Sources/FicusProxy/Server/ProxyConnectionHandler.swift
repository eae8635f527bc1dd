import FicusCore
import FicusDiff
import Foundation
import Logging
import NIOCore
import NIOSSL
import NIOTLS

/// Serves one client connection: parses requests, routes them, and streams them to and from upstreams.
///
/// A thin NIO shell around `ExchangeStateMachine`: channel, parser, pool and upstream events become the machine's
/// events, and its actions are carried out in one `run(_:)`. Requests on a connection are handled one at a time;
/// bytes a client pipelines behind a request wait, unparsed, until its response is complete, so answers go out in
/// order and nothing behind a refused request is ever read.
final class ProxyConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let shared: ProxyContext
    private let pool: UpstreamPool
    private let resources: LoopResources
    private var context: ChannelHandlerContext?
    private var parser: HTTP1Parser
    private var machine: ExchangeStateMachine
    private var inbound: ByteBuffer?
    private var exchange: Exchange?
    private var timer: DeadlineTimer?
    private var processing = false
    private var readsPaused = false
    private var readPending = false
    /// The bytes going to the client.
    private var output = ClientOutput()
    /// Metrics and the access log of finished exchanges.
    private var recorder: ExchangeRecorder
    /// The forwarded request head; reused from request to request.
    private var headBuffer = ByteBuffer()
    /// The answer head being handled (actions name it rather than carry it, so that they stay small).
    private var responseHead: HTTPHead?
    /// Bytes the upstream sent after its `101`, while the tunnel is being set up.
    private var upgradeLeftover: ByteBuffer?
    private var clientAddress: IPAddress?
    private var clientAddressText = "-"
    private var clientTrusted = false
    /// Routes and plans each request; what it records of the peer is the same for every request of the connection.
    private var planner: RequestPlanner
    /// The verified client certificate's subject (RFC 4514), on a TLS connection that asked for one.
    private(set) var clientCertificateSubject: String?
    /// Where this connection's request ids come from (random per connection, numbered per request).
    private var requestIDs: RequestIDs

    /// Request bodies buffered while no upstream connection is ready, and pipelined bytes held while a response is
    /// in progress, are bounded by this many bytes before the client is no longer read.
    private static let bufferLimit = 64 * 1024

    /// Request bodies up to this size are kept for a re-send on a fresh connection; a longer one is not re-sent.
    static let retainLimit = ExchangeStateMachine.retainLimit

    /// A handler for one client connection, or one HTTP/2 stream; `clientCertificateSubject` is the verified client
    /// certificate's subject when the handler joins a connection whose handshake is already done (ALPN, HTTP/2).
    init(shared: ProxyContext, resources: LoopResources, clientCertificateSubject: String? = nil) {
        self.clientCertificateSubject = clientCertificateSubject
        self.shared = shared
        self.resources = resources
        self.pool = resources.pool
        self.parser = HTTP1Parser(kind: .request, limits: shared.configuration.limits)
        self.requestIDs = shared.requestIDPrefix.map { RequestIDs(prefix: $0) } ?? RequestIDs()
        self.recorder = ExchangeRecorder(shared: shared)
        self.planner = RequestPlanner(shared: shared, client: HeaderHygiene.ClientFacts(address: "-", trusted: false))
        self.machine = ExchangeStateMachine(
            timeouts: ExchangeStateMachine.Timeouts(
                clientHeader: shared.configuration.timeouts.clientHeader,
                clientIdle: shared.configuration.timeouts.clientIdle
            )
        )
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.timer = DeadlineTimer(eventLoop: context.eventLoop) {
            let upstreamWritable = self.exchange?.connection?.isWritable ?? true
            if self.machine.phase == .readingHead {
                // The head did not arrive in time: what did arrive is dropped, and counted as cut short.
                self.inbound = nil
                self.shared.metrics?.framingRefused(.truncated)
            }
            self.handle(.deadline(upstreamWritable: upstreamWritable))
        }
        if let remote = context.channel.remoteAddress {
            self.clientAddressText = remote.ipAddress ?? "-"
            self.clientAddress = remote.ipAddress.flatMap { IPAddress($0) }
            if let address = self.clientAddress {
                self.clientTrusted = ClientAddress.isTrusted(address, self.shared.configuration.trustedProxies)
            }
        }
        self.planner.client = HeaderHygiene.ClientFacts(
            address: self.clientAddressText,
            trusted: self.clientTrusted,
            untrustedFields: self.shared.configuration.untrustedFields,
            secure: self.shared.configuration.tls != nil
        )
        self.run(self.machine.start())
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
        self.handle(.clientWritabilityChanged(context.channel.isWritable))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is ChannelShouldQuiesceEvent:
            // An idle keep-alive connection may have a request on the wire right now: give it a moment to arrive
            // (it is then answered with `Connection: close`) instead of racing it with a close.
            self.handle(.quiesce)
        case ChannelEvent.inputClosed:
            self.handle(.clientInputClosed)
        case let tlsEvent as TLSUserEvent:
            if case .handshakeCompleted = tlsEvent {
                // A client certificate, if one was asked for, has been verified by now: its subject is what rules
                // see.
                self.clientCertificateSubject =
                    try? context.pipeline.syncOperations.nioSSL_peerCertificate()?.subjectText
            }
            context.fireUserInboundEventTriggered(event)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.inbound = nil
        self.handle(.clientClosed)
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
        while self.machine.acceptsInput {
            var buffer = self.inbound ?? ByteBuffer()
            let event: HTTP1Parser.Event?
            do {
                event = try self.parser.next(&buffer)
            } catch {
                self.inbound = nil
                self.refuse(error)
                break
            }
            self.inbound = buffer.readableBytes > 0 ? buffer : nil
            guard let event else {
                if self.machine.phase == .idle && !self.parser.isIdle {
                    self.handle(.headStarted)
                }
                break
            }
            switch event {
            case .head(let head): self.requestHead(head)
            case .body(let body): self.handle(.requestBody(body))
            case .end(let trailers): self.handle(.requestEnd(trailers))
            }
        }
        if !self.machine.acceptsInput && (self.machine.phase == .closing || self.machine.phase == .closed) {
            self.inbound = nil
        }
        self.updateReadPausing()
        self.flushIfNeeded()
    }

    /// Routes a request and hands it to the machine: forwarded to its upstream, or answered locally.
    private func requestHead(_ head: HTTPHead) {
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
        let view = RequestView(
            head: head,
            clientAddress: clientAddress,
            clientCertificateSubject: self.clientCertificateSubject
        )
        let exchange = Exchange(
            methodString: head.methodString,
            path: self.shared.configuration.accessLog ? head.target : "",
            requestFraming: head.framing,
            started: .now()
        )
        exchange.client = clientText
        exchange.requestID = self.requestIDs.id(for: head, trusted: self.clientTrusted)
        self.exchange = exchange
        let target = self.planner.plan(head, view: view, table: table, exchange: exchange, headBuffer: &self.headBuffer)
        self.handle(
            .requestHead(
                ExchangeStateMachine.RequestStart(
                    method: head.method,
                    framing: head.framing,
                    wantsKeepAlive: head.wantsKeepAlive,
                    expectsContinue: head.expectsContinue,
                    clientMinorVersion: head.versionMinor,
                    target: target,
                    upgrade: head.upgradeWebSocket
                )))
    }

    /// Refuses a request that broke the framing rules (counted and logged here; answered by the machine).
    private func refuse(_ error: HTTPFramingError) {
        self.shared.metrics?.framingRefused(error.reason)
        self.shared.logger.debug(
            "refused request",
            metadata: ["reason": "\(error.reason.rawValue)", "detail": "\(error.detail)", "client": "\(self.clientAddressText)"]
        )
        self.inbound = nil
        self.handle(.requestRefused(error))
    }

    // MARK: Running the machine

    /// Hands `event` to the machine and carries out what it decides.
    private func handle(_ event: ExchangeStateMachine.Event) {
        let begun = self.machine.exchangesBegun
        let actions = self.machine.handle(event)
        if self.machine.exchangesBegun > begun, self.exchange == nil {
            // A request refused, or timed out, before its head was parsed: an exchange of its own.
            self.shared.metrics?.inFlight(delta: 1)
            self.exchange = Exchange(methodString: "-", path: "-", requestFraming: .none, started: .now())
        }
        self.run(actions)
    }

    /// Carries out the machine's actions, in order.
    ///
    /// Takes the list and pulls from it: `for action in actions` iterated over a copy of the list (a list is its own
    /// iterator), which copied and destroyed every action of every event.
    private func run(_ actions: consuming ExchangeStateMachine.Actions) {
        var actions = actions
        while let action = actions.next() {
            self.run(action)
        }
    }

    private func run(_ action: ExchangeStateMachine.Action) {
        switch action {
        case .setDeadline(let amount):
            self.timer?.set(after: amount)
        case .clearDeadline:
            self.timer?.clear()
        case .leaseConnection(let fresh):
            guard let exchange = self.exchange, let upstream = exchange.upstream else { return }
            if fresh {
                // A re-send on a fresh connection after a stale pooled one: the upstream's `max_retries` decides.
                guard exchange.beginRetry(on: upstream, self.shared) else {
                    self.connectionFailed(.overflow(.maxRetries))
                    return
                }
            }
            self.pool.acquire(upstream, for: self, fresh: fresh)
        case .cancelLease:
            guard let upstream = self.exchange?.upstream else { return }
            self.pool.cancel(self, upstream: upstream.name)
        case .releaseConnection:
            break  // handled where the connection is at hand (`connectionReady`)
        case .write100Continue:
            self.output.write(ByteBuffer(staticString: "HTTP/1.1 100 Continue\r\n\r\n"), to: self.context)
        case .forwardHead(let watchWrite):
            guard let exchange = self.exchange, let connection = exchange.connection else { return }
            if watchWrite, let loop = connection.context?.eventLoop {
                let promise = loop.makePromise(of: Void.self)
                let this = UnsafeTransfer(self)
                promise.futureResult.whenFailure { _ in this.value.handle(.headWriteFailed) }
                connection.write(exchange.outboundHead, promise: promise)
            } else {
                connection.write(exchange.outboundHead)
            }
        case .forwardBody(let body):
            guard let exchange = self.exchange, let connection = exchange.connection else { return }
            connection.writeRequestBody(body, framing: exchange.requestFraming)
        case .forwardEnd(let trailers):
            guard let exchange = self.exchange, let connection = exchange.connection else { return }
            connection.writeRequestEnd(trailers, framing: exchange.requestFraming)
            connection.requestComplete(true)
        case .flushUpstream:
            guard let connection = self.exchange?.connection else { return }
            connection.flush()
            if let context = self.context, !context.channel.isWritable { connection.pauseReads() }
            self.updateReadPausing()
        case .abortUpstream:
            self.exchange?.connection?.abort()
            self.exchange?.connection = nil
        case .pauseUpstreamReads:
            self.exchange?.connection?.pauseReads()
        case .resumeUpstreamReads:
            self.exchange?.connection?.resumeReads()
        case .answerHead(_, let framing, let keepAlive):
            guard let head = self.responseHead else { return }
            self.answerHead(head, framing: framing, keepAlive: keepAlive)
            if let exchange = self.exchange, let key = exchange.staleKey, let view = exchange.view {
                exchange.staleCapture = self.shared.staleAnswers.capture(
                    head, key: key, view: view, freshness: self.resources.staleFreshness)
            }
        case .answerBody(let body, let framing):
            self.answerBody(body, framing: framing)
            if let capture = self.exchange?.staleCapture, !capture.append(body) {
                self.exchange?.staleCapture = nil  // over the entry limit: not kept
            }
        case .answerEnd(let trailers, let framing):
            self.output.writeEnd(trailers, framing: framing)
            self.exchange?.connection = nil
            if let exchange = self.exchange, let key = exchange.staleKey, let capture = exchange.staleCapture {
                exchange.staleCapture = nil
                self.shared.staleAnswers.store(key, capture.answer, freshness: self.resources.staleFreshness)
            }
        case .requestStale(let status):
            self.askForStaleAnswer(status: status)
        case .answerStale(let replacing, let keepAlive):
            self.answerStale(replacing: replacing, keepAlive: keepAlive)
        case .answerLocally(let answer, let keepAlive, let headOnly):
            self.answerLocally(answer, keepAlive: keepAlive, headOnly: headOnly)
        case .flushClient:
            self.flushIfNeeded()
        case .shadow(let step):
            self.exchange?.shadow?.take(step, primaryHead: self.responseHead)
        case .reportUpstreamFailure(let failure):
            self.recorder.reportUpstreamFailure(failure, self.exchange)
        case .recordFailedAttempt(let status):
            guard let exchange = self.exchange else { return }
            self.recorder.recordFailedAttempt(exchange, status: status)
        case .fallBack(let name, let reason):
            self.fallBack(to: name, reason: reason)
        case .requestRetry:
            self.askRetryBudget()
        case .retrying(let number, let reason):
            guard let exchange = self.exchange else { return }
            exchange.retries = number
            self.recorder.reportRetry(exchange, number: number, reason: reason)
        case .reportStall(let stalled):
            self.recorder.reportStall(stalled, self.exchange)
        case .finish(let gone):
            guard let exchange = self.exchange else { return }
            self.exchange = nil
            exchange.releaseBudgets(self.shared)
            if gone { exchange.status = 499 }  // nginx's 499: the client went away before its answer
            self.recorder.record(exchange, peer: self.clientAddressText)
        case .resumeParsing:
            if self.inbound != nil, !self.processing { self.processInbound() }
        case .closeAfterFlush:
            self.closeAfterFlush()
        case .close:
            self.close()
        case .startTunnel:
            self.startTunnel()
        }
    }

    /// Asks the cache for a recent copy of the answer to stand in for a failure with `status`, and tells the machine.
    private func askForStaleAnswer(status: Int) {
        guard let exchange = self.exchange, let key = exchange.staleKey, let view = exchange.view,
            let answer = self.shared.staleAnswers.lookup(
                key, now: .now(), maxAge: exchange.staleMaxAge, value: { view.header($0) })
        else {
            self.handle(.staleMissing)
            return
        }
        exchange.staleAnswer = answer
        self.handle(.staleFound)
    }

    /// Answers with the copy found, counted in `ficus_stale_answers_total{route,upstream}` and logged.
    private func answerStale(replacing status: Int, keepAlive: Bool) {
        guard let exchange = self.exchange, let answer = exchange.staleAnswer else { return }
        exchange.staleAnswer = nil
        exchange.status = 200
        exchange.staleFor = status
        self.recorder.reportStaleAnswer(exchange, replacing: status)
        let minor = self.machine.exchange?.clientMinorVersion ?? 1
        let response = answer.response(now: .now(), keepAlive: keepAlive, clientMinorVersion: minor)
        exchange.responseBytes = Int64(response.readableBytes)
        self.output.write(response, to: self.context)
    }

    /// Answers the client with the upstream's `101` and turns both connections into a tunnel: the upstream connection
    /// leaves its pool, this handler leaves the client's pipeline, and `Tunnel`'s glue takes over both, with the bytes
    /// either side sent early passed on first.
    private func startTunnel() {
        guard let context = self.context, let exchange = self.exchange, let connection = exchange.connection,
            let head = self.responseHead
        else {
            self.exchange?.connection?.close()
            self.close()
            return
        }
        var answer = ByteBuffer()
        HeaderHygiene.writeUpgradeResponseHead(head, into: &answer)
        exchange.status = 101
        exchange.responseBytes += Int64(answer.readableBytes)
        self.output.write(answer, to: context)
        if let leftover = self.upgradeLeftover {
            exchange.responseBytes += Int64(leftover.readableBytes)
            self.output.write(leftover, to: context)
            self.upgradeLeftover = nil
        }
        guard let upstreamChannel = connection.detachForTunnel() else {
            self.close()
            return
        }
        exchange.connection = nil
        self.exchange = nil
        // The exchange ends here as far as the budgets are concerned (a tunnel is never retried).
        exchange.releaseBudgets(self.shared)
        self.recorder.recordTunnelStarted(exchange)
        let tunnel = Tunnel(
            shared: self.shared, record: Tunnel.Record(exchange, peer: self.clientAddressText), client: context.channel,
            upstream: upstreamChannel)
        // The tunnel is counted before its 101 leaves.
        self.output.flush(to: context)
        let pending = self.inbound
        self.inbound = nil
        self.timer?.cancel()
        tunnel.couple(client: context, upstream: upstreamChannel, pending: pending)
    }

    /// Asks the retry budget of the exchange's upstream for the retry the machine wants, and tells the machine.
    private func askRetryBudget() {
        // Without a retry plan (or an exchange) there is nothing to grant: `acquireRetry` says no.
        if let exchange = self.exchange, exchange.acquireRetry(self.shared) {
            self.handle(.retryGranted(jitter: self.shared.retryJitter()))
        } else {
            self.handle(.retryRefused)
        }
    }

    /// Points the exchange at its fallback upstream: its head written again for it (its rewrite, its Host when the
    /// client sent none, `X-Ficus-Fallback: 1`), counted and logged.
    private func fallBack(to name: String, reason: ExchangeStateMachine.FallbackReason) {
        guard let exchange = self.exchange, let (upstream, head) = self.planner.fallbackHead(exchange, to: name) else {
            return
        }
        self.recorder.reportFallback(exchange, to: name, reason: reason)
        exchange.upstream = upstream
        exchange.upstreamName = name
        exchange.outboundHead = head
    }

    /// Before an event that may send a request which reached its upstream to the fallback (an answer status, a
    /// failure after the request went out): the fallback's `max_retries` is asked first, and when it refuses the
    /// machine is told the fallback is gone, so the client gets the answer it would have had without one (Envoy
    /// returns the upstream's answer when a retry overflows). A request that never reached its upstream (refused,
    /// timed out connecting, refused by a breaker, no address in rotation) goes to its fallback as a first attempt,
    /// as a request sent straight to legacy is, and is not held back.
    private func admitFallbackResend(neverReceived: Bool) {
        guard let state = self.machine.exchange, let fallback = state.fallback,
            ExchangeStateMachine.mayFallBack(state, neverReceived: neverReceived),
            let exchange = self.exchange, let target = exchange.table?.upstream(named: fallback.upstream)
        else { return }
        if !exchange.beginRetry(on: target, self.shared) {
            self.machine.withdrawFallback()
        }
    }

    /// Feeds the outcome of an exchange with the address `connection` goes to into the proxy's outlier state.
    private func recordOutcome(_ outcome: OutlierState.Outcome, connection: UpstreamConnection?) {
        guard let connection, let upstream = self.exchange?.upstream, upstream.outlier != nil else { return }
        self.shared.health.record(outcome, upstream: upstream, address: connection.address, now: self.pool.eventLoop.now)
    }

    // MARK: Answers

    private func answerHead(_ head: HTTPHead, framing: HeaderHygiene.ClientFraming, keepAlive: Bool) {
        guard let exchange = self.exchange else { return }
        exchange.status = head.status
        let minor = self.machine.exchange?.clientMinorVersion ?? 1
        let written = self.output.append { out in
            HeaderHygiene.writeResponseHead(
                head, into: &out, framing: framing, keepAlive: keepAlive, clientMinorVersion: minor)
        }
        exchange.responseBytes += Int64(written)
    }

    private func answerBody(_ body: ByteBuffer, framing: HeaderHygiene.ClientFraming) {
        guard let exchange = self.exchange else { return }
        exchange.responseBytes += Int64(body.readableBytes)
        self.output.writeBody(body, framing: framing, to: self.context)
        if let context = self.context, !context.channel.isWritable {
            exchange.connection?.pauseReads()
        }
    }

    /// Answers from Ficus itself: a JSON body that names the upstream, never its addresses or a socket's error.
    private func answerLocally(_ answer: ExchangeStateMachine.LocalAnswer, keepAlive: Bool, headOnly: Bool) {
        guard let exchange = self.exchange else { return }
        exchange.status = answer.status
        let upstream = exchange.upstreamName == "-" ? nil : exchange.upstreamName
        let response = LocalResponse.json(
            status: answer.status,
            error: answer.error,
            detail: answer.detail,
            upstream: upstream,
            keepAlive: keepAlive,
            retryAfter: answer.retryAfter,
            headOnly: headOnly,
            fields: exchange.localFields
        )
        exchange.responseBytes = Int64(response.readableBytes)
        self.output.write(response, to: self.context)
    }

    private func flushIfNeeded() {
        self.output.flush(to: self.context)
    }

    private func closeAfterFlush() {
        guard let context = self.context else { return }
        self.output.writeCoalesced(to: context)
        self.timer?.cancel()
        let this = UnsafeTransfer(self)
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(self.wrapOutboundOut(ByteBuffer()), promise: promise)
        promise.futureResult.whenComplete { _ in this.value.close() }
    }

    private func close() {
        self.timer?.cancel()
        self.context?.close(promise: nil)
    }

    private func updateReadPausing() {
        var pause = false
        if let connection = self.exchange?.connection, !connection.isWritable { pause = true }
        if self.machine.pendingBytes > Self.bufferLimit { pause = true }
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
}

extension ProxyConnectionHandler: UpstreamConnectionRequester {
    func connectionReady(_ connection: UpstreamConnection, reused: Bool) {
        guard self.machine.phase == .exchange, self.machine.exchange?.isWaiting == true, let exchange = self.exchange
        else {
            // The client went away (or was answered) while the connection was being set up.
            if connection.isUsable || connection.state == .connecting { self.pool.release(connection) }
            return
        }
        exchange.connection = connection
        connection.begin(
            delegate: self,
            method: self.machine.exchange?.method ?? .other,
            responseTimeout: self.machine.exchange?.responseTimeout ?? self.shared.configuration.timeouts.responseHead
        )
        connection.expectsUpgrade = self.machine.exchange?.upgrade ?? false
        self.handle(.connectionReady(reused: reused))
        self.flushIfNeeded()
    }

    func connectionFailed(_ failure: UpstreamFailure) {
        self.handle(.connectionFailed(failure))
        self.flushIfNeeded()
    }
}

extension ProxyConnectionHandler: UpstreamExchangeDelegate {
    func upstreamResponseHead(_ head: HTTPHead) {
        self.recordOutcome(.status(head.status), connection: self.exchange?.connection)
        if let fallback = self.machine.exchange?.fallback, fallback.statuses.contains(head.status) {
            self.admitFallbackResend(neverReceived: false)
        }
        self.responseHead = head
        self.handle(.upstreamHead(head))
        self.responseHead = nil
    }

    func upstreamResponseBody(_ body: ByteBuffer) {
        self.handle(.upstreamBody(body))
    }

    func upstreamResponseEnd(_ trailers: HTTPTrailers?) {
        self.handle(.upstreamEnd(trailers))
    }

    func upstreamReadComplete() {
        self.flushIfNeeded()
    }

    func upstreamFailed(_ failure: UpstreamFailure) {
        let sawResponseBytes = self.exchange?.connection?.sawResponseBytes ?? false
        // A reused connection found closed is the keep-alive race, not the address failing.
        var staleReuse = false
        if case .closedBeforeHead = failure, self.machine.exchange?.upstream == .connected(reused: true) {
            staleReuse = true
        }
        if !sawResponseBytes, !staleReuse {
            switch failure {
            case .closedBeforeHead, .responseTimeout, .badResponse:
                self.recordOutcome(.localFailure, connection: self.exchange?.connection)
            default:
                break
            }
        }
        if let state = self.machine.exchange, !self.machine.mayRetry(state, failure, sawResponseBytes: sawResponseBytes)
        {
            // Not the re-send on a fresh connection (which asks at its lease): a fallback would send it again.
            self.admitFallbackResend(neverReceived: state.headWriteFailed)
        }
        self.exchange?.connection = nil
        self.handle(.upstreamFailed(failure, sawResponseBytes: sawResponseBytes))
        self.flushIfNeeded()
    }

    func upstreamWritabilityChanged(_ writable: Bool) {
        self.updateReadPausing()
    }

    func upstreamUpgraded(_ head: HTTPHead, leftover: ByteBuffer?) {
        let connection = self.exchange?.connection
        self.responseHead = head
        self.upgradeLeftover = leftover
        self.handle(.upstreamUpgraded)
        self.responseHead = nil
        self.upgradeLeftover = nil
        if self.machine.phase != .tunnel {
            // The machine did not want the switch (the exchange was over): the upgraded connection is nobody's.
            connection?.close()
        }
    }
}
