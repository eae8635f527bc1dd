import FicusCore
import FicusDiff
import NIOCore

/// The shadow capacity of one event loop: copies in flight, bounded.
///
/// Loop-confined like the pools; the configured total is shared out among the loops.
final class ShadowSlots {
    let limit: Int
    private(set) var inFlight = 0

    init(limit: Int) {
        self.limit = limit
    }

    func tryAcquire() -> Bool {
        guard self.inFlight < self.limit else { return false }
        self.inFlight += 1
        return true
    }

    func release() {
        self.inFlight -= 1
    }
}

/// Follows one shadowed request: captures the request and the serving answer, sends the copies once the request is
/// complete, and hands the observation to the sink when every part is in.
final class ShadowRecorder {
    /// A copy to send once the request is complete.
    struct Copy {
        var upstream: Upstream
        var head: ByteBuffer
    }

    private let sink: ShadowSink
    private let slots: ShadowSlots
    private let pool: UpstreamPool
    private let limits: ShadowLimits
    private let metrics: ProxyMetrics?
    private var observation: ShadowObservation
    private let method: HTTPMethodKind
    private var requestBody: [UInt8] = []
    private let primary: ResponseCapture
    private var abandoned = false
    private var primaryDone = false
    private var requestReady = false
    private var copiesSent = false
    private var outstanding = 0
    private var released = false
    private var shadowCopy: Copy
    private var secondCopy: Copy?

    init(
        observation: ShadowObservation,
        method: HTTPMethodKind,
        shadow: Copy,
        second: Copy?,
        sink: ShadowSink,
        slots: ShadowSlots,
        pool: UpstreamPool,
        limits: ShadowLimits,
        metrics: ProxyMetrics?
    ) {
        self.observation = observation
        self.method = method
        self.shadowCopy = shadow
        self.secondCopy = second
        self.sink = sink
        self.slots = slots
        self.pool = pool
        self.limits = limits
        self.metrics = metrics
        self.primary = ResponseCapture(limit: limits.captureBytes, started: .now())
    }

    // MARK: The request

    func requestBody(_ buffer: ByteBuffer) {
        guard !self.abandoned else { return }
        if self.requestBody.count + buffer.readableBytes > self.limits.captureBytes {
            // A copy must be the same request: one whose body cannot be held is not shadowed at all.
            self.abandon(reason: "request_body_too_large")
            return
        }
        buffer.withUnsafeReadableBytes { self.requestBody.append(contentsOf: $0) }
    }

    /// The client's request is complete: the copies go out once the client's answer has been written.
    ///
    /// Sending them after the answer keeps the copies' work (a connection, a write, a wake-up) out of the client's
    /// latency; what is compared does not change.
    func requestComplete() {
        guard !self.abandoned else { return }
        self.requestReady = true
        if self.primaryDone { self.sendCopies() }
    }

    private func sendCopies() {
        guard !self.copiesSent, !self.abandoned else { return }
        self.copiesSent = true
        self.observation.requestBody = self.requestBody
        self.send(self.shadowCopy) { recorder, outcome in
            switch outcome {
            case .answered(let message): recorder.observation.shadow = message
            case .failed(let error): recorder.observation.shadowError = error
            }
        }
        if let second = self.secondCopy {
            self.send(second) { recorder, outcome in
                if case .answered(let message) = outcome { recorder.observation.second = message }
            }
        }
    }

    private func send(_ copy: Copy, _ record: @escaping (ShadowRecorder, ShadowExchange.Outcome) -> Void) {
        var head = copy.head
        if !self.requestBody.isEmpty {
            // The copy's framing is always a Content-Length: the whole body is at hand.
            head.moveWriterIndex(to: head.writerIndex - 2)
            head.writeString("content-length: \(self.requestBody.count)\r\n\r\n")
        }
        self.outstanding += 1
        self.metrics?.shadowSent(route: self.observation.route, upstream: copy.upstream.name)
        let exchange = ShadowExchange(
            upstream: copy.upstream,
            pool: self.pool,
            head: head,
            body: self.requestBody,
            method: self.method,
            limits: self.limits
        ) { [self] outcome in
            record(self, outcome)
            self.outstanding -= 1
            self.completeIfReady()
        }
        exchange.start()
    }

    // MARK: The serving answer

    func primaryHead(_ head: HTTPHead) {
        self.primary.head(head)
    }

    func primaryBody(_ buffer: ByteBuffer) {
        guard !self.abandoned else { return }
        self.primary.body(buffer)
    }

    func primaryEnd() {
        self.primary.end()
        self.primaryDone = true
        if self.requestReady { self.sendCopies() }
        self.completeIfReady()
    }

    /// The serving side failed or the client went away: nothing to compare.
    func abandon(reason: String) {
        guard !self.abandoned else { return }
        self.abandoned = true
        self.requestBody = []
        self.metrics?.shadowDropped(route: self.observation.route, reason: reason)
        self.completeIfReady()
    }

    private func completeIfReady() {
        guard self.outstanding == 0, self.primaryDone || self.abandoned, !self.released else { return }
        self.released = true
        self.slots.release()
        guard !self.abandoned else { return }
        self.observation.serving = self.primary.message
        self.sink.submit(self.observation)
    }
}
