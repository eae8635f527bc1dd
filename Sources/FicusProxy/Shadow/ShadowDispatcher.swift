import FicusCore
import FicusDiff
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// A shadowed request once its client has its answer: everything needed to send the copies and compare them.
///
/// Raw parts (the request head as received, the captured bytes), handed from the client's event loop to the shadow
/// loop, which turns them into copies and an observation; nothing in it is shared with the client's exchange, so the
/// two loops never touch the same object after the hand-over. A class, so that handing it over moves one reference
/// rather than copying a plan of a dozen reference-counted fields at every step.
final class ShadowJob: Sendable {
    /// What the copies and the observation are built from, fixed when the request is routed.
    struct Plan: Sendable {
        /// The request as received; its head is what the copies are written from.
        var view: RequestView
        var client: HeaderHygiene.ClientFacts
        var viaName: String
        /// The table the request was routed with, for the copies' rewrites.
        var table: RoutingTable
        var route: String
        var serving: String
        var shadow: Upstream
        var second: Upstream?
        /// Wall-clock arrival, in microseconds since 1970.
        var timestamp: Int64
        /// The request's `X-Request-Id`, which its copies carry too.
        var requestID: String
    }

    /// A copy to send: the upstream and the request head written for it.
    struct Copy {
        var upstream: Upstream
        var head: ByteBuffer
    }

    let plan: Plan
    /// The request body, up to the capture bound.
    let requestBody: [UInt8]
    /// The serving answer as captured.
    let serving: CapturedResponse
    /// Bytes of the shadow memory budget the request body and serving answer hold until the job is done.
    let reserved: Int
    /// When the job was handed to the shadow loop: from here to a copy's first byte is time spent inside Ficus.
    let handedOver: NIODeadline

    init(plan: Plan, requestBody: [UInt8], serving: CapturedResponse, reserved: Int) {
        self.plan = plan
        self.requestBody = requestBody
        self.serving = serving
        self.reserved = reserved
        self.handedOver = .now()
    }

    /// The observation without the shadow and noise answers, which the shadow loop fills in.
    func observation() -> ShadowObservation {
        ShadowObservation(
            timestamp: self.plan.timestamp,
            requestID: self.plan.requestID,
            route: self.plan.route,
            method: self.plan.view.head.methodString,
            target: self.plan.view.head.target,
            requestHeaders: self.plan.view.head.fieldPairs,
            requestBody: self.requestBody,
            servingUpstream: self.plan.serving,
            serving: self.serving.message,
            shadowUpstream: self.plan.shadow.name,
            shadow: nil,
            shadowError: nil,
            secondUpstream: self.plan.second?.name,
            second: nil
        )
    }

    /// The request as sent to `upstream`: the hygiene and rewrite of a forwarded request, marked as a copy, framed
    /// by a Content-Length when it has a body (the whole body is at hand).
    func copy(to upstream: Upstream) -> Copy {
        let plan = self.plan
        var head = ByteBuffer()
        let rewrite = plan.table.rewrite(route: plan.route, upstream: upstream.name)
        HeaderHygiene.writeRequestHead(
            plan.view.head,
            into: &head,
            client: plan.client,
            viaName: plan.viaName,
            edits: HeaderHygiene.RequestEdits.forRequest(rewrite, view: plan.view),
            upstreamName: upstream.name,
            requestID: plan.requestID,
            shadowCopy: true
        )
        if !self.requestBody.isEmpty {
            head.moveWriterIndex(to: head.writerIndex - 2)
            head.writeString("content-length: \(self.requestBody.count)\r\n\r\n")
        }
        return Copy(upstream: upstream, head: head)
    }
}

/// Sends shadow copies from an event loop of their own and hands finished observations to the sink.
///
/// Client loops only capture and hand over a `ShadowJob`; the copies' connections, writes, deadlines and the reads
/// of their answers (which arrive, say, 200 ms later) all happen on the shadow loop, so a client's request never
/// waits behind another request's shadow work. The in-flight bound is one counter for the whole proxy.
///
/// The shadow loop is given, not created here: its group belongs to whoever built the proxy (`ProxyServer` or the
/// runtime's node), which shuts it down after `shutdown`.
final class ShadowDispatcher: Sendable {
    let eventLoop: EventLoop
    /// The shadow loop's upstream pool; only touched on the shadow loop.
    private let pool: NIOLoopBoundBox<UpstreamPool>
    private let sink: ShadowSink
    private let limits: ShadowLimits
    private let metrics: ProxyMetrics?
    private let inFlight = NIOLockedValueBox(0)
    /// Bytes of captured bodies held by jobs in flight and waiting.
    let memory: ShadowMemory
    /// Which shadowed safe requests are also noise samples.
    let noise: NoiseSampler
    /// Jobs handed over and not yet started, and whether the shadow loop has stopped looking for them.
    private let pending = NIOLockedValueBox(Pending())
    /// The collection timer; only touched on the shadow loop.
    private let collector: NIOLoopBoundBox<Collector>

