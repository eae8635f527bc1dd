import NIOCore

/// What one client connection does next, as a pure function of what happened: the decisions of a proxied HTTP/1.1
/// exchange without a channel, a socket or a clock in sight.
///
/// `ProxyConnectionHandler` turns NIO events into `Event`s and carries out the `Action`s returned, in order, in one
/// `run(_:)` (the shape of async-http-client's `HTTPRequestStateMachine` and swift-nio's `HTTPServerPipelineHandler`).
/// Everything here can be driven by a table of events in a test; everything that touches bytes on the wire, the pool,
/// metrics or logs is an action the handler performs. The request in progress is one `Exchange` value; its phases
/// (request streaming or ended, upstream waited for, connected or not used, answer not started, streaming or
/// complete) replace the handler's former eighteen flags. A refused or timed-out request is an exchange like any
/// other, not a fake one.
struct ExchangeStateMachine {
    /// Where the connection is.
    enum Phase: Equatable {
        /// Between requests: the keep-alive (or drain grace) deadline runs.
        case idle
        /// Part of a request head has arrived: the head deadline runs.
        case readingHead
        /// A request is being answered (`exchange` is set).
        case exchange
        /// The last bytes are being flushed; the connection closes next.
        case closing
        case closed
        /// The upstream accepted a WebSocket handshake: the connection is a byte tunnel now (`Tunnel`), and this
        /// machine is done with it.
        case tunnel
    }

    /// The request side of an exchange.
    enum RequestPhase {
        case streaming
        /// The request has ended, with its trailers (nil: none).
        case ended(HTTPTrailers?)
    }

    /// The upstream side of an exchange.
    enum UpstreamPhase: Equatable {
        /// No upstream: the answer is Ficus's own, or the upstream is done with (failed, answered, aborted).
        case none
        /// Waiting for a pooled connection (fresh: asked for a new connection, for a re-send).
        case waiting(fresh: Bool)
        /// A connection carries the exchange (reused: it served an exchange before).
        case connected(reused: Bool)
        /// A retry waits out its back-off; the deadline leases a connection when it is over.
        case backingOff
    }

    /// The answer's side of an exchange.
    enum ResponsePhase {
        case notStarted
        /// The answer's head went to the client, framed this way.
        case streaming(HeaderHygiene.ClientFraming)
        case complete
    }

    /// How a request is to be answered, decided by the handler's routing before the machine sees it.
    enum Target: Equatable {
        /// Forward to the routed upstream (named in answers about it) with these deadlines, retried by the route's
        /// policy and falling back to another when it fails before answering (docs/PROXY.md, Retries and Fallback).
        case upstream(
            name: String, connectTimeout: TimeAmount, responseTimeout: TimeAmount, fallback: Fallback? = nil,
            retry: Retry? = nil, staleIfError: Bool = false)
        /// Answer locally (no route, an unknown upstream).
        case local(LocalAnswer)
    }

    /// Where a request goes when its upstream fails before answering, and which of its statuses count as failing.
    struct Fallback: Equatable {
        var upstream: String
        var statuses: [Int]
    }

    /// A route's retry policy as the machine applies it (`RetryPlan` in time amounts).
    struct Retry: Equatable {
        var onConnectFailure: Bool
        var onReset: Bool
        /// Answer statuses retried; a response timeout counts as 504.
        var statuses: [Int]
        /// Retries after the first attempt.
        var attempts: Int
        var backoffBase: TimeAmount
        var backoffMax: TimeAmount

        /// The full-jitter back-off before retry `number` (1-based): `jitter` (0 ..< 1) times the ceiling, which
        /// starts at `backoffBase` and doubles per retry up to `backoffMax` (AWS's "full jitter", as Envoy does).
        func backoff(retry number: Int, jitter: Double) -> TimeAmount {
            let doublings = Int64(min(max(number - 1, 0), 30))
            let (scaled, overflow) = self.backoffBase.nanoseconds.multipliedReportingOverflow(by: 1 << doublings)
            let ceiling = overflow ? self.backoffMax.nanoseconds : min(scaled, self.backoffMax.nanoseconds)
            let fraction = jitter.isFinite ? min(max(jitter, 0), 1) : 0
            return .nanoseconds(Int64(Double(ceiling) * fraction))
        }

        /// Whether `failure` is one of the conditions retried.
        func covers(_ failure: UpstreamFailure) -> Bool {
            switch failure {
            case .connectFailed, .connectTimeout: self.onConnectFailure
            case .closedBeforeHead, .badResponse: self.onReset
            case .responseTimeout: self.statuses.contains(504)
            case .poolExhausted, .overflow, .noHealthyAddress, .closedAfterHead: false
            }
        }
    }

    /// A retry asked for and not yet granted or refused: what to do without it.
    enum PendingRetry {
        /// The attempt failed so (`neverReceived`: the upstream did not get the request).
        case failure(UpstreamFailure, neverReceived: Bool)
        /// The upstream answered with this head, whose status is retried; its connection is still open.
        case answer(HTTPHead)
    }

    /// Why a request fell back or was retried: the failure of the attempt before.
    enum FallbackReason: String, Equatable {
        case connectFailed = "connect_failure"
        case connectTimeout = "connect_timeout"
        case overloaded
        case reset
        case timeout
        case badResponse = "bad_response"
        case status
        /// Every address of the upstream was out of rotation (outlier ejection).
        case noHealthyAddress = "no_healthy_address"
    }

    /// A JSON answer from Ficus itself.
    struct LocalAnswer: Equatable {
        var status: Int
        var error: String
        var detail: String
        var retryAfter = false
    }

    /// A new request, as the handler's parser and router saw it.
    struct RequestStart: Equatable {
        var method: HTTPMethodKind
        var framing: HTTPBodyFraming
        var wantsKeepAlive: Bool
        var expectsContinue: Bool
        var clientMinorVersion: UInt8
        var target: Target
        /// A WebSocket handshake (`HTTPHead.upgradeWebSocket`): a `101` answer turns the connection into a tunnel.
        var upgrade = false
    }

