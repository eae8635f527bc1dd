import FicusCore
import FicusDiff
import NIOCore

/// Follows one shadowed request on the client's event loop: captures the request and the serving answer, and hands
/// them to the shadow loop as a `ShadowJob` once the client's answer has been written.
///
/// Handing over after the answer keeps the copies' work (building them, a connection, a write, a wake-up, the read
/// of their answers) out of the client's latency and off the client's loop; what is compared does not change.
final class ShadowRecorder {
    private let dispatcher: ShadowDispatcher
    private let limits: ShadowLimits
    private let metrics: ProxyMetrics?
    private let plan: ShadowJob.Plan
    private var requestBody: [UInt8] = []
    private let primary: ResponseCapture
    private var abandoned = false
    private var primaryDone = false
    private var requestReady = false
    private var dispatched = false

    /// Creates a recorder holding one of `dispatcher`'s in-flight slots, which it hands on or gives back.
    init(plan: ShadowJob.Plan, dispatcher: ShadowDispatcher, limits: ShadowLimits, metrics: ProxyMetrics?) {
        self.plan = plan
        self.dispatcher = dispatcher
        self.limits = limits
        self.metrics = metrics
        self.primary = ResponseCapture(limit: limits.captureBytes, started: .now(), memory: dispatcher.memory)
    }

    deinit {
        // An exchange that ended by a path that neither finished nor abandoned it must not keep its slot.
        if !self.dispatched && !self.abandoned {
            self.metrics?.shadowDropped(route: self.plan.route, view: self.plan.view, reason: "unfinished")
            self.dispatcher.release(bytes: self.reserved)
        }
    }

    /// Bytes of the shadow memory budget this recorder holds (request body and serving answer).
    private var reserved: Int { self.requestBody.count + self.primary.reserved }

    /// Takes the step of the primary exchange the exchange machine reports; `primaryHead` is the answer's head when
    /// the step is `.primaryHead` (the handler keeps it, so that actions stay small).
    func take(_ step: ExchangeStateMachine.ShadowStep, primaryHead: HTTPHead?) {
        switch step {
        case .requestBody(let body): self.requestBody(body)
        case .requestComplete: self.requestComplete()
        case .primarySent: self.primarySent()
        case .primaryHead:
            if let head = primaryHead { self.primaryHead(head) }
        case .primaryBody(let body): self.primaryBody(body)
        case .primaryEnd: self.primaryEnd()
        case .abandon(let reason): self.abandon(reason: reason)
        }
    }

    // MARK: The request

    func requestBody(_ buffer: ByteBuffer) {
        guard !self.abandoned else { return }
        if self.requestBody.count + buffer.readableBytes > self.limits.captureBytes {
            // A copy must be the same request: one whose body cannot be held is not shadowed at all.
            self.abandon(reason: "request_body_too_large")
            return
        }
        guard self.dispatcher.memory.reserve(buffer.readableBytes) else {
            self.abandon(reason: "memory")
            return
        }
        buffer.withUnsafeReadableBytes { self.requestBody.append(contentsOf: $0) }
    }

    /// The client's request is complete; the copies go once the serving answer is complete too.
    func requestComplete() {
        guard !self.abandoned else { return }
        self.requestReady = true
        self.dispatchIfReady()
    }

    // MARK: The serving answer

    /// The serving request's head was written to its upstream (again, after a re-send on a fresh connection).
    func primarySent() {
        self.primary.markSent()
    }

    func primaryHead(_ head: HTTPHead) {
        self.primary.head(head)
    }

    func primaryBody(_ buffer: ByteBuffer) {
        guard !self.abandoned else { return }
        self.primary.body(buffer)
        if self.primary.overBudget { self.abandon(reason: "memory") }
    }

    /// The serving answer is complete and has been flushed to the client.
    func primaryEnd() {
        self.primary.end()
        self.primaryDone = true
        self.dispatchIfReady()
    }

    /// The serving side failed or the client went away: nothing to compare.
    func abandon(reason: String) {
        guard !self.abandoned, !self.dispatched else { return }
        self.abandoned = true
        let reserved = self.reserved
        self.requestBody = []
        self.metrics?.shadowDropped(route: self.plan.route, view: self.plan.view, reason: reason)
        self.dispatcher.release(bytes: reserved)
    }

    private func dispatchIfReady() {
        guard self.primaryDone, self.requestReady, !self.dispatched, !self.abandoned else { return }
        self.dispatched = true
        // The request head leaves the client connection's read buffer only now, after the answer was flushed.
        var plan = self.plan
        plan.view = plan.view.detached()
        let job = ShadowJob(
            plan: plan,
            requestBody: self.requestBody,
            serving: self.primary.snapshot,
            reserved: self.reserved
        )
        self.requestBody = []
        self.dispatcher.dispatch(job)
    }
}