    /// How often the shadow loop collects handed-over jobs while there are any.
    static let collectInterval: TimeAmount = .milliseconds(5)
    /// Empty collections in a row after which the shadow loop stops looking until the next hand-over (one second).
    static let idleCollections = 200

    struct Pending {
        var jobs: [ShadowJob] = []
        var parked = true
    }

    final class Collector {
        var task: RepeatedTask?
        var idle = 0
    }

    /// Sends copies from `eventLoop`, which must belong to a group given to shadow work alone: its thread is put in
    /// `SCHED_IDLE` (`yieldToClients`), which would starve a client loop sharing it.
    ///
    /// `tlsContexts` are the proxy's client TLS contexts, so that copies to `https://` upstreams are verified with
    /// the same (and the same reloaded) files as client requests.
    init(
        sink: ShadowSink, configuration: ProxyConfiguration, metrics: ProxyMetrics?, eventLoop: EventLoop,
        logger: Logger? = nil, tlsContexts: UpstreamTLSContexts = UpstreamTLSContexts()
    ) {
        self.eventLoop = eventLoop
        let pool = UpstreamPool(
            eventLoop: eventLoop,
            configuration: configuration,
            loops: 1,
            metrics: nil,
            backoff: ConnectBackoff(
                initial: configuration.shadow.connectBackoff,
                maximum: configuration.shadow.connectBackoffMaximum
            ),
            // The shadow side tracks its own ejections: copies never take an address out for clients.
            health: UpstreamHealth(metrics: metrics, logger: logger, side: "shadow")
        )
        pool.tlsContexts = tlsContexts
        self.pool = NIOLoopBoundBox.makeBoxSendingValue(
            pool,
            as: UpstreamPool.self,
            eventLoop: eventLoop
        )
        self.collector = NIOLoopBoundBox.makeBoxSendingValue(Collector(), as: Collector.self, eventLoop: eventLoop)
        self.sink = sink
        self.limits = configuration.shadow
        self.memory = ShadowMemory(limit: configuration.shadow.maxMemoryBytes)
        self.noise = NoiseSampler(floor: configuration.shadow.noiseFloor)
        self.metrics = metrics
        self.eventLoop.execute {
            Self.yieldToClients()
        }
    }