    /// The request in progress.
    ///
    /// A class, so that every event updates the one record in place: as a struct, each event copied it out and back
    /// (a few hundred bytes and a retain per field), which the profile showed as a share of the proxy's time.
    final class Exchange {
        var method: HTTPMethodKind
        var framing: HTTPBodyFraming
        var clientMinorVersion: UInt8
        var keepAlive: Bool

        init(method: HTTPMethodKind, framing: HTTPBodyFraming, clientMinorVersion: UInt8, keepAlive: Bool) {
            self.method = method
            self.framing = framing
            self.clientMinorVersion = clientMinorVersion
            self.keepAlive = keepAlive
        }
        /// The routed upstream's name, for answers about it; empty for local answers.
        var upstreamName = ""
        /// Where the request goes if its upstream fails before answering; nil once it fell back (once only).
        var fallback: Fallback?
        /// The route's retry policy; nil without one, and once the request fell back.
        var retry: Retry?
        /// Retries made so far.
        var retries = 0
        /// A retry asked of the shell's budget: the shell answers `retryGranted` or `retryRefused` at once.
        var pendingRetry: PendingRetry?
        /// A recent copy of the answer may stand in for a failure (the route's `stale_if_error`, a GET).
        var staleIfError = false
        /// A copy asked of the shell's cache: the shell answers `staleFound` or `staleMissing` at once.
        var pendingStale: PendingRetry?
        /// The cache was asked once already: a failure now is answered as it is.
        var staleAsked = false
        var request: RequestPhase = .streaming
        var upstream: UpstreamPhase = .none
        var response: ResponsePhase = .notStarted
        /// The answer is Ficus's own (nothing more of the request is forwarded).
        var local = false
        /// A WebSocket handshake, which a `101` answer ends by becoming a tunnel.
        var upgrade = false
        var connectTimeout: TimeAmount = .seconds(5)
        var responseTimeout: TimeAmount = .seconds(30)
        var retried = false
        var headWriteFailed = false
        /// Request body bytes written to the current connection.
        var bodyForwarded: Int64 = 0
        /// Request body waiting for a connection.
        var pending: [ByteBuffer] = []
        var pendingBytes = 0
        var pendingEnd: HTTPTrailers?? = nil
        /// The body received so far while it is at most `retainLimit` bytes (nil past it): what a re-send carries.
        var retained: [ByteBuffer]? = []
        var retainedBytes = 0

        var requestEnded: Bool {
            if case .ended = self.request { return true }
            return false
        }

        var responseStarted: Bool {
            if case .notStarted = self.response { return false }
            return true
        }

        var responseComplete: Bool {
            if case .complete = self.response { return true }
            return false
        }

        var isConnected: Bool {
            if case .connected = self.upstream { return true }
            return false
        }

        var isWaiting: Bool {
            if case .waiting = self.upstream { return true }
            return false
        }

        /// Bytes move in either direction (a body streams, or an answer does): the stream idle deadline applies.
        var isStreaming: Bool { self.isConnected && (self.responseStarted || !self.requestEnded) }
    }

    /// What the shadow recorder of the exchange is told.
    enum ShadowStep {
        case requestBody(ByteBuffer)
        case requestComplete
        case primarySent
        /// The answer's head (the one the event brought: the handler keeps it, so that actions stay small).
        case primaryHead
        case primaryBody(ByteBuffer)
        case primaryEnd
        case abandon(String)
    }

    /// Something happened.
    enum Event {
        /// Part of a head arrived on an idle connection.
        case headStarted
        case requestHead(RequestStart)
        case requestBody(ByteBuffer)
        case requestEnd(HTTPTrailers?)
        /// The request broke the framing rules (or the client cut it short: `.truncated`).
        case requestRefused(HTTPFramingError)
        /// The client closed its sending side.
        case clientInputClosed
        /// The client connection became writable again (true) or stopped being writable (false).
        case clientWritabilityChanged(Bool)
        /// The client connection is gone.
        case clientClosed
        /// Graceful shutdown began.
        case quiesce
        /// The connection's deadline passed; `upstreamWritable` tells a stalled upstream from a stalled client.
        case deadline(upstreamWritable: Bool)
        case connectionReady(reused: Bool)
        case connectionFailed(UpstreamFailure)
        /// The write of the forwarded head (watched on a reused connection) failed: nothing reached the upstream.
        case headWriteFailed
        /// The retry budget allows the retry asked for (`requestRetry`); `jitter` (0 ..< 1) scales its back-off.
        case retryGranted(jitter: Double)
        /// The retry budget is spent: the request goes on as if it had no retry policy.
        case retryRefused
        /// The cache has a recent copy of the answer (`requestStale`): it stands in for the failure.
        case staleFound
        /// The cache has no copy: the failure is answered as it is.
        case staleMissing
        case upstreamHead(HTTPHead)
        case upstreamBody(ByteBuffer)
        case upstreamEnd(HTTPTrailers?)
        /// The upstream connection failed; `sawResponseBytes`: it had sent something of an answer.
        case upstreamFailed(UpstreamFailure, sawResponseBytes: Bool)
        /// The upstream answered a WebSocket handshake with `101`.
        case upstreamUpgraded
    }

