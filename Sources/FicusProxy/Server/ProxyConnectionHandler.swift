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

    /// What the shell keeps of the request in progress beside the machine's decisions: what metrics, the access log,
    /// the shadow recorder and the upstream connection need.
    final class Exchange {
        var methodString: String
        var path: String
        var started: NIODeadline
        var route = "-"
        var upstreamName = "-"
        /// The routing decision's sticky hash, which metric windows count distinct values of.
        var stickyHash: UInt32?
        var upstream: Upstream?
        var requestFraming: HTTPBodyFraming
        var outboundHead = ByteBuffer()
        var connection: UpstreamConnection?
        var status = 0
        var responseBytes: Int64 = 0
        var shadow: ShadowRecorder?
        /// The client as the access log names it: the peer, or the address trusted proxies reported.
        var client = "-"
        /// `X-Request-Id`: forwarded, logged and kept with shadow records.
        var requestID = "-"
        /// `UPSTREAM:REASON` once the request went to its fallback.
        var fallbackFrom: String?
        /// The route's retry plan, and the upstream whose retry budget counts the request; nil without a plan.
        var retryPlan: RetryPlan?
        var budgetUpstream: String?
        /// The request's current retry holds a slot of its upstream's budget.
        var holdsRetry = false
        /// Retries made.
        var retries = 0
        /// Where the answer is kept for `stale_if_error`, and how old a copy may stand in; nil: not eligible.
        var staleKey: String?
        var staleMaxAge: TimeAmount = .zero
        /// The answer being copied as it streams to the client.
        var staleCapture: StaleCapture?
        /// The copy found to stand in for a failure, and the status of the failure it replaced.
        var staleAnswer: StaleAnswer?
        var staleFor: Int?
        /// The request and the table it was routed with, kept to write its head again for a fallback upstream.
        var view: RequestView?
        var table: RoutingTable?
        /// Header lines a local answer carries beyond its own (a 429's rate limit fields), or nil.
        var localFields: String?
        /// Upstreams whose `max_retries` admitted a re-send of this request; released when the exchange finishes.
        var retriesHeld: [String] = []

        init(methodString: String, path: String, requestFraming: HTTPBodyFraming, started: NIODeadline) {
            self.methodString = methodString
            self.path = path
            self.requestFraming = requestFraming
            self.started = started
        }
    }

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
    /// What the forwarded heads record of the peer; the same for every request of the connection.
    private(set) var clientFacts = HeaderHygiene.ClientFacts(address: "-", trusted: false)
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
        self.clientFacts = HeaderHygiene.ClientFacts(
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
        var start = ExchangeStateMachine.RequestStart(
            method: head.method,
            framing: head.framing,
            wantsKeepAlive: head.wantsKeepAlive,
            expectsContinue: head.expectsContinue,
            clientMinorVersion: head.versionMinor,
            target: .local(
                .init(status: 404, error: "no_route", detail: "no route matches \(view.method) \(view.path)")),
            upgrade: head.upgradeWebSocket
        )
        let decision = table.decide(view)
        guard let route = decision.route else {
            self.handle(.requestHead(start))
            return
        }
        exchange.route = route
        if let limit = decision.rateLimit, let answer = self.rateLimited(limit, view: view, exchange: exchange) {
            start.target = .local(answer)
            self.handle(.requestHead(start))
            return
        }
        exchange.upstreamName = decision.upstream
        exchange.stickyHash = decision.stickyHash
        guard let upstream = table.upstream(named: decision.upstream) else {
            start.target = .local(
                .init(
                    status: 502,
                    error: "unknown_upstream",
                    detail: "route '\(route)' names upstream '\(decision.upstream)', which is not configured"
                )
            )
            self.handle(.requestHead(start))
            return
        }
        exchange.upstream = upstream
        if head.upgradeWebSocket, self.shared.tunnels.active >= self.shared.configuration.tunnels.maxActive {
            let limit = self.shared.configuration.tunnels.maxActive
            start.target = .local(
                .init(
                    status: 503,
                    error: "too_many_tunnels",
                    detail: "\(limit) WebSocket tunnels are open; try again later",
                    retryAfter: true
                )
            )
            self.handle(.requestHead(start))
            return
        }
        var connectTimeout = self.shared.configuration.timeouts.connect
        var responseTimeout = self.shared.configuration.timeouts.responseHead
        if let override = decision.timeouts.responseHeaderMilliseconds {
            responseTimeout = Self.milliseconds(override)
        }
        if let override = decision.timeouts.connectMilliseconds {
            connectTimeout = Self.milliseconds(override)
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
            upstreamName: upstream.name,
            requestID: exchange.requestID
        )
        exchange.outboundHead = self.headBuffer
        // A WebSocket handshake is never shadowed: a copy would open a second session on the other side.
        if let shadowName = decision.shadow, shadowName != decision.upstream, !head.upgradeWebSocket,
            let dispatcher = self.shared.shadow
        {
            exchange.shadow = self.shadowRecorder(
                view: view,
                route: route,
                serving: upstream.name,
                shadow: table.upstream(named: shadowName),
                decision: decision,
                table: table,
                dispatcher: dispatcher,
                requestID: exchange.requestID
            )
        }
        var fallback: ExchangeStateMachine.Fallback?
        if let name = decision.fallback, table.hasUpstream(named: name) {
            fallback = .init(upstream: name, statuses: decision.fallbackStatuses)
            exchange.view = view
            exchange.table = table
        }
        var retry: ExchangeStateMachine.Retry?
        if let plan = decision.retry {
            retry = .init(
                onConnectFailure: plan.onConnectFailure,
                onReset: plan.onReset,
                statuses: plan.statuses,
                attempts: plan.attempts,
                backoffBase: .milliseconds(Int64(plan.backoffBaseMilliseconds)),
                backoffMax: .milliseconds(Int64(plan.backoffMaxMilliseconds))
            )
            if let perTry = plan.perTryTimeoutMilliseconds {
                responseTimeout = Self.milliseconds(perTry)
            }
            exchange.retryPlan = plan
            exchange.budgetUpstream = upstream.name
            self.shared.retryBudget.requestStarted(upstream.name)
        }
        if let maxAge = decision.staleIfErrorMilliseconds, head.method == .get, view.header("authorization") == nil {
            exchange.staleKey = StaleAnswers.key(route: route, host: view.host ?? "", target: head.target)
            exchange.staleMaxAge = .milliseconds(Int64(maxAge))
            exchange.view = view
            exchange.table = table
        }
        start.target = .upstream(
            name: upstream.name, connectTimeout: connectTimeout, responseTimeout: responseTimeout, fallback: fallback,
            retry: retry, staleIfError: exchange.staleKey != nil)
        self.handle(.requestHead(start))
    }

    /// Takes a token from the request's bucket of its route's rate limit; the answer when the request is limited and
    /// the limit enforces, nil when it goes on (a token was taken, or the limit only observes).
    ///
    /// Decided before an upstream is leased, in the shell: the exchange machine sees a local answer like any other.
    /// The answer names no upstream (none was involved), so it stays out of every upstream's metric windows.
    private func rateLimited(
        _ policy: RateLimitPolicy, view: RequestView, exchange: Exchange
    ) -> ExchangeStateMachine.LocalAnswer? {
        let verdict = self.shared.rateLimiter.check(
            policy, key: policy.bucketKey(view), now: NIODeadline.now().uptimeNanoseconds)
        guard !verdict.allowed else { return nil }
        self.shared.metrics?.rateLimited(route: policy.route, mode: policy.observes ? "observe" : "enforce")
        guard !policy.observes else { return nil }
        exchange.localFields = RateLimitFields.lines(policy, verdict)
        let (quota, window) = RateLimitFields.quota(policy)
        return ExchangeStateMachine.LocalAnswer(
            status: 429,
            error: "rate_limited",
            detail: "route '\(policy.route)' allows \(quota) requests per \(window) s (\(policy.description)); "
                + "retry in \(max(1, verdict.resetSeconds)) s"
        )
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

    /// A route's timeout as an amount, clamped to 1 ms ... 24 h: the store is checked input too.
    private static func milliseconds(_ value: Int) -> TimeAmount {
        .milliseconds(Int64(min(max(value, 1), RouteTimeouts.maxMilliseconds)))
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
    private func run(_ actions: ExchangeStateMachine.Actions) {
        for action in actions {
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
                guard self.shared.health.beginRetry(upstream) else {
                    self.connectionFailed(.overflow(.maxRetries))
                    return
                }
                exchange.retriesHeld.append(upstream.name)
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
            Self.writeBody(body, framing: exchange.requestFraming, to: connection)
        case .forwardEnd(let trailers):
            guard let exchange = self.exchange, let connection = exchange.connection else { return }
            Self.writeEnd(trailers, framing: exchange.requestFraming, to: connection)
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
            if let exchange = self.exchange, exchange.staleKey != nil { self.startStaleCapture(head, exchange) }
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
                self.shared.staleAnswers.store(key, capture.answer)
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
            self.shadow(step)
        case .reportUpstreamFailure(let failure):
            self.shared.logger.warning(
                "upstream failed",
                metadata: [
                    "upstream": "\(self.exchange?.upstreamName ?? "-")", "failure": "\(failure)",
                    "route": "\(self.exchange?.route ?? "-")",
                ]
            )
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
            self.shared.metrics?.retry(route: exchange.route, upstream: exchange.upstreamName, reason: reason.rawValue)
            self.shared.logger.info(
                "retry",
                metadata: [
                    "route": "\(exchange.route)", "upstream": "\(exchange.upstreamName)", "retry": "\(number)",
                    "reason": "\(reason.rawValue)", "request_id": "\(exchange.requestID)",
                ]
            )
        case .reportStall(let stalled):
            self.shared.logger.warning(
                "stream idle timeout",
                metadata: [
                    "route": "\(self.exchange?.route ?? "-")", "upstream": "\(self.exchange?.upstreamName ?? "-")",
                    "stalled": "\(stalled)", "client": "\(self.exchange?.client ?? "-")",
                ]
            )
        case .finish(let gone):
            guard let exchange = self.exchange else { return }
            self.exchange = nil
            if let upstream = exchange.budgetUpstream {
                self.shared.retryBudget.requestFinished(upstream, heldRetry: exchange.holdsRetry)
            }
            for upstream in exchange.retriesHeld { self.shared.health.endRetry(upstream: upstream) }
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

    /// Starts copying an answer for `stale_if_error` when it may be kept (`StaleAnswer.mayKeep`).
    /// A copy younger than a second is not replaced (`StaleAnswers.refreshAfter`).
    private func startStaleCapture(_ head: HTTPHead, _ exchange: Exchange) {
        // The fresh-copy question first: under load it is the usual answer, and cheaper than reading the fields.
        guard let view = exchange.view, let key = exchange.staleKey,
            !self.shared.staleAnswers.hasFreshCopy(key, now: .now(), value: { view.header($0) }),
            StaleAnswer.mayKeep(head)
        else { return }
        let vary = StaleAnswer.varyNames(head).map { ($0, view.header($0)) }
        exchange.staleCapture = StaleCapture(
            answer: StaleAnswer(
                reason: head.string(head.reasonRange), fields: StaleAnswer.keptFields(head), body: ByteBuffer(),
                stored: .now(), vary: vary),
            limit: self.shared.staleAnswers.limits.maxEntryBytes)
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
        self.shared.metrics?.staleAnswer(route: exchange.route, upstream: exchange.upstreamName)
        self.shared.logger.notice(
            "stale answer",
            metadata: [
                "route": "\(exchange.route)", "upstream": "\(exchange.upstreamName)", "replacing": "\(status)",
                "request_id": "\(exchange.requestID)",
            ]
        )
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
        if let upstream = exchange.budgetUpstream {
            self.shared.retryBudget.requestFinished(upstream, heldRetry: exchange.holdsRetry)
        }
        for upstream in exchange.retriesHeld { self.shared.health.endRetry(upstream: upstream) }
        self.recorder.recordTunnelStarted(exchange)
        let tunnel = Tunnel(
            shared: self.shared,
            record: Tunnel.Record(
                route: exchange.route,
                upstream: exchange.upstreamName,
                method: exchange.methodString,
                path: exchange.path,
                client: exchange.client == "-" ? self.clientAddressText : exchange.client,
                requestID: exchange.requestID,
                started: exchange.started,
                bytesToClient: exchange.responseBytes
            ),
            client: context.channel,
            upstream: upstreamChannel
        )
        // The tunnel is counted before its 101 leaves.
        self.output.flush(to: context)
        guard let clientGlue = tunnel.clientGlue, let upstreamGlue = tunnel.upstreamGlue else { return }
        let pending = self.inbound
        self.inbound = nil
        self.timer?.cancel()
        do {
            try upstreamChannel.pipeline.syncOperations.addHandler(upstreamGlue)
            try context.pipeline.syncOperations.addHandler(clientGlue)
        } catch {
            tunnel.closed(.client)
            return
        }
        // Bytes the client sent behind its handshake (its first frames) go first.
        if let pending, pending.readableBytes > 0 {
            tunnel.bytesRead(pending.readableBytes, from: .client)
            upstreamGlue.write(pending)
            upstreamGlue.flush()
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        clientGlue.startReading()
        upstreamGlue.startReading()
    }

    /// Asks the retry budget of the exchange's upstream for the retry the machine wants, and tells the machine.
    private func askRetryBudget() {
        guard let exchange = self.exchange, let plan = exchange.retryPlan, let upstream = exchange.budgetUpstream else {
            self.handle(.retryRefused)
            return
        }
        if exchange.holdsRetry {
            // The retry before this one has ended: its slot is free, and this one needs a slot of its own.
            self.shared.retryBudget.retryEnded(upstream)
            exchange.holdsRetry = false
        }
        var granted = self.shared.retryBudget.tryAcquire(
            upstream, percent: plan.budgetPercent, minConcurrent: plan.budgetMinConcurrent)
        // The upstream's `max_retries` breaker has its say too (it counts its own overflow).
        if granted, let target = exchange.upstream {
            if self.shared.health.beginRetry(target) {
                exchange.retriesHeld.append(target.name)
            } else {
                self.shared.retryBudget.retryEnded(upstream)
                granted = false
            }
        }
        if granted {
            exchange.holdsRetry = true
            self.handle(.retryGranted(jitter: self.shared.retryJitter()))
        } else {
            self.shared.metrics?.retryRefused(route: exchange.route, upstream: upstream)
            self.handle(.retryRefused)
        }
    }

    /// Points the exchange at its fallback upstream: its head written again for it (its rewrite, its Host when the
    /// client sent none, `X-Ficus-Fallback: 1`), counted and logged.
    private func fallBack(to name: String, reason: ExchangeStateMachine.FallbackReason) {
        guard let exchange = self.exchange, let view = exchange.view, let table = exchange.table,
            let upstream = table.upstream(named: name)
        else { return }
        let from = exchange.upstreamName
        self.shared.metrics?.fallback(route: exchange.route, from: from, reason: reason.rawValue)
        self.shared.logger.notice(
            "fallback",
            metadata: [
                "route": "\(exchange.route)", "from": "\(from)", "to": "\(name)", "reason": "\(reason.rawValue)",
                "request_id": "\(exchange.requestID)",
            ]
        )
        exchange.fallbackFrom = "\(from):\(reason.rawValue)"
        exchange.upstream = upstream
        exchange.upstreamName = name
        var head = ByteBuffer()
        HeaderHygiene.writeRequestHead(
            view.head,
            into: &head,
            client: self.clientFacts,
            viaName: self.shared.configuration.viaName,
            edits: HeaderHygiene.RequestEdits.forRequest(
                table.rewrite(route: exchange.route, upstream: name), view: view),
            upstreamName: name,
            requestID: exchange.requestID,
            fallback: true
        )
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
        if self.shared.health.beginRetry(target) {
            exchange.retriesHeld.append(target.name)
        } else {
            self.machine.withdrawFallback()
        }
    }

    /// Feeds the outcome of an exchange with the address `connection` goes to into the proxy's outlier state.
    private func recordOutcome(_ outcome: OutlierState.Outcome, connection: UpstreamConnection?) {
        guard let connection, let upstream = self.exchange?.upstream, upstream.outlier != nil else { return }
        self.shared.health.record(outcome, upstream: upstream, address: connection.address, now: self.pool.eventLoop.now)
    }

    private func shadow(_ step: ExchangeStateMachine.ShadowStep) {
        guard let shadow = self.exchange?.shadow else { return }
        switch step {
        case .requestBody(let body): shadow.requestBody(body)
        case .requestComplete: shadow.requestComplete()
        case .primarySent: shadow.primarySent()
        case .primaryHead:
            if let head = self.responseHead { shadow.primaryHead(head) }
        case .primaryBody(let body): shadow.primaryBody(body)
        case .primaryEnd: shadow.primaryEnd()
        case .abandon(let reason): shadow.abandon(reason: reason)
        }
    }

    // MARK: Upstream writes

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
