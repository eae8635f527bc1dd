import FicusCore
import FicusDiff
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A shadowed request once its client has its answer: everything needed to send the copies and compare them.
///
/// A plain value, handed from the client's event loop to the shadow loop; nothing in it is shared with the client's
/// exchange, so the two loops never touch the same object.
struct ShadowJob: Sendable {
    /// A copy to send: the upstream and the request head written for it.
    struct Copy: Sendable {
        var upstream: Upstream
        var head: ByteBuffer
    }

    /// The request and the serving answer; the shadow and noise answers are filled in on the shadow loop.
    var observation: ShadowObservation
    var method: HTTPMethodKind
    var shadow: Copy
    var second: Copy?
}

/// Sends shadow copies from an event loop of their own and hands finished observations to the sink.
///
/// Client loops only capture and hand over a `ShadowJob`; the copies' connections, writes, deadlines and the reads
/// of their answers (which arrive, say, 200 ms later) all happen on the shadow loop, so a client's request never
/// waits behind another request's shadow work. The in-flight bound is one counter for the whole proxy.
final class ShadowDispatcher: Sendable {
    let eventLoop: EventLoop
    private let group: MultiThreadedEventLoopGroup
    private let pool: UnsafeTransfer<UpstreamPool>
    private let sink: ShadowSink
    private let limits: ShadowLimits
    private let metrics: ProxyMetrics?
    private let inFlight = NIOLockedValueBox(0)

    init(sink: ShadowSink, configuration: ProxyConfiguration, metrics: ProxyMetrics?) {
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.eventLoop = self.group.next()
        self.pool = UnsafeTransfer(
            UpstreamPool(eventLoop: self.eventLoop, configuration: configuration, loops: 1, metrics: nil)
        )
        self.sink = sink
        self.limits = configuration.shadow
        self.metrics = metrics
    }

    /// Takes one in-flight slot; false when `ShadowLimits.maxInFlight` copies are already under way.
    ///
    /// Called on a client loop when the request is routed, so a full shadow side drops the copy before anything is
    /// captured.
    func tryAcquire() -> Bool {
        self.inFlight.withLockedValue { count in
            guard count < self.limits.maxInFlight else { return false }
            count += 1
            return true
        }
    }

    /// Gives a slot back: the job finished, or it was abandoned before it was dispatched.
    func release() {
        self.inFlight.withLockedValue { $0 -= 1 }
    }

    /// The copies under way, for tests.
    var inFlightCount: Int {
        self.inFlight.withLockedValue { $0 }
    }

    /// Sends `job`'s copies from the shadow loop; the slot taken for it is released when they are all done.
    func dispatch(_ job: ShadowJob) {
        self.eventLoop.execute {
            self.run(job)
        }
    }

    private func run(_ job: ShadowJob) {
        let flight = ShadowFlight(job: job) { observation in
            self.release()
            self.sink.submit(observation)
        }
        // Counted before either copy starts: a copy that fails at once must not finish the flight early.
        flight.outstanding = job.second == nil ? 1 : 2
        self.send(job.shadow, job: job, flight: flight) { observation, outcome in
            switch outcome {
            case .answered(let message): observation.shadow = message
            case .failed(let error): observation.shadowError = error
            }
        }
        if let second = job.second {
            self.send(second, job: job, flight: flight) { observation, outcome in
                if case .answered(let message) = outcome { observation.second = message }
            }
        }
    }

    private func send(
        _ copy: ShadowJob.Copy,
        job: ShadowJob,
        flight: ShadowFlight,
        _ record: @escaping (inout ShadowObservation, ShadowExchange.Outcome) -> Void
    ) {
        var head = copy.head
        let body = job.observation.requestBody
        if !body.isEmpty {
            // The copy's framing is always a Content-Length: the whole body is at hand.
            head.moveWriterIndex(to: head.writerIndex - 2)
            head.writeString("content-length: \(body.count)\r\n\r\n")
        }
        self.metrics?.shadowSent(route: job.observation.route, upstream: copy.upstream.name)
        let exchange = ShadowExchange(
            upstream: copy.upstream,
            pool: self.pool.value,
            head: head,
            body: body,
            method: job.method,
            limits: self.limits
        ) { outcome in
            flight.record { record(&$0, outcome) }
        }
        exchange.start()
    }

    /// Closes the shadow connections and stops the shadow loop; copies still under way are dropped.
    func shutdown() async {
        let pool = self.pool
        try? await self.eventLoop.submit { pool.value.closeIdle() }.get()
        try? await self.group.shutdownGracefully()
    }
}

/// The copies of one job in flight on the shadow loop; calls `done` with the observation when the last one ends.
///
/// Loop-confined: created, updated and finished on the shadow loop only.
final class ShadowFlight {
    private var observation: ShadowObservation
    private let done: (ShadowObservation) -> Void
    var outstanding = 0

    init(job: ShadowJob, done: @escaping (ShadowObservation) -> Void) {
        self.observation = job.observation
        self.done = done
    }

    func record(_ update: (inout ShadowObservation) -> Void) {
        update(&self.observation)
        self.outstanding -= 1
        if self.outstanding == 0 {
            self.done(self.observation)
        }
    }
}