    /// Something for the handler to do.
    enum Action {
        case setDeadline(TimeAmount)
        case clearDeadline
        /// Ask the pool for a connection to the exchange's upstream.
        case leaseConnection(fresh: Bool)
        /// Stop waiting for one.
        case cancelLease
        /// A connection arrived for an exchange that no longer wants it.
        case releaseConnection
        case write100Continue
        /// Write the forwarded head to the connection; `watchWrite`: report a failed write (`headWriteFailed`).
        case forwardHead(watchWrite: Bool)
        case forwardBody(ByteBuffer)
        /// Write the request's end (a last chunk and trailers when chunked) and mark the request complete.
        case forwardEnd(HTTPTrailers?)
        case flushUpstream
        case abortUpstream
        case pauseUpstreamReads
        case resumeUpstreamReads
        /// Write the answer's head that the event brought (the handler keeps it; its status for descriptions).
        case answerHead(status: Int, HeaderHygiene.ClientFraming, keepAlive: Bool)
        case answerBody(ByteBuffer, HeaderHygiene.ClientFraming)
        case answerEnd(HTTPTrailers?, HeaderHygiene.ClientFraming)
        case answerLocally(LocalAnswer, keepAlive: Bool, headOnly: Bool)
        case flushClient
        case shadow(ShadowStep)
        /// Log an upstream failure before it is answered.
        case reportUpstreamFailure(UpstreamFailure)
        /// The upstream failed before answering, as a client would have seen it (`status`): counted against it in
        /// metrics and metric windows, although the request goes on to the fallback.
        case recordFailedAttempt(status: Int)
        /// Send the request to the fallback upstream instead: a new head for it (marked `X-Ficus-Fallback: 1`),
        /// counted in `ficus_fallbacks_total{route,from,reason}`; a connection is leased next.
        case fallBack(to: String, reason: FallbackReason)
        /// The route's policy would retry the request: ask the retry budget, and answer with `retryGranted` or
        /// `retryRefused` at once, before any other event. Only a client flush ever follows it in one event.
        case requestRetry(reason: FallbackReason)
        /// Retry `number` (1-based) of the request begins (counted in `ficus_retries_total`, logged).
        case retrying(number: Int, reason: FallbackReason)
        /// The request failed with `status` after its retries and fallback: ask the cache for a recent copy, and answer
        /// with `staleFound` or `staleMissing` at once, before any other event. Only a client flush ever follows it.
        case requestStale(status: Int)
        /// Answer with the copy the cache found, in place of a failure with status `replacing` (which the upstream's
        /// metrics record): `Age`, `X-Ficus-Stale: 1`.
        case answerStale(replacing: Int, keepAlive: Bool)
        /// Log a stream that made no progress; `stalled` names what was waited for.
        case reportStall(String)
        /// The exchange is over: record it (`gone`: the client left before its answer was complete).
        case finish(gone: Bool)
        /// The connection is idle again: parse what the client already sent, if anything.
        case resumeParsing
        case closeAfterFlush
        case close
        /// Write the `101` the event brought and turn both connections into a tunnel (the machine is done).
        case startTunnel
    }

    /// The actions of one event, in order, held inline: handling a body chunk allocates nothing.
    struct Actions: Sequence, IteratorProtocol {
        private var slots: (Action?, Action?, Action?, Action?, Action?, Action?)
        private var extra: [Action] = []
        private(set) var count = 0
        private var position = 0

        init() {
            self.slots = (nil, nil, nil, nil, nil, nil)
        }

        mutating func append(_ action: Action) {
            switch self.count {
            case 0: self.slots.0 = action
            case 1: self.slots.1 = action
            case 2: self.slots.2 = action
            case 3: self.slots.3 = action
            case 4: self.slots.4 = action
            case 5: self.slots.5 = action
            default: self.extra.append(action)
            }
            self.count += 1
        }

        /// The next action, moved out of the list (no copy of its payload is made and destroyed).
        mutating func next() -> Action? {
            guard self.position < self.count else { return nil }
            defer { self.position += 1 }
            switch self.position {
            case 0: return self.slots.0.take()
            case 1: return self.slots.1.take()
            case 2: return self.slots.2.take()
            case 3: return self.slots.3.take()
            case 4: return self.slots.4.take()
            case 5: return self.slots.5.take()
            default: return self.extra[self.position - 6]
            }
        }

        /// The actions as an array, for tests and descriptions.
        var all: [Action] { Array(self) }
    }

    /// The deadlines the machine arms.
    struct Timeouts: Equatable {
        var clientHeader: TimeAmount
        var clientIdle: TimeAmount
        /// How long an idle connection stays open once draining starts (a request on the wire is answered).
        var drainGrace: TimeAmount = .milliseconds(500)
    }

    /// Request bodies up to this size are kept for a re-send on a fresh connection.
    static let retainLimit = 64 * 1024

    private(set) var phase: Phase = .idle
    private(set) var exchange: Exchange?
    /// Exchanges begun on this connection, requests and refusals alike: the handler keeps one record per exchange.
    private(set) var exchangesBegun = 0
    private(set) var draining = false
    private(set) var inputClosed = false
    let timeouts: Timeouts

    init(timeouts: Timeouts) {
        self.timeouts = timeouts
    }

    /// The request in progress may not go to its fallback after all (its `max_retries` breaker refused the re-send):
    /// a failure is then answered as without a fallback. Asked by the handler before an event that may fall back.
    mutating func withdrawFallback() {
        self.exchange?.fallback = nil
    }

    /// The connection is open: the keep-alive deadline starts.
    mutating func start() -> Actions {
        var actions = Actions()
        self.enterIdle(&actions)
        return actions
    }

    /// Whether the parser may produce the next event: not while closing, and not past the end of the current
    /// request (bytes a client pipelines wait, unparsed, until its answer is complete).
    var acceptsInput: Bool {
        switch self.phase {
        case .closing, .closed, .tunnel: return false
        case .exchange: return !(self.exchange?.requestEnded ?? false)
        case .idle, .readingHead: return true
        }
    }

    /// Request body bytes waiting for a connection.
    var pendingBytes: Int { self.exchange?.pendingBytes ?? 0 }

