import FicusCore
import Logging
import NIOCore
import NIOPosix

/// Runs the active health checks of a proxy's upstreams on one event loop: the NIO shell of `HealthCheckState`.
///
/// Every 100 ms it asks the state which addresses are due (following the routing table as revisions change), sends
/// each a `GET PATH HTTP/1.1` on a connection of its own (`Connection: close`, so a check never holds a pooled
/// connection), reads the status line within the timeout, and reports the outcome. Transitions take an address out
/// of rotation or bring it back in `UpstreamHealth`, which the pools consult as they do for ejections. An `https://`
/// address is checked over TLS with its upstream's context from `tlsContexts`, the one its requests use (issue 19:
/// the same verification, SNI and client certificate), so a certificate its requests would refuse fails its checks.
final class HealthChecker: Sendable {
    private let eventLoop: EventLoop
    private let routing: RoutingState
    private let health: UpstreamHealth
    private let tlsContexts: UpstreamTLSContexts
    private let metrics: ProxyMetrics?
    private let logger: Logger
    /// The state and the repeating task, confined to `eventLoop`.
    private let box: NIOLoopBoundBox<Running>

    private final class Running {
        var state = HealthCheckState()
        /// The table the last `due` was asked with; while it is in force and `state.earliestDue` is ahead, a tick
        /// has nothing to do (and skips sorting the table's upstreams and hashing every address ten times a second).
        var table: RoutingTable?
        var task: RepeatedTask?
        var stopped = false
    }

    init(
        eventLoop: EventLoop, routing: RoutingState, health: UpstreamHealth, tlsContexts: UpstreamTLSContexts,
        metrics: ProxyMetrics?, logger: Logger
    ) {
        self.eventLoop = eventLoop
        self.routing = routing
        self.health = health
        self.tlsContexts = tlsContexts
        self.metrics = metrics
        self.logger = logger
        self.box = NIOLoopBoundBox.makeBoxSendingValue(Running(), eventLoop: eventLoop)
    }

    /// Starts checking; the first checks of every address run at once.
    func start() {
        self.eventLoop.execute {
            let running = self.box.value
            guard !running.stopped, running.task == nil else { return }
            running.task = self.eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(100)) { _ in
                self.tick()
            }
        }
    }

    /// Stops checking (shutdown); checks under way finish on their own.
    func stop() {
        self.eventLoop.execute {
            let running = self.box.value
            running.stopped = true
            running.task?.cancel()
            running.task = nil
        }
    }

    private func tick() {
        let running = self.box.value
        guard !running.stopped else { return }
        let table = self.routing.current
        let now = self.eventLoop.now
        if running.table === table, running.state.earliestDue.map({ now < $0 }) ?? true { return }  // nil: none checked
        running.table = table
        let (probes, forgotten) = running.state.due(upstreams: table.upstreams, now: now)
        for target in forgotten {
            self.health.setHealthChecked(upstream: target.upstream, address: target.address, healthy: true)
        }
        for probe in probes {
            self.run(probe)
        }
    }

    private func run(_ probe: HealthCheckState.Probe) {
        let promise = self.eventLoop.makePromise(of: Int.self)
        let request = "GET \(probe.path) HTTP/1.1\r\nHost: \(probe.host)\r\nUser-Agent: ficus-health-check\r\n"
            + "Connection: close\r\n\r\n"
        let tls: UnsafeTransfer<TLSClientSetup>?
        do {
            tls = try probe.endpoint.tls
                ? UnsafeTransfer(
                    self.tlsContexts.clientSetup(
                        for: probe.tls, endpoint: probe.endpoint, eventLoop: self.eventLoop, timeout: probe.timeout))
                : nil
        } catch {
            // The upstream's TLS files cannot be used: its requests fail the same way, and so does the check.
            self.finished(probe, ok: false, detail: String(describing: error))
            return
        }
        // A refused certificate fails the check with the waiter's reason ("TLS handshake with ... failed: ...").
        tls?.value.waiter.handshake.whenFailure { promise.fail($0) }
        let connected: EventLoopFuture<Channel>
        let bootstrap = ClientBootstrap(group: self.eventLoop)
            .connectTimeout(probe.timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try tls.value.addHandlers(to: channel)
                    }
                    let handler = HealthProbeHandler(request: request, status: promise)
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        if let address = try? SocketAddress(ipAddress: probe.endpoint.host, port: probe.endpoint.port) {
            connected = bootstrap.connect(to: address)
        } else {
            connected = bootstrap.connect(host: probe.endpoint.host, port: probe.endpoint.port)
        }
        connected.whenFailure { promise.fail($0) }
        let deadline = self.eventLoop.scheduleTask(in: probe.timeout) {
            promise.fail(ChannelError.connectTimeout(probe.timeout))
        }
        promise.futureResult.whenComplete { result in
            deadline.cancel()
            connected.whenSuccess { $0.close(promise: nil) }
            switch result {
            case .success(let status):
                self.finished(probe, ok: HealthCheckState.isExpected(status, probe.expect), detail: "status \(status)")
            case .failure(let error):
                self.finished(probe, ok: false, detail: String(describing: error))
            }
        }
    }

    private func finished(_ probe: HealthCheckState.Probe, ok: Bool, detail: String) {
        let running = self.box.value
        self.metrics?.healthCheck(upstream: probe.target.upstream, result: ok ? "ok" : "failed")
        let transition = running.state.finished(probe.target, ok: ok)
        let check = "GET \(probe.path)"
        guard let transition else {
            if !ok, running.state.isUnhealthy(probe.target) {
                // Still out: `/upstreams` shows the latest reason, which may not be the one that took it out.
                self.health.setHealthChecked(
                    upstream: probe.target.upstream, address: probe.target.address, healthy: false,
                    failure: "\(check): \(detail)")
            }
            return
        }
        let healthy = transition == .healthy(probe.target)
        self.health.setHealthChecked(
            upstream: probe.target.upstream, address: probe.target.address, healthy: healthy,
            failure: healthy ? nil : "\(check): \(detail)")
        self.logger.warning(
            healthy ? "address healthy again" : "address unhealthy",
            metadata: [
                "upstream": "\(probe.target.upstream)", "address": "\(probe.target.address)",
                "check": "\(check)", "last": "\(detail)",
            ]
        )
    }
}

/// Sends one health check request and reads the status of its answer, then closes.
private final class HealthProbeHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let request: String
    private let status: EventLoopPromise<Int>
    private var received = ByteBuffer()

    init(request: String, status: EventLoopPromise<Int>) {
        self.request = request
        self.status = status
    }

    func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: self.request)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var part = self.unwrapInboundIn(data)
        // The status line is all that is read; a few hundred bytes bound it.
        if self.received.readableBytes < 512 { self.received.writeBuffer(&part) }
        let bytes = self.received.readableBytesView
        guard let end = bytes.firstIndex(of: UInt8(ascii: "\n")) ?? (bytes.count >= 512 ? bytes.endIndex : nil) else {
            return
        }
        let line = String(decoding: bytes[bytes.startIndex..<end], as: UTF8.self)
        let parts = line.split(separator: " ", maxSplits: 2)
        if parts.count >= 2, parts[0].hasPrefix("HTTP/1."), parts[1].count == 3, let code = Int(parts[1]) {
            self.status.succeed(code)
        } else {
            self.status.fail(HTTPFramingError(.badStartLine, "not an HTTP/1 status line"))
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.status.fail(ChannelError.eof)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.status.fail(error)
        context.close(promise: nil)
    }
}
