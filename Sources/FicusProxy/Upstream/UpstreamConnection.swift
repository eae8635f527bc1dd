import FicusCore
import NIOCore

/// Why an exchange with an upstream failed.
enum UpstreamFailure: Error, CustomStringConvertible {
    case connectFailed(String)
    case connectTimeout
    /// The upstream's connections and waiting requests are at their limits (`max_pending` overflow).
    case poolExhausted
    /// Another circuit breaker of the upstream is full (`max_requests`, or `max_retries` for a re-send).
    case overflow(UpstreamOverflow)
    /// Every address of the upstream is out of rotation (ejected): nothing was tried.
    case noHealthyAddress
    case closedBeforeHead
    case closedAfterHead
    case responseTimeout
    case badResponse(HTTPFramingError)

    /// A few words for shadow records and logs (not the `Mirror` dump that interpolating the case would print).
    var description: String {
        switch self {
        case .connectFailed(let detail): "cannot connect: \(detail)"
        case .connectTimeout: "connecting timed out"
        case .poolExhausted: "no free connection and the queue is full"
        case .overflow(let limit): "\(limit.rawValue) reached"
        case .noHealthyAddress: "every address is out of rotation (ejected)"
        case .closedBeforeHead: "closed the connection before answering"
        case .closedAfterHead: "closed the connection part way through the answer"
        case .responseTimeout: "did not answer in time"
        case .badResponse(let error): "invalid response: \(error.detail)"
        }
    }
}

/// Which circuit breaker of an upstream refused a request at once (the `reason` of `ficus_upstream_overflow_total`).
enum UpstreamOverflow: String, Sendable, Equatable {
    case maxRequests = "max_requests"
    case maxRetries = "max_retries"
}

/// The receiver of one upstream exchange's events (the client connection it serves).
protocol UpstreamExchangeDelegate: AnyObject {
    func upstreamResponseHead(_ head: HTTPHead)
    func upstreamResponseBody(_ body: ByteBuffer)
    func upstreamResponseEnd(_ trailers: HTTPTrailers?)
    func upstreamReadComplete()
    func upstreamFailed(_ failure: UpstreamFailure)
    func upstreamWritabilityChanged(_ writable: Bool)
    /// The upstream switched protocols (`101`) for a request that asked to (`expectsUpgrade`); `leftover` holds the
    /// bytes that came after the head. The connection has left HTTP: `detachForTunnel` hands its channel over.
    func upstreamUpgraded(_ head: HTTPHead, leftover: ByteBuffer?)
}

extension UpstreamExchangeDelegate {
    /// Exchanges that never ask for an upgrade (shadow copies) are never told of one.
    func upstreamUpgraded(_ head: HTTPHead, leftover: ByteBuffer?) {
        self.upstreamFailed(.badResponse(HTTPFramingError(.badStatus, "unexpected 101")))
    }
}