    mutating func handle(_ event: Event) -> Actions {
        var actions = Actions()
        switch event {
        case .headStarted:
            if self.phase == .idle {
                self.phase = .readingHead
                actions.append(.setDeadline(self.timeouts.clientHeader))
            }
        case .requestHead(let start):
            self.requestHead(start, &actions)
        case .requestBody(let body):
            self.requestBody(body, &actions)
        case .requestEnd(let trailers):
            self.requestEnd(trailers, &actions)
        case .requestRefused(let error):
            self.refuse(error, &actions)
        case .clientInputClosed:
            self.inputClosed = true
            switch self.phase {
            case .idle, .readingHead:
                self.close(&actions)
            case .exchange where !(self.exchange?.requestEnded ?? true):
                self.refuse(HTTPFramingError(.truncated, "the client closed its side in the middle of a request"), &actions)
            case .exchange, .closing, .closed, .tunnel:
                break
            }
        case .clientWritabilityChanged(let writable):
            guard let exchange = self.exchange, exchange.isConnected else { break }
            if writable {
                // The client took what was written: progress, even if the upstream has nothing new yet.
                if exchange.isStreaming { actions.append(.setDeadline(self.timeouts.clientIdle)) }
                actions.append(.resumeUpstreamReads)
            } else {
                actions.append(.pauseUpstreamReads)
            }
        case .clientClosed:
            self.clientClosed(&actions)
        case .quiesce:
            self.draining = true
            if self.phase == .idle { actions.append(.setDeadline(self.timeouts.drainGrace)) }
        case .deadline(let upstreamWritable):
            self.deadline(upstreamWritable: upstreamWritable, &actions)
        case .connectionReady(let reused):
            self.connectionReady(reused: reused, &actions)
        case .connectionFailed(let failure):
            guard self.phase == .exchange, let exchange = self.exchange, !exchange.responseStarted,
                exchange.isWaiting
            else { break }
            exchange.upstream = .none
            // The upstream never received the request: any method may be retried or go to the fallback.
            self.failedBeforeAnswer(failure, neverReceived: true, &actions)
        case .headWriteFailed:
            self.exchange?.headWriteFailed = true
        case .retryGranted(let jitter):
            self.retryGranted(jitter: jitter, &actions)
        case .retryRefused:
            self.retryRefused(&actions)
        case .staleFound:
            self.staleFound(&actions)
        case .staleMissing:
            self.staleMissing(&actions)
        case .upstreamHead(let head):
            self.upstreamHead(head, &actions)
        case .upstreamBody(let body):
            guard let exchange = self.exchange, case .streaming(let framing) = exchange.response else { break }
            actions.append(.setDeadline(self.timeouts.clientIdle))
            actions.append(.shadow(.primaryBody(body)))
            actions.append(.answerBody(body, framing))
        case .upstreamEnd(let trailers):
            self.upstreamEnd(trailers, &actions)
        case .upstreamFailed(let failure, let sawResponseBytes):
            self.upstreamFailed(failure, sawResponseBytes: sawResponseBytes, &actions)
        case .upstreamUpgraded:
            // Only a handshake whose request has ended and that has no answer yet can switch; anything else leaves
            // the machine as it was (the shell then closes the upgraded connection).
            guard self.phase == .exchange, let exchange = self.exchange, exchange.upgrade, exchange.isConnected,
                exchange.requestEnded, !exchange.responseStarted
            else { break }
            self.phase = .tunnel
            exchange.upstream = .none
            exchange.response = .complete
            actions.append(.clearDeadline)
            actions.append(.startTunnel)
        }
        return actions
    }

    // MARK: The request

    private mutating func requestHead(_ start: RequestStart, _ actions: inout Actions) {
        guard self.phase == .idle || self.phase == .readingHead else { return }
        self.phase = .exchange
        self.exchangesBegun += 1
        let exchange = Exchange(
            method: start.method,
            framing: start.framing,
            clientMinorVersion: start.clientMinorVersion,
            keepAlive: start.wantsKeepAlive && !self.draining
        )
        exchange.upgrade = start.upgrade
        actions.append(.clearDeadline)
        switch start.target {
        case .local(let answer):
            self.exchange = exchange
            self.answerLocally(answer, &actions)
        case .upstream(let name, let connectTimeout, let responseTimeout, let fallback, let retry, let staleIfError):
            exchange.upstreamName = name
            exchange.fallback = fallback
            exchange.retry = retry
            exchange.staleIfError = staleIfError
            exchange.connectTimeout = connectTimeout
            exchange.responseTimeout = responseTimeout
            exchange.upstream = .waiting(fresh: false)
            self.exchange = exchange
            if start.expectsContinue && start.framing != .none {
                actions.append(.write100Continue)
            }
            actions.append(.setDeadline(connectTimeout))
            actions.append(.leaseConnection(fresh: false))
        }
    }

    private mutating func requestBody(_ body: ByteBuffer, _ actions: inout Actions) {
        guard let exchange = self.exchange else { return }
        // The answer is already given: the rest of the body is dropped.
        if exchange.local || exchange.responseComplete { return }
        actions.append(.shadow(.requestBody(body)))
        if exchange.retained != nil {
            exchange.retainedBytes += body.readableBytes
            if exchange.retainedBytes <= Self.retainLimit {
                exchange.retained?.append(body)
            } else {
                exchange.retained = nil
            }
        }
        if exchange.isConnected {
            actions.append(.setDeadline(self.timeouts.clientIdle))
            actions.append(.forwardBody(body))
            exchange.bodyForwarded += Int64(body.readableBytes)
        } else {
            exchange.pending.append(body)
            exchange.pendingBytes += body.readableBytes
        }
        self.exchange = exchange
    }

    private mutating func requestEnd(_ trailers: HTTPTrailers?, _ actions: inout Actions) {
        guard let exchange = self.exchange else { return }
        exchange.request = .ended(trailers)
        actions.append(.shadow(.requestComplete))
        if exchange.isConnected, !exchange.responseComplete, !exchange.local {
            actions.append(.forwardEnd(trailers))
            actions.append(.flushUpstream)
            // From here until the answer's head, the upstream's response timeout bounds the exchange.
            if !exchange.responseStarted { actions.append(.clearDeadline) }
        } else if !exchange.isConnected, !exchange.local {
            exchange.pendingEnd = .some(trailers)
        }
        self.exchange = exchange
        self.finishIfDone(&actions)
    }

