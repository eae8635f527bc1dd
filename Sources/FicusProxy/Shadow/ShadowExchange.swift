import FicusCore
import FicusDiff
import NIOCore

/// One copy of a request sent to a shadow (or noise) upstream, with its own connections, deadline and capture.
///
/// It shares nothing with the client's exchange but the event loop: its connections come from a separate pool, so
/// a slow or dead shadow upstream can exhaust only shadow capacity, never the connections that serve clients.
final class ShadowExchange {
    enum Outcome {
        case answered(CapturedMessage)
        case failed(String)
    }

    /// How a copy ended, with what its capture holds of the memory budget.
    struct Result {
        var outcome: Outcome
        /// Budget bytes the capture holds.
        var reserved: Int
        /// Whether the budget refused the capture bytes (the answer must not be compared).
        var overBudget: Bool
        /// When the copy's head was written to the shadow upstream; nil when it never was.
        var sentAt: NIODeadline?
    }

    private let upstream: Upstream
    private let pool: UpstreamPool
    private let head: ByteBuffer
    private let body: [UInt8]
    private let method: HTTPMethodKind
    private let timeout: TimeAmount
    private let capture: ResponseCapture
    /// Called once, when the copy ends.
    private let completion: (Result) -> Void
    private var sentAt: NIODeadline?
    private var connection: UpstreamConnection?
    private var deadline: Scheduled<Void>?
    private var done = false

    init(
        upstream: Upstream,
        pool: UpstreamPool,
        head: ByteBuffer,
        body: [UInt8],
        method: HTTPMethodKind,
        limits: ShadowLimits,
        memory: ShadowMemory?,
        completion: @escaping (Result) -> Void
    ) {
        self.upstream = upstream
        self.pool = pool
        self.head = head
        self.body = body
        self.method = method
        self.timeout = limits.timeout
        self.capture = ResponseCapture(limit: limits.captureBytes, started: .now(), memory: memory)
        self.completion = completion
    }

    func start() {
        let this = UnsafeTransfer(self)
        self.deadline = self.pool.eventLoop.scheduleTask(in: self.timeout) {
            this.value.timedOut()
        }
        self.pool.acquire(self.upstream, for: self)
    }

    private func timedOut() {
        guard !self.done else { return }
        self.pool.cancel(self, upstream: self.upstream.name)
        self.connection?.abort()
        self.connection = nil
        self.finish(.failed("no complete answer within \(self.timeout.nanoseconds / 1_000_000) ms"))
    }

    private func finish(_ outcome: Outcome) {
        guard !self.done else { return }
        self.done = true
        self.deadline?.cancel()
        self.deadline = nil
        self.completion(
            Result(
                outcome: outcome, reserved: self.capture.reserved, overBudget: self.capture.overBudget,
                sentAt: self.sentAt))
    }
}

extension ShadowExchange: UpstreamConnectionRequester {
    func connectionReady(_ connection: UpstreamConnection, reused: Bool) {
        guard !self.done else {
            if connection.isUsable || connection.state == .connecting { self.pool.release(connection) }
            return
        }
        self.connection = connection
        connection.begin(delegate: self, method: self.method, responseTimeout: self.timeout)
        connection.write(self.head)
        let now = NIODeadline.now()
        self.sentAt = now
        self.capture.markSent(at: now)
        if !self.body.isEmpty {
            connection.write(ByteBuffer(bytes: self.body))
        }
        connection.requestComplete(true)
        connection.flush()
    }

    func connectionFailed(_ failure: UpstreamFailure) {
        self.finish(.failed(failure.description))
    }
}

extension ShadowExchange: UpstreamExchangeDelegate {
    func upstreamResponseHead(_ head: HTTPHead) {
        if let health = self.pool.health, let connection = self.connection {
            health.record(.status(head.status), upstream: self.upstream, address: connection.address, now: self.pool.eventLoop.now)
        }
        self.capture.head(head)
    }

    func upstreamResponseBody(_ body: ByteBuffer) {
        self.capture.body(body)
    }

    func upstreamResponseEnd(_ trailers: HTTPTrailers?) {
        self.connection = nil
        self.capture.end()
        self.finish(.answered(self.capture.message))
    }

    func upstreamReadComplete() {}

    func upstreamFailed(_ failure: UpstreamFailure) {
        if let health = self.pool.health, let connection = self.connection, !connection.sawResponseBytes {
            health.record(.localFailure, upstream: self.upstream, address: connection.address, now: self.pool.eventLoop.now)
        }
        self.connection = nil
        self.finish(.failed(failure.description))
    }

    func upstreamWritabilityChanged(_ writable: Bool) {}
}