    /// Puts the shadow thread in Linux's `SCHED_IDLE` class: it runs when no client loop (or anything else of normal
    /// priority) wants the core, and a client loop that wakes up takes the core from it at once.
    ///
    /// Shadowing is best-effort by design: a copy that waits a few milliseconds changes nothing, a client that waits
    /// does. Nice 10 was not enough: the scheduler lets a task that has just been given a core run out a protected
    /// slice (up to ~1 ms) before a woken task of higher weight preempts it, and a client request arriving during
    /// a burst of shadow work waited for the burst (issue 5, docs/BENCHMARKS.md); `SCHED_IDLE` tasks are preempted
    /// on every wake-up of a normal one. When the cores are saturated the shadow thread gets almost nothing: copies
    /// then wait, the in-flight bound fills and further copies are dropped and counted, which is the intended order.
    /// The locks the shadow thread shares with client loops (hand-over, in-flight count, routing table) are held for
    /// nanoseconds, so a client loop that finds one held by a preempted shadow thread waits one context switch.
    ///
    /// Linux only; elsewhere the thread keeps its priority, and where `SCHED_IDLE` is refused it falls back to nice 10.
    static func yieldToClients() {
        #if os(Linux)
            var parameters = sched_param(sched_priority: 0)
            // SCHED_IDLE is 5 in <bits/sched.h>; Glibc exports it to Swift only under _GNU_SOURCE.
            if pthread_setschedparam(pthread_self(), 5, &parameters) == 0 { return }
            // Swift does not import gettid(); /proc/thread-self links to "PID/task/TID".
            var link = [CChar](repeating: 0, count: 64)
            let count = readlink("/proc/thread-self", &link, link.count - 1)
            guard count > 0 else { return }
            let text = String(decoding: link[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard let tid = text.split(separator: "/").last.flatMap({ id_t($0) }) else { return }
            _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), tid, 10)
        #endif
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

    /// Gives a slot back, with the bytes its captures held: the job finished, or it was abandoned before it was
    /// dispatched.
    func release(bytes: Int) {
        self.inFlight.withLockedValue { $0 -= 1 }
        self.memory.release(bytes)
    }

    /// Sends `job`'s copies from the shadow loop; the slot taken for it is released when they are all done.
    ///
    /// A hand-over is an append under a lock: the shadow loop collects jobs every `collectInterval` while traffic
    /// flows, so a client loop wakes the shadow thread only for the first job after a quiet second, never once per
    /// request. The copies leave up to 5 ms later, which changes nothing about what is compared.
    func dispatch(_ job: ShadowJob) {
        let wake = self.pending.withLockedValue { pending -> Bool in
            pending.jobs.append(job)
            guard pending.parked else { return false }
            pending.parked = false
            return true
        }
        if wake {
            self.eventLoop.execute {
                self.startCollecting()
            }
        }
    }

    private func startCollecting() {
        let collector = self.collector.value
        collector.idle = 0
        self.collect()
        guard collector.task == nil else { return }
        collector.task = self.eventLoop.scheduleRepeatedTask(
            initialDelay: Self.collectInterval,
            delay: Self.collectInterval
        ) { _ in
            self.collect()
        }
    }

    /// Starts every job handed over since the last collection; parks after `idleCollections` empty ones.
    private func collect() {
        let collector = self.collector.value
        let jobs = self.pending.withLockedValue { pending -> [ShadowJob]? in
            if pending.jobs.isEmpty {
                collector.idle += 1
                guard collector.idle >= Self.idleCollections else { return [] }
                pending.parked = true
                return nil
            }
            collector.idle = 0
            defer { pending.jobs.removeAll(keepingCapacity: true) }
            return pending.jobs
        }
        guard let jobs else {
            collector.task?.cancel()
            collector.task = nil
            return
        }
        for job in jobs {
            self.run(job)
        }
    }

    private func run(_ job: ShadowJob) {
        let flight = ShadowFlight(observation: job.observation()) { observation, reserved, overBudget in
            self.release(bytes: job.reserved + reserved)
            if overBudget {
                // A shadow answer could not be held whole: comparing what was held would report a false difference.
                self.metrics?.shadowDropped(route: job.plan.route, view: job.plan.view, reason: "memory", sent: true)
            } else {
                self.sink.submit(observation)
            }
        }
        // Counted before either copy starts: a copy that fails at once must not finish the flight early.
        flight.outstanding = job.plan.second == nil ? 1 : 2
        self.send(job.copy(to: job.plan.shadow), job: job, flight: flight) { observation, outcome, wait in
            observation.shadowWaitMicroseconds = wait.map { Int(max(0, $0.nanoseconds) / 1000) }
            switch outcome {
            case .answered(let message): observation.shadow = message
            case .failed(let error): observation.shadowError = error
            }
        }
        if let second = job.plan.second {
            self.send(job.copy(to: second), job: job, flight: flight) { observation, outcome, _ in
                if case .answered(let message) = outcome { observation.second = message }
            }
        }
    }

    private func send(
        _ copy: ShadowJob.Copy,
        job: ShadowJob,
        flight: ShadowFlight,
        _ record: @escaping (inout ShadowObservation, ShadowExchange.Outcome, TimeAmount?) -> Void
    ) {
        self.metrics?.shadowSent(route: job.plan.route, upstream: copy.upstream.name)
        let exchange = ShadowExchange(
            upstream: copy.upstream,
            pool: self.pool.value,
            head: copy.head,
            body: job.requestBody,
            method: job.plan.view.head.method,
            limits: self.limits,
            memory: self.memory
        ) { result in
            // Reported on its own, never as the shadow upstream's latency.
            let wait = result.sentAt.map { $0 - job.handedOver }
            if let wait {
                self.metrics?.shadowWait(route: job.plan.route, duration: wait)
            }
            flight.record(reserved: result.reserved, overBudget: result.overBudget) {
                record(&$0, result.outcome, wait)
            }
        }
        exchange.start()
    }

    /// Connects the shadow pool has started (tests: attempts against an address that refuses them).
    func connectsStarted() async throws -> Int {
        let pool = self.pool
        return try await self.eventLoop.submit { pool.value.connectsStarted }.get()
    }

    /// Closes the shadow connections; copies still under way are dropped when the owner of the shadow loop shuts
    /// its group down.
    func shutdown() async {
        let pool = self.pool
        try? await self.eventLoop.submit { pool.value.closeIdle() }.get()
    }
}

/// The copies of one job in flight on the shadow loop; calls `done` with the observation when the last one ends.
///
/// Loop-confined: created, updated and finished on the shadow loop only.
final class ShadowFlight {
    private var observation: ShadowObservation
    /// Called with the observation, the budget bytes the copies' captures held, and whether one was refused bytes.
    private let done: (ShadowObservation, Int, Bool) -> Void
    private var reserved = 0
    private var overBudget = false
    var outstanding = 0

    init(observation: ShadowObservation, done: @escaping (ShadowObservation, Int, Bool) -> Void) {
        self.observation = observation
        self.done = done
    }

    func record(reserved: Int, overBudget: Bool, _ update: (inout ShadowObservation) -> Void) {
        update(&self.observation)
        self.reserved += reserved
        self.overBudget = self.overBudget || overBudget
        self.outstanding -= 1
        if self.outstanding == 0 {
            self.done(self.observation, self.reserved, self.overBudget)
        }
    }
}