    /// Refuses a request that broke the framing rules: status, `Connection: close`, close; nothing forwarded. A
    /// request cut short by its client (`.truncated`) gets no answer.
    private mutating func refuse(_ error: HTTPFramingError, _ actions: inout Actions) {
        guard self.phase != .closing, self.phase != .closed else { return }
        if let exchange = self.exchange {
            if exchange.isConnected { actions.append(.abortUpstream) }
            if exchange.isWaiting { actions.append(.cancelLease) }
            exchange.upstream = .none
            if exchange.responseStarted {
                self.exchange = exchange
                self.close(&actions)
                return
            }
            exchange.keepAlive = false
            exchange.request = .ended(nil)
            self.exchange = exchange
        } else {
            self.phase = .exchange
            self.exchangesBegun += 1
            let refused = Exchange(method: .other, framing: .none, clientMinorVersion: 1, keepAlive: false)
            refused.request = .ended(nil)
            self.exchange = refused
            actions.append(.clearDeadline)
        }
        guard error.reason != .truncated else {
            self.finish(&actions)
            return
        }
        self.answerLocally(LocalAnswer(status: error.status, error: error.reason.rawValue, detail: error.detail), &actions)
    }

    // MARK: The upstream connection

    private mutating func connectionReady(reused: Bool, _ actions: inout Actions) {
        guard self.phase == .exchange, let exchange = self.exchange, exchange.isWaiting else {
            // The client went away (or was answered) while the connection was being set up.
            actions.append(.releaseConnection)
            return
        }
        // While the request body streams, the stream idle deadline bounds it; once the request is complete, the
        // upstream's response timeout does.
        actions.append(exchange.requestEnded ? .clearDeadline : .setDeadline(self.timeouts.clientIdle))
        exchange.upstream = .connected(reused: reused)
        // Knowing that nothing of a non-idempotent request was written is what allows re-sending it.
        actions.append(.forwardHead(watchWrite: reused && !exchange.method.isRetryable))
        actions.append(.shadow(.primarySent))
        for body in exchange.pending {
            actions.append(.forwardBody(body))
            exchange.bodyForwarded += Int64(body.readableBytes)
        }
        exchange.pending.removeAll()
        exchange.pendingBytes = 0
        if case .some(let trailers) = exchange.pendingEnd {
            actions.append(.forwardEnd(trailers))
            exchange.pendingEnd = nil
        }
        actions.append(.flushUpstream)
        self.exchange = exchange
    }

    /// Whether a failed exchange may be sent again on a fresh connection (docs/PROXY.md): only on a reused
    /// connection found dead before any answer byte, once, when nothing of it was written or it is idempotent with
    /// no body streamed, and only with its whole body.
    func mayRetry(_ exchange: Exchange, _ failure: UpstreamFailure, sawResponseBytes: Bool) -> Bool {
        guard case .connected(reused: true) = exchange.upstream, !exchange.retried, !exchange.responseStarted else {
            return false
        }
        guard case .closedBeforeHead = failure, !sawResponseBytes else { return false }
        if exchange.headWriteFailed {
            return exchange.bodyForwarded == 0 || exchange.retained != nil
        }
        return exchange.method.isRetryable && exchange.bodyForwarded == 0
    }

    private mutating func upstreamFailed(_ failure: UpstreamFailure, sawResponseBytes: Bool, _ actions: inout Actions) {
        guard let exchange = self.exchange, exchange.isConnected else { return }
        if self.mayRetry(exchange, failure, sawResponseBytes: sawResponseBytes) {
            exchange.retried = true
            exchange.upstream = .waiting(fresh: true)
            // The fresh connection gets the whole request again: the body received so far and, if it ended, its end.
            if exchange.bodyForwarded > 0, let retained = exchange.retained {
                exchange.pending = retained
                exchange.pendingBytes = exchange.retainedBytes
            }
            exchange.bodyForwarded = 0
            if case .ended(let trailers) = exchange.request {
                exchange.pendingEnd = .some(trailers)
            }
            self.exchange = exchange
            actions.append(.setDeadline(exchange.connectTimeout))
            actions.append(.leaseConnection(fresh: true))
            return
        }
        exchange.upstream = .none
        self.exchange = exchange
        if exchange.responseStarted {
            // Never let a truncated answer look complete: the client sees the connection close.
            actions.append(.shadow(.abandon("serving_failed")))
            actions.append(.flushClient)
            self.close(&actions)
            return
        }
        self.failedBeforeAnswer(failure, neverReceived: exchange.headWriteFailed, &actions)
    }

    /// The current attempt failed before any of its answer reached the client: retried by the route's policy if it
    /// may be, else sent to the fallback if it may be, else answered with the failure.
    private mutating func failedBeforeAnswer(_ failure: UpstreamFailure, neverReceived: Bool, _ actions: inout Actions) {
        guard let exchange = self.exchange else { return }
        if let retry = exchange.retry, retry.covers(failure), Self.mayRetryByPolicy(exchange, neverReceived: neverReceived) {
            exchange.pendingRetry = .failure(failure, neverReceived: neverReceived)
            actions.append(.requestRetry(reason: Self.reason(failure)))
            return
        }
        self.failedWithoutRetry(failure, neverReceived: neverReceived, &actions)
    }

    /// What a failed attempt comes to when it is not retried: the fallback, or the failure's answer.
    private mutating func failedWithoutRetry(_ failure: UpstreamFailure, neverReceived: Bool, _ actions: inout Actions) {
        if self.fallBack(Self.reason(failure), status: Self.status(failure), neverReceived: neverReceived, &actions) {
            return
        }
        self.answerFailure(failure, &actions)
    }

    /// Whether the route's policy may send `exchange` again: retries are left, no byte reached the client, its whole
    /// body is at hand, and the upstream never received it or its method is idempotent.
    static func mayRetryByPolicy(_ exchange: Exchange, neverReceived: Bool) -> Bool {
        guard let retry = exchange.retry, exchange.retries < retry.attempts, !exchange.responseStarted else {
            return false
        }
        let wholeBody = exchange.bodyForwarded == 0 || exchange.retained != nil
        return wholeBody && (neverReceived || exchange.method.isRetryable)
    }

