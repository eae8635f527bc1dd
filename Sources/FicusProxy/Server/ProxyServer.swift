import FicusCore
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// The routing table in force, swapped atomically when a new revision arrives.
///
/// A request reads the table once, when its head arrives, and keeps it: requests in flight finish on the table they
/// started with.
public final class RoutingState: Sendable {
    private let box: NIOLockedValueBox<RoutingTable>

    public init(_ table: RoutingTable) {
        self.box = NIOLockedValueBox(table)
    }

    public var current: RoutingTable { self.box.withLockedValue { $0 } }

    public func replace(with table: RoutingTable) {
        self.box.withLockedValue { $0 = table }
    }
}

/// What each event loop owns: its upstream pool.
///
/// Keeping it per loop is what keeps the hot path free of locks and thread hops. Shadow copies use the shadow
/// loop's own pool (`ShadowDispatcher`), so they can never take a connection a client needs.
final class LoopResources {
    let eventLoop: EventLoop
    let pool: UpstreamPool
    /// Which `stale_if_error` keys this loop knows to have a fresh copy.
    let staleFreshness = StaleFreshness()

    init(
        eventLoop: EventLoop,
        configuration: ProxyConfiguration,
        loops: Int,
        metrics: ProxyMetrics?,
        transport: UpstreamTransport = .sockets,
        health: UpstreamHealth? = nil
    ) {
        self.eventLoop = eventLoop
        self.pool = UpstreamPool(
            eventLoop: eventLoop,
            configuration: configuration,
            loops: loops,
            metrics: metrics,
            transport: transport,
            health: health
        )
    }
}

/// The proxy listener: accepts client connections and gives each event loop its own upstream pool.
public final class ProxyServer: Sendable {
    let shared: ProxyContext
    private let group: EventLoopGroup
    /// The shadow loop's group when this server created it (no `shadowGroup` was given): shut down with the server.
    private let ownedShadowGroup: MultiThreadedEventLoopGroup?
    private let loops: [ObjectIdentifier: UnsafeTransfer<LoopResources>]
    private let state = NIOLockedValueBox(ServerState())
    /// Runs the upstreams' active health checks on the first event loop.
    private let healthChecker: HealthChecker

    struct ServerState {
        var channel: Channel?
        var phase = Phase.serving
        var children: [ObjectIdentifier: Channel] = [:]
        var drained: [CheckedContinuation<Void, Never>] = []
        /// The listener's TLS context holder, when the listener speaks TLS (made by `start`).
        var tls: ServerTLSContext?
    }

    /// Where the server is in its life; decides what happens to a connection whose initializer runs now.
    enum Phase {
        /// Connections are admitted and served.
        case serving
        /// The listener is closed; a connection the kernel had already accepted is still admitted, but drains
        /// at once (its request, if one is on the wire, is answered with `Connection: close`).
        case draining
        /// The drain is over: a connection arriving now is closed unanswered.
        case stopped
    }