/// One keep-alive connection to an upstream address, parsing responses and handing them to the current exchange.
///
/// Loop-confined: it lives on the event loop of the client connections it serves, so handing events across is a
/// method call, never a thread hop.
final class UpstreamConnection: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum State {
        case connecting
        case idle
        case active
        /// The upstream answered `101` to an upgrade: the connection is a tunnel's, never the pool's again.
        case upgraded
        case closed
    }

    let upstream: String
    let endpoint: Endpoint
    /// `endpoint.address`, built once: outlier detection names the address with every answer.
    let address: String
    private(set) var state: State = .connecting
    private(set) var context: ChannelHandlerContext?
    /// Strong: pools live as long as their server, and a weak reference would slow down every retain and release
    /// of this connection.
    var pool: UpstreamPool?
    private var delegate: UpstreamExchangeDelegate?
    private var parser = HTTP1Parser(kind: .response, limits: .response)
    private var inbound: ByteBuffer?
    private var readsPaused = false
    private var readPending = false
    private(set) var sawResponseBytes = false
    private(set) var exchangesServed = 0
    private var timer: DeadlineTimer?
    private var responseTimeout: TimeAmount = .seconds(30)
    private let idleTimeout: TimeAmount
    /// The current exchange is a WebSocket handshake: a `101` answer hands the connection to a tunnel instead of
    /// failing it. Set after `begin`, for that exchange only.
    var expectsUpgrade = false

    init(upstream: String, endpoint: Endpoint, idleTimeout: TimeAmount) {
        self.upstream = upstream
        self.endpoint = endpoint
        self.address = endpoint.address
        self.idleTimeout = idleTimeout
    }

    var isUsable: Bool { self.state == .idle && (self.context?.channel.isActive ?? false) }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.timer = DeadlineTimer(eventLoop: context.eventLoop) { self.timerExpired() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.timer?.cancel()
        self.context = nil
    }

    /// Starts an exchange: `head` (already hygienic) is written, and responses go to `delegate`.
    func begin(
        delegate: UpstreamExchangeDelegate,
        method: HTTPMethodKind,
        responseTimeout: TimeAmount
    ) {
        precondition(self.state == .idle || self.state == .connecting, "one exchange at a time")
        self.state = .active
        self.delegate = delegate
        self.sawResponseBytes = false
        self.responseHeadReceived = false
        self.pendingInterim = false
        self.requestFullySent = false
        self.expectsUpgrade = false
        self.parser.expectResponse(to: method)
        self.responseTimeout = responseTimeout
        // The response timeout counts from the end of the request (`requestComplete`): a slow upload to a healthy
        // upstream is not its slowness. Until then the client side's stream idle timeout bounds the exchange.
        self.timer?.clear()
        self.exchangesServed += 1
    }

    func write(_ buffer: ByteBuffer, promise: EventLoopPromise<Void>? = nil) {
        self.context?.write(self.wrapOutboundOut(buffer), promise: promise)
    }

    func flush() {
        self.context?.flush()
    }

    var isWritable: Bool { self.context?.channel.isWritable ?? false }

    /// Ends the exchange and closes the connection (the exchange was abandoned or cannot be reused).
    func abort() {
        self.delegate = nil
        self.close()
    }

    /// Marks the exchange finished: the connection goes back to its pool or is closed.
    private func finishExchange(reusable: Bool) {
        self.delegate = nil
        self.timer?.clear()
        if reusable, self.state == .active {
            self.state = .idle
            self.resumeReads()
            self.timer?.set(after: self.idleTimeout)
            self.pool?.release(self)
        } else {
            self.close()
        }
    }

    private var requestFullySent = true

    /// Tells the connection whether the current request has been written completely (a response that ends
    /// before its request does leaves the connection unusable); once it has, the response timeout starts, unless
    /// the answer's head is already here.
    func requestComplete(_ complete: Bool) {
        self.requestFullySent = complete
        if complete, self.state == .active, !self.responseHeadReceived {
            self.timer?.set(after: self.responseTimeout)
        }
    }

    func close() {
        guard self.state != .closed else { return }
        self.state = .closed
        self.timer?.cancel()
        self.context?.close(promise: nil)
    }

    func pauseReads() { self.readsPaused = true }

    func resumeReads() {
        guard self.readsPaused else { return }
        self.readsPaused = false
        if self.readPending {
            self.readPending = false
            self.context?.read()
        }
    }

    // MARK: Channel events

    func channelActive(context: ChannelHandlerContext) {
        if self.state == .connecting { self.state = .idle }
    }

    func read(context: ChannelHandlerContext) {
        if self.readsPaused {
            self.readPending = true
        } else {
            context.read()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = self.unwrapInboundIn(data)
        guard self.state == .active, self.delegate != nil else {
            // Bytes from an upstream that was not asked anything: the connection cannot be trusted any more.
            self.close()
            return
        }
        self.sawResponseBytes = true
        if var inbound = self.inbound, inbound.readableBytes > 0 {
            inbound.writeBuffer(&buffer)
            self.inbound = inbound
        } else {
            self.inbound = buffer
        }
        self.processInbound()
    }

    private func processInbound() {
        while self.state == .active, let delegate = self.delegate {
            var buffer = self.inbound ?? ByteBuffer()
            let event: HTTP1Parser.Event?
            do {
                event = try self.parser.next(&buffer)
            } catch {
                self.inbound = nil
                self.delegate = nil
                self.close()
                delegate.upstreamFailed(.badResponse(error))
                return
            }
            self.inbound = buffer.readableBytes > 0 ? buffer : nil
            guard let event else { return }
            switch event {
            case .head(let head):
                if head.status < 200 {
                    // Informational answers are not forwarded (Ficus answers 100-continue itself); 101 means an
                    // upgrade Ficus never asked for, unless the exchange is a WebSocket handshake.
                    if head.status == 101, self.expectsUpgrade {
                        self.state = .upgraded
                        self.timer?.cancel()
                        let leftover = self.inbound
                        self.inbound = nil
                        self.delegate = nil
                        delegate.upstreamUpgraded(head, leftover: leftover)
                        return
                    }
                    if head.status == 101 {
                        self.delegate = nil
                        self.close()
                        delegate.upstreamFailed(.badResponse(HTTPFramingError(.badStatus, "unexpected 101")))
                        return
                    }
                    self.pendingInterim = true
                    continue
                }
                self.timer?.clear()
                self.responseHeadReceived = true
                self.keepAliveAfterResponse = head.wantsKeepAlive && head.framing != .untilClose
                delegate.upstreamResponseHead(head)
            case .body(let body):
                delegate.upstreamResponseBody(body)
            case .end(let trailers):
                if self.pendingInterim {
                    self.pendingInterim = false
                    continue
                }
                let reusable = self.keepAliveAfterResponse && self.requestFullySent && self.inbound == nil
                self.finishExchange(reusable: reusable)
                delegate.upstreamResponseEnd(trailers)
                return
            }
        }
    }

    private var keepAliveAfterResponse = true
    private var pendingInterim = false
    private var responseHeadReceived = false
    private var failed = false

    func channelReadComplete(context: ChannelHandlerContext) {
        self.delegate?.upstreamReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.delegate?.upstreamWritabilityChanged(context.channel.isWritable)
    }

    func channelInactive(context: ChannelHandlerContext) {
        let wasActive = self.state == .active
        self.state = .closed
        self.timer?.cancel()
        self.pool?.connectionClosed(self)
        guard wasActive, let delegate = self.delegate else { return }
        self.delegate = nil
        if self.responseHeadReceived, !self.failed, case .end(let trailers)? = try? self.parser.peerClosed() {
            // A body delimited by the close of the connection has ended.
            delegate.upstreamResponseEnd(trailers)
            return
        }
        delegate.upstreamFailed(self.responseHeadReceived ? .closedAfterHead : .closedBeforeHead)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A reset is not an end: a body delimited by the close must not look complete after one.
        self.failed = true
        context.close(promise: nil)
    }

    private func timerExpired() {
        switch self.state {
        case .active:
            guard let delegate = self.delegate else { return }
            self.delegate = nil
            self.close()
            delegate.upstreamFailed(.responseTimeout)
        case .idle:
            self.close()
        case .connecting, .upgraded, .closed:
            break
        }
    }

    /// Takes the connection out of HTTP after a `101`: leaves the pool's books (as a closed connection would) and
    /// removes this handler from the channel, which the caller then owns (and closes). Nil when not upgraded.
    func detachForTunnel() -> Channel? {
        guard self.state == .upgraded, let context = self.context else { return nil }
        let channel = context.channel
        self.state = .closed
        self.timer?.cancel()
        self.pool?.connectionClosed(self)
        self.pool = nil
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        return channel
    }
}

extension UpstreamConnection {
    /// Writes a part of the request body, framed as the request was (`framing`): a chunk of its own when chunked.
    func writeRequestBody(_ body: ByteBuffer, framing: HTTPBodyFraming) {
        if case .chunked = framing {
            var header = ByteBuffer()
            header.writeString(String(body.readableBytes, radix: 16))
            header.writeStaticString("\r\n")
            self.write(header)
            self.write(body)
            self.write(ByteBuffer(staticString: "\r\n"))
        } else {
            self.write(body)
        }
    }

    /// Writes the end of the request body: the last chunk and `trailers` when chunked, nothing otherwise.
    func writeRequestEnd(_ trailers: HTTPTrailers?, framing: HTTPBodyFraming) {
        guard case .chunked = framing else { return }
        var end = ByteBuffer(staticString: "0\r\n")
        HeaderHygiene.writeTrailers(trailers, into: &end)
        end.writeStaticString("\r\n")
        self.write(end)
    }
}