    /// The budget allows the retry: the attempt's connection goes (if it is still open), its failure is recorded
    /// against the upstream, and the request goes to the pool again after its back-off, with its whole body.
    private mutating func retryGranted(jitter: Double, _ actions: inout Actions) {
        guard let exchange = self.exchange, let pending = exchange.pendingRetry, let retry = exchange.retry else {
            return
        }
        exchange.pendingRetry = nil
        let status: Int
        let reason: FallbackReason
        switch pending {
        case .failure(let failure, _):
            status = Self.status(failure)
            reason = Self.reason(failure)
        case .answer(let head):
            actions.append(.abortUpstream)
            status = head.status
            reason = .status
        }
        actions.append(.recordFailedAttempt(status: status))
        actions.append(.shadow(.abandon("retry")))
        exchange.retries += 1
        actions.append(.retrying(number: exchange.retries, reason: reason))
        Self.rewind(exchange)
        let delay = retry.backoff(retry: exchange.retries, jitter: jitter)
        if delay.nanoseconds > 0 {
            exchange.upstream = .backingOff
            actions.append(.setDeadline(delay))
        } else {
            actions.append(.setDeadline(exchange.connectTimeout))
            actions.append(.leaseConnection(fresh: false))
        }
    }

    /// The budget refused the retry: the request goes on as without a policy (fallback, or the answer it had).
    private mutating func retryRefused(_ actions: inout Actions) {
        guard let exchange = self.exchange, let pending = exchange.pendingRetry else { return }
        exchange.pendingRetry = nil
        switch pending {
        case .failure(let failure, let neverReceived):
            self.failedWithoutRetry(failure, neverReceived: neverReceived, &actions)
            self.flushIfAnswered(&actions)
        case .answer(let head):
            self.answerHeadWithoutRetry(head, &actions)
        }
    }

    /// Whether a recent copy may stand in for an answer with `status` (RFC 5861's `stale-if-error`: 500, 502, 503,
    /// 504). Asked of every answer's head: a comparison, not a set lookup.
    static func isStaleStatus(_ status: Int) -> Bool {
        status == 500 || (status >= 502 && status <= 504)
    }

    /// Whether the cache is to be asked for a copy now: the route allows one, the request is a GET, nothing of an
    /// answer went out, and it was not asked already. Marks it asked.
    private mutating func asksForStale() -> Bool {
        guard let exchange = self.exchange, exchange.staleIfError, !exchange.staleAsked, exchange.method == .get,
            !exchange.responseStarted
        else {
            return false
        }
        exchange.staleAsked = true
        return true
    }

    /// The cache's copy stands in for the failure: the failed attempt's connection goes, and the copy is the answer.
    private mutating func staleFound(_ actions: inout Actions) {
        guard let exchange = self.exchange, let pending = exchange.pendingStale else { return }
        exchange.pendingStale = nil
        let status: Int
        switch pending {
        case .failure(let failure, _):
            status = Self.status(failure)
        case .answer(let head):
            actions.append(.abortUpstream)
            exchange.upstream = .none
            status = head.status
        }
        actions.append(.shadow(.abandon("serving_failed")))
        exchange.local = true
        exchange.response = .complete
        if !exchange.requestEnded && exchange.framing != .none { exchange.keepAlive = false }
        actions.append(.answerStale(replacing: status, keepAlive: exchange.keepAlive))
        self.finishIfDone(&actions)
        self.flushIfAnswered(&actions)
    }

    /// No copy: the failure (or the failed answer) goes to the client as it would have.
    private mutating func staleMissing(_ actions: inout Actions) {
        guard let exchange = self.exchange, let pending = exchange.pendingStale else { return }
        exchange.pendingStale = nil
        switch pending {
        case .failure(let failure, _):
            self.answerFailure(failure, &actions)
            self.flushIfAnswered(&actions)
        case .answer(let head):
            self.answerHeadWithoutRetry(head, &actions)
        }
    }

    /// Flushes the client after an event that did not come with a flush of its own (a deadline, a budget's answer)
    /// when it answered the request; not when the request went on to another attempt.
    private func flushIfAnswered(_ actions: inout Actions) {
        if self.exchange.map({ $0.local || $0.responseStarted }) ?? true {
            actions.append(.flushClient)
        }
    }

    /// Makes `exchange` ready to be sent again from its start: waiting for a connection, with the body received so
    /// far (and its end, if it came) pending, and a fresh chance of the one safe re-send on a stale connection.
    private static func rewind(_ exchange: Exchange) {
        exchange.upstream = .waiting(fresh: false)
        exchange.retried = false
        exchange.headWriteFailed = false
        if exchange.bodyForwarded > 0, let retained = exchange.retained {
            exchange.pending = retained
            exchange.pendingBytes = exchange.retainedBytes
        }
        exchange.bodyForwarded = 0
        if case .ended(let trailers) = exchange.request {
            exchange.pendingEnd = .some(trailers)
        }
    }

    /// Answers a request whose upstream failed before any of its answer reached the client. The body names the
    /// upstream and what went wrong, never its addresses or the socket's error (the handler's `LocalResponse`).
    private mutating func answerFailure(_ failure: UpstreamFailure, _ actions: inout Actions) {
        // Here a second time (the cache had no copy), the failure was reported when the cache was asked.
        let reported = self.exchange?.staleAsked == true
        if case .closedAfterHead = failure {} else if self.asksForStale() {
            self.exchange?.pendingStale = .failure(failure, neverReceived: false)
            actions.append(.reportUpstreamFailure(failure))
            actions.append(.requestStale(status: Self.status(failure)))
            return
        }
        if !reported {
            actions.append(.reportUpstreamFailure(failure))
        }
        let upstream = "upstream '\(self.exchange?.upstreamName ?? "")'"
        let answer: LocalAnswer
        switch failure {
        case .connectFailed:
            answer = LocalAnswer(status: 502, error: "upstream_unavailable", detail: "cannot connect to \(upstream)")
        case .connectTimeout:
            answer = LocalAnswer(
                status: 503, error: "upstream_connect_timeout", detail: "connecting to \(upstream) timed out",
                retryAfter: true)
        case .poolExhausted:
            answer = LocalAnswer(
                status: 503, error: "upstream_overloaded",
                detail: "\(upstream) has no free connection and its queue is full", retryAfter: true)
        case .overflow(let limit):
            answer = LocalAnswer(
                status: 503, error: "upstream_overloaded", detail: "\(upstream) is at its \(limit.rawValue) limit",
                retryAfter: true)
        case .noHealthyAddress:
            answer = LocalAnswer(
                status: 503, error: "no_healthy_upstream",
                detail: "every address of \(upstream) is out of rotation after failing", retryAfter: true)
        case .responseTimeout:
            answer = LocalAnswer(status: 504, error: "upstream_timeout", detail: "\(upstream) did not answer in time")
        case .closedBeforeHead:
            answer = LocalAnswer(
                status: 502, error: "upstream_reset", detail: "\(upstream) closed the connection before answering")
        case .closedAfterHead:
            self.close(&actions)
            return
        case .badResponse:
            answer = LocalAnswer(status: 502, error: "upstream_bad_response", detail: "\(upstream) sent an invalid response")
        }
        self.answerLocally(answer, &actions)
    }