    /// Builds a proxy serving on `group`'s loops; nothing listens until `start`.
    ///
    /// With a `shadowSink`, shadow copies are sent from a loop of `shadowGroup`, a group given to shadow work alone
    /// (its thread is put in `SCHED_IDLE`, see `ShadowDispatcher`) that the caller owns and shuts down after
    /// `shutdown`; without one, the server creates a one-thread group and shuts it down at the end of `shutdown`.
    public init(
        configuration: ProxyConfiguration,
        routing: RoutingState,
        metrics: ProxyMetrics?,
        logger: Logger,
        group: EventLoopGroup,
        shadowSink: ShadowSink? = nil,
        shadowGroup: EventLoopGroup? = nil,
        accessLogSink: AccessLogSink? = nil,
        rateLimiter: RateLimiter = RateLimiter()
    ) {
        var shadow: ShadowDispatcher?
        var ownedShadowGroup: MultiThreadedEventLoopGroup?
        // One set of client TLS contexts for requests, shadow copies and health checks (issue 19: the same settings).
        let upstreamTLS = UpstreamTLSContexts()
        if let shadowSink {
            let loops: EventLoopGroup
            if let shadowGroup {
                loops = shadowGroup
            } else {
                let created = MultiThreadedEventLoopGroup(numberOfThreads: 1)
                ownedShadowGroup = created
                loops = created
            }
            shadow = ShadowDispatcher(
                sink: shadowSink,
                configuration: configuration,
                metrics: metrics,
                eventLoop: loops.next(),
                logger: logger,
                tlsContexts: upstreamTLS
            )
        }
        self.ownedShadowGroup = ownedShadowGroup
        let health = UpstreamHealth(metrics: metrics, logger: logger)
        self.shared = ProxyContext(
            configuration: configuration,
            routing: routing,
            metrics: metrics,
            logger: logger,
            shadow: shadow,
            accessLogSink: accessLogSink,
            rateLimiter: rateLimiter,
            health: health,
            upstreamTLS: upstreamTLS
        )
        self.group = group
        let loops = Array(group.makeIterator())
        self.healthChecker = HealthChecker(
            eventLoop: group.next(), routing: routing, health: health, tlsContexts: upstreamTLS, metrics: metrics,
            logger: logger)
        var resources: [ObjectIdentifier: UnsafeTransfer<LoopResources>] = [:]
        for loop in loops {
            let loopResources = LoopResources(
                eventLoop: loop, configuration: configuration, loops: loops.count, metrics: metrics, health: health)
            loopResources.pool.tlsContexts = self.shared.upstreamTLS
            resources[ObjectIdentifier(loop)] = UnsafeTransfer(loopResources)
        }
        self.loops = resources
    }

    /// The proxy's rate limit state: the runtime tells it how many proxies share the fleet's limits.
    public var rateLimiter: RateLimiter { self.shared.rateLimiter }

    /// The address the proxy is bound to (after `start`).
    public var localAddress: SocketAddress? {
        self.state.withLockedValue { $0.channel?.localAddress }
    }

    /// Binds the listener and starts accepting connections.
    ///
    /// With `configuration.tls`, the certificate and key are read first: files that cannot be used throw
    /// `TLSFileError` before anything listens.
    public func start() async throws {
        let configuration = self.shared.configuration
        // Contexts for the https:// upstreams of the starting configuration, built here rather than on a loop.
        for (upstream, error) in self.shared.upstreamTLS.prepare(self.shared.routing.current.configuration.upstreams) {
            self.shared.logger.warning(
                "TLS settings of an upstream cannot be used yet; its connections will fail until they can",
                metadata: ["upstream": "\(upstream)", "error": "\(error)"]
            )
        }
        if var tls = configuration.tls {
            tls.applicationProtocols = configuration.http2.enabled ? ["h2", "http/1.1"] : ["http/1.1"]
            let context = try ServerTLSContext(configuration: tls)
            self.state.withLockedValue { $0.tls = context }
        }
        let bootstrap = ServerBootstrap(group: self.group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            // A client connection keeps its last read buffer between requests (NIO's pooled receive buffer), so its
            // first size is what an idle keep-alive connection holds: 1 KiB (nginx's `client_header_buffer_size`)
            // rather than NIO's 2 KiB. It still doubles on full reads for long heads and bodies (docs/BENCHMARKS.md,
            // "RSS per idle connection").
            .childChannelOption(
                .recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 1024, maximum: 65536))
            .childChannelInitializer { channel in
                self.initializeChild(channel)
            }
        let channel = try await bootstrap.bind(host: configuration.listenHost, port: configuration.listenPort).get()
        self.healthChecker.start()
        self.state.withLockedValue { $0.channel = channel }
    }