    /// Sends the request to its fallback upstream instead, when it has one and may be sent again: any method the
    /// failed upstream never received, otherwise an idempotent one with its whole body at hand. The failure is still
    /// recorded against the failed upstream (fallback protects users, never a canary's verdict). False: no fallback.
    private mutating func fallBack(
        _ reason: FallbackReason,
        status: Int,
        neverReceived: Bool,
        _ actions: inout Actions
    ) -> Bool {
        guard let exchange = self.exchange, let fallback = exchange.fallback,
            Self.mayFallBack(exchange, neverReceived: neverReceived)
        else {
            return false
        }
        actions.append(.recordFailedAttempt(status: status))
        actions.append(.shadow(.abandon("fallback")))
        exchange.fallback = nil
        // The fallback gets one attempt of its own; the policy's retries were for the failed upstream.
        exchange.retry = nil
        exchange.upstreamName = fallback.upstream
        Self.rewind(exchange)
        actions.append(.fallBack(to: fallback.upstream, reason: reason))
        actions.append(.setDeadline(exchange.connectTimeout))
        actions.append(.leaseConnection(fresh: false))
        return true
    }

    /// Whether `exchange` may go to its fallback: it has one, no byte reached the client, its whole body is at
    /// hand, and the failed upstream never received it or its method is idempotent (a POST that reached the new
    /// side is never sent to legacy too).
    static func mayFallBack(_ exchange: Exchange, neverReceived: Bool) -> Bool {
        guard exchange.fallback != nil, !exchange.responseStarted else { return false }
        let wholeBody = exchange.bodyForwarded == 0 || exchange.retained != nil
        return wholeBody && (neverReceived || exchange.method.isRetryable)
    }

    static func reason(_ failure: UpstreamFailure) -> FallbackReason {
        switch failure {
        case .connectFailed: .connectFailed
        case .connectTimeout: .connectTimeout
        case .poolExhausted, .overflow: .overloaded
        case .noHealthyAddress: .noHealthyAddress
        case .closedBeforeHead, .closedAfterHead: .reset
        case .responseTimeout: .timeout
        case .badResponse: .badResponse
        }
    }

    /// The status a client would have been answered with.
    static func status(_ failure: UpstreamFailure) -> Int {
        switch failure {
        case .connectFailed, .closedBeforeHead, .closedAfterHead, .badResponse: 502
        case .connectTimeout, .poolExhausted, .overflow, .noHealthyAddress: 503
        case .responseTimeout: 504
        }
    }

    // MARK: The answer

    private mutating func upstreamHead(_ head: HTTPHead, _ actions: inout Actions) {
        guard let exchange = self.exchange, exchange.isConnected, !exchange.responseStarted else { return }
        if let retry = exchange.retry, retry.statuses.contains(head.status),
            Self.mayRetryByPolicy(exchange, neverReceived: false)
        {
            // The answer waits, unread, while the budget is asked: refused, it is forwarded as it is.
            exchange.pendingRetry = .answer(head)
            actions.append(.requestRetry(reason: .status))
            return
        }
        self.answerHeadWithoutRetry(head, &actions)
    }

    /// The attempt's answer head, not retried: to the fallback if its status says so, else to the client.
    private mutating func answerHeadWithoutRetry(_ head: HTTPHead, _ actions: inout Actions) {
        guard let exchange = self.exchange, exchange.isConnected, !exchange.responseStarted else { return }
        if let fallback = exchange.fallback, fallback.statuses.contains(head.status),
            Self.mayFallBack(exchange, neverReceived: false)
        {
            // The answer is not read on: its connection goes, and the request goes to the fallback.
            actions.append(.abortUpstream)
            exchange.upstream = .none
            self.exchange = exchange
            _ = self.fallBack(.status, status: head.status, neverReceived: false, &actions)
            return
        }
        if Self.isStaleStatus(head.status), self.asksForStale() {
            // The answer waits, unread, while the cache is asked: without a copy, it is forwarded as it is.
            exchange.pendingStale = .answer(head)
            actions.append(.requestStale(status: head.status))
            return
        }
        let framing = HeaderHygiene.clientFraming(for: head, clientMinorVersion: exchange.clientMinorVersion)
        exchange.response = .streaming(framing)
        if case .closeDelimited = framing { exchange.keepAlive = false }
        if !exchange.requestEnded || self.draining { exchange.keepAlive = false }
        self.exchange = exchange
        actions.append(.answerHead(status: head.status, framing, keepAlive: exchange.keepAlive))
        actions.append(.shadow(.primaryHead))
        actions.append(.setDeadline(self.timeouts.clientIdle))
    }

    private mutating func upstreamEnd(_ trailers: HTTPTrailers?, _ actions: inout Actions) {
        guard let exchange = self.exchange, case .streaming(let framing) = exchange.response else { return }
        actions.append(.answerEnd(trailers, framing))
        exchange.response = .complete
        exchange.upstream = .none
        self.exchange = exchange
        actions.append(.flushClient)
        actions.append(.shadow(.primaryEnd))
        self.finishIfDone(&actions)
    }

    /// Answers the current request from Ficus itself.
    private mutating func answerLocally(_ answer: LocalAnswer, _ actions: inout Actions) {
        guard let exchange = self.exchange else { return }
        guard !exchange.responseStarted else {
            // Part of another answer is already on the wire: a second one would corrupt the stream.
            self.close(&actions)
            return
        }
        actions.append(.shadow(.abandon("serving_failed")))
        exchange.local = true
        exchange.response = .complete
        // The connection stays open only if the request has been (or can cheaply be) read to its end.
        if !exchange.requestEnded && exchange.framing != .none { exchange.keepAlive = false }
        self.exchange = exchange
        actions.append(.answerLocally(answer, keepAlive: exchange.keepAlive, headOnly: exchange.method == .head))
        self.finishIfDone(&actions)
    }

    private mutating func finishIfDone(_ actions: inout Actions) {
        guard let exchange = self.exchange, exchange.responseComplete else { return }
        if exchange.requestEnded {
            self.finish(&actions)
        } else if !exchange.local || exchange.framing != .none {
            // Answered before the request was fully read: close rather than read the rest.
            self.exchange?.keepAlive = false
            self.finish(&actions)
        }
    }

    /// The exchange is over: recorded, then the connection waits for the next request or closes.
    private mutating func finish(_ actions: inout Actions) {
        guard let exchange = self.exchange else { return }
        self.exchange = nil
        actions.append(.finish(gone: false))
        // What the client was told decides: a connection promised to stay open does, even when draining began
        // meanwhile (its next request is answered with `Connection: close`).
        if exchange.keepAlive && !self.inputClosed {
            self.enterIdle(&actions)
            actions.append(.resumeParsing)
        } else {
            self.phase = .closing
            actions.append(.clearDeadline)
            actions.append(.closeAfterFlush)
        }
    }

    // MARK: Deadlines and the end

    private mutating func enterIdle(_ actions: inout Actions) {
        self.phase = .idle
        actions.append(.setDeadline(self.draining ? self.timeouts.drainGrace : self.timeouts.clientIdle))
    }

    private mutating func deadline(upstreamWritable: Bool, _ actions: inout Actions) {
        switch self.phase {
        case .idle:
            self.close(&actions)
        case .readingHead:
            // The head did not arrive in time: an exchange of its own, answered 408.
            self.phase = .exchange
            self.exchangesBegun += 1
            let late = Exchange(method: .other, framing: .none, clientMinorVersion: 1, keepAlive: false)
            late.request = .ended(nil)
            self.exchange = late
            self.answerLocally(
                LocalAnswer(status: 408, error: "request_timeout", detail: "the request head did not arrive in time"),
                &actions)
            actions.append(.flushClient)
        case .exchange:
            guard let exchange = self.exchange else { return }
            if case .backingOff = exchange.upstream {
                // The retry's back-off is over: the request goes to the pool again.
                exchange.upstream = .waiting(fresh: false)
                actions.append(.setDeadline(exchange.connectTimeout))
                actions.append(.leaseConnection(fresh: false))
            } else if exchange.isWaiting {
                // Waiting for a pooled connection took longer than the connect timeout.
                actions.append(.cancelLease)
                exchange.upstream = .none
                self.exchange = exchange
                self.failedBeforeAnswer(.connectTimeout, neverReceived: true, &actions)
                self.flushIfAnswered(&actions)
            } else if exchange.isConnected {
                self.streamStalled(upstreamWritable: upstreamWritable, &actions)
            }
        case .closing, .closed, .tunnel:
            break
        }
    }

    /// Nothing moved in either direction for the idle timeout while a request body or an answer streamed (nginx
    /// `client_body_timeout`/`send_timeout`/`proxy_send_timeout`, Envoy `stream_idle_timeout`): both connections
    /// close. Before any answer, a client that stopped sending its body gets 408 and an upstream that stopped taking
    /// it 504; once an answer has started, the client sees the connection close before its end.
    private mutating func streamStalled(upstreamWritable: Bool, _ actions: inout Actions) {
        guard let exchange = self.exchange else { return }
        let upstreamStalled = !upstreamWritable
        actions.append(
            .reportStall(
                exchange.responseStarted
                    ? "answer" : upstreamStalled ? "upstream reading the request body" : "request body"))
        actions.append(.abortUpstream)
        actions.append(.shadow(.abandon("stream_timeout")))
        exchange.upstream = .none
        if exchange.responseStarted {
            self.exchange = exchange
            actions.append(.flushClient)
            self.close(&actions)
            return
        }
        exchange.keepAlive = false
        self.exchange = exchange
        if upstreamStalled {
            self.answerLocally(
                LocalAnswer(
                    status: 504, error: "upstream_timeout",
                    detail: "upstream '\(exchange.upstreamName)' stopped taking the request body"),
                &actions)
        } else {
            self.answerLocally(
                LocalAnswer(status: 408, error: "request_timeout", detail: "the request body stopped arriving"),
                &actions)
        }
        actions.append(.flushClient)
    }

    private mutating func clientClosed(_ actions: inout Actions) {
        self.phase = .closed
        actions.append(.clearDeadline)
        // An exchange still here was not finished (the client went away, or the connection was closed after an
        // upstream failure): release what it holds and count it once, so in-flight never drifts.
        guard let exchange = self.exchange else { return }
        self.exchange = nil
        if exchange.isWaiting { actions.append(.cancelLease) }
        if exchange.isConnected { actions.append(.abortUpstream) }
        if !exchange.responseComplete {
            actions.append(.shadow(.abandon("client_gone")))
        }
        actions.append(.finish(gone: !exchange.responseStarted))
    }

    private mutating func close(_ actions: inout Actions) {
        guard self.phase != .closed else { return }
        if self.phase != .closing { self.phase = .closing }
        actions.append(.clearDeadline)
        actions.append(.close)
    }
}