    /// Admits (or refuses) one accepted client connection according to the server's phase.
    ///
    /// Internal, not private, so that a test can hand it connections from a listener of its own: the race it
    /// resolves (a connection accepted before the listener closed, initialized after) cannot be forced otherwise.
    func initializeChild(_ channel: Channel) -> EventLoopFuture<Void> {
        guard let resources = self.loops[ObjectIdentifier(channel.eventLoop)] else {
            return channel.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
        }
        let id = ObjectIdentifier(channel)
        let limit = self.shared.configuration.maxConnections
        let admitted = self.state.withLockedValue { state -> (Phase, Bool, NIOSSLContext?) in
            guard state.phase != .stopped else { return (state.phase, false, nil) }
            guard state.children.count < limit else { return (state.phase, false, nil) }
            state.children[id] = channel
            return (state.phase, true, state.tls?.current)
        }
        let phase = admitted.0
        let tls = admitted.2
        guard phase != .stopped else { return channel.close() }
        guard admitted.1 else {
            // Over the connection limit: closed at once, unanswered (an answer would cost what the limit protects).
            self.shared.metrics?.connectionRejected(reason: "max_connections")
            return channel.close()
        }
        channel.closeFuture.whenComplete { _ in
            let waiters = self.state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
                state.children[id] = nil
                guard state.children.isEmpty else { return [] }
                defer { state.drained.removeAll() }
                return state.drained
            }
            for waiter in waiters { waiter.resume() }
        }
        return channel.eventLoop.makeCompletedFuture {
            if let tls {
                // The context in force when the connection was accepted: a later reload leaves this one alone.
                try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                try channel.pipeline.syncOperations.addHandler(
                    TLSHandshakeDeadline(timeout: self.shared.configuration.timeouts.clientHeader)
                )
            }
            if tls != nil, self.shared.configuration.http2.enabled {
                // HTTP/1.1 or HTTP/2 by ALPN, once the handshake is done (`ProxyServer+HTTP2.swift`).
                try channel.pipeline.syncOperations.addHandler(self.protocolNegotiation(resources: resources))
            } else {
                try channel.pipeline.syncOperations.addHandler(
                    ProxyConnectionHandler(shared: self.shared, resources: resources.value)
                )
            }
            if phase == .draining {
                // Accepted by the kernel before the listener closed, initialized after the drain began: it missed
                // the drain's signal, so it gets it now.
                channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
            }
        }
    }

    /// The health of every address of every configured upstream (in rotation unless ejected), for `/upstreams`,
    /// `ficus status --admin` and tests.
    ///
    /// The idle slot of a blue-green upstream follows under its preview name (`orders@green`): its addresses are
    /// health-checked too, and previews are ejected under that name.
    public func upstreamStates() -> [UpstreamAddressState] {
        let now = NIODeadline.now()
        let wall = Date()
        var records: [String: OutlierState.AddressStatus] = [:]
        for status in self.shared.health.statuses(now: now) {
            records[status.upstream + " " + status.address] = status
        }
        let unhealthy = self.shared.health.unhealthyAddresses()
        var result: [UpstreamAddressState] = []
        for upstream in self.shared.routing.current.upstreams {
            var listed: [(name: String, addresses: [Endpoint])] = [(upstream.name, upstream.addresses)]
            if let slots = upstream.slots, !slots[slots.idle].isEmpty {
                listed.append((Upstream.previewName(upstream.name, slot: slots.idle), slots[slots.idle]))
            }
            for (name, addresses) in listed {
                for endpoint in addresses {
                    let record = records[name + " " + endpoint.address]
                    let failure = unhealthy[upstream.name]?[endpoint.address]
                    result.append(
                        UpstreamAddressState(
                            upstream: name,
                            address: endpoint.address,
                            weight: endpoint.effectiveWeight,
                            outlierDetection: upstream.outlier?.isEnabled == true,
                            ejectedUntil: record?.ejectedUntil.map {
                                wall.addingTimeInterval(Double(($0 - now).nanoseconds) / 1e9)
                            },
                            timesEjected: record?.timesEjected ?? 0,
                            consecutive5xx: record?.consecutive5xx ?? 0,
                            consecutiveGatewayFailures: record?.consecutiveGatewayFailures ?? 0,
                            healthCheck: upstream.healthCheck == nil ? nil : failure == nil ? "healthy" : "unhealthy",
                            healthCheckFailure: upstream.healthCheck == nil ? nil : failure
                        )
                    )
                }
            }
        }
        return result
    }

    /// `upstreamStates()` as the JSON body of `/upstreams` (`{"upstreams":[...]}`, times in ISO 8601).
    public func upstreamStatesJSON() -> String {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(["addresses": self.upstreamStates()]) else { return "{\"addresses\":[]}\n" }
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// Moves the ejection clock forward (tests: an ejection ends without sleeping through it).
    func advanceHealthClock(by amount: TimeAmount) {
        self.shared.health.advanceClock(by: amount)
    }

    /// Retries in flight to `upstream` (tests).
    func retriesInFlight(_ upstream: String) -> Int {
        self.shared.health.retriesInFlight(upstream)
    }

    /// Re-reads the listener's certificate files and uses them for new connections if they changed (or `force`).
    ///
    /// Returns whether the context was replaced (false without TLS). Blocking file I/O: call it off the event
    /// loops. Throws `TLSFileError` when the new files cannot be used; the context in force then stays.
    @discardableResult
    public func reloadTLS(force: Bool = false) throws -> Bool {
        guard let tls = self.state.withLockedValue({ $0.tls }) else { return false }
        return try tls.reload(force: force)
    }

    /// Re-reads the upstreams' `ca_file`, `client_cert` and `client_key` of every client TLS context in use and
    /// swaps in new contexts for those whose files changed (or all, with `force`).
    ///
    /// New connections of the request pools, the shadow pool and the health checks use the new files; pooled
    /// connections keep theirs. A file that cannot be used is in `failures` and its context stays in force. Blocking
    /// file I/O: call it off the event loops.
    public func reloadUpstreamTLS(force: Bool = false) -> UpstreamTLSReload {
        let inUse = UpstreamTLSContexts.settings(of: self.shared.routing.current.configuration.upstreams)
        let reload = self.shared.upstreamTLS.reload(force: force, inUse: inUse)
        return UpstreamTLSReload(replaced: reload.replaced.map(\.files), failures: reload.failures)
    }

    /// The shadow side of this proxy, if it shadows (tests).
    var shadowDispatcher: ShadowDispatcher? { self.shared.shadow }

    /// Whether a graceful shutdown has begun: `/healthz` then answers 503 so load balancers stop sending.
    public var isDraining: Bool {
        self.state.withLockedValue { $0.phase != .serving }
    }

    /// Client connections open right now.
    public var openConnections: Int {
        self.state.withLockedValue { $0.children.count }
    }

    /// Stops accepting, lets in-flight requests finish for up to `drainTimeout`, then closes what is left.
    public func shutdown(drainTimeout: TimeAmount? = nil) async {
        let timeout = drainTimeout ?? self.shared.configuration.drainTimeout
        let listener = self.state.withLockedValue { state -> Channel? in
            defer { state.channel = nil }
            if state.phase == .serving { state.phase = .draining }  // a second shutdown must not reopen the door
            return state.channel
        }
        try? await listener?.close()
        self.healthChecker.stop()
        let children = self.state.withLockedValue { Array($0.children.values) }
        for child in children {
            child.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let done = self.state.withLockedValue { state -> Bool in
                        if state.children.isEmpty { return true }
                        state.drained.append(continuation)
                        return false
                    }
                    if done { continuation.resume() }
                }
            }
            group.addTask {
                try? await Task.sleep(nanoseconds: UInt64(max(0, timeout.nanoseconds)))
            }
            await group.next()
            group.cancelAll()
            let left = self.state.withLockedValue { state -> [Channel] in
                state.phase = .stopped
                return Array(state.children.values)
            }
            for child in left { child.close(promise: nil) }
            await group.next()
        }
        for resources in self.loops.values {
            let value = resources
            try? await resources.value.eventLoop.submit {
                value.value.pool.closeIdle()
            }.get()
        }
        await self.shared.shadow?.shutdown()
        try? await self.ownedShadowGroup?.shutdownGracefully()
    }
}

/// What `ProxyServer.reloadUpstreamTLS` did.
public struct UpstreamTLSReload: Sendable, Equatable {
    /// The files of each context replaced (`ca_file`, `client_cert`, `client_key`, those set).
    public var replaced: [[String]]
    /// The files that could not be used, each with its reason; the context in force stays for them.
    public var failures: [TLSFileError]
}
