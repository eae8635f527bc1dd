import FicusCore
import NIOCore
import NIOPosix

/// Someone waiting for an upstream connection.
protocol UpstreamConnectionRequester: AnyObject {
    func connectionReady(_ connection: UpstreamConnection, reused: Bool)
    func connectionFailed(_ failure: UpstreamFailure)
}

/// How an upstream pool opens its connections: sockets, or a connector that a test or harness injects.
///
/// Injecting the transport (house style) lets `ProxyConnectionHandler` run with an `EmbeddedChannel` as its upstream,
/// so whole exchanges can be driven byte by byte without a socket; `.sockets` is the production path, unchanged.
enum UpstreamTransport {
    /// What a connector is asked to open: a channel on `eventLoop` whose only handler is `connection`.
    struct ConnectRequest {
        var eventLoop: EventLoop
        var endpoint: Endpoint
        /// The socket address when the endpoint is an IP literal, nil for host names.
        var socketAddress: SocketAddress?
        var connectTimeout: TimeAmount
        var connection: UpstreamConnection
    }

    /// TCP through `ClientBootstrap`: IP literals connected directly, host names resolved per connect.
    case sockets

    /// Anything that hands back an active channel with `connection` in its pipeline (or fails like a connect).
    case connector((ConnectRequest) -> EventLoopFuture<Channel>)
}

/// The keep-alive connections of one event loop to every upstream: the NIO shell of `UpstreamPoolStateMachine`.
///
/// One pool per event loop means no locks and no thread hops on the hot path; the configured limits are divided
/// among the loops. Loop-confined: every method must be called on `eventLoop`. The shell decides nothing: it turns
/// calls and connect outcomes into the machine's events, with the event loop's clock, and carries out what comes back
/// in `run(_:upstream:)`.
///
/// With a `ConnectBackoff` (the shadow loop's pool), an address whose connect failed is not tried again until its
/// pause is over, and then by one connect at a time: a copy that would need it goes to another address of the
/// upstream or fails at once ("not tried"), instead of opening a socket that will be refused, or waiting out a
/// connect timeout, once per request. Client pools have none: a client's request always gets its attempt.
final class UpstreamPool {
    typealias StateMachine = UpstreamPoolStateMachine<UpstreamConnection, any UpstreamConnectionRequester>

    let eventLoop: EventLoop
    let metrics: ProxyMetrics?
    private var machine: StateMachine
    let timeouts: ProxyConfiguration.Timeouts
    private let transport: UpstreamTransport
    /// Which addresses are out of rotation, shared with the proxy's other loops; nil: no ejection (harnesses).
    let health: UpstreamHealth?
    /// The last revision's version of each upstream with an outlier policy, to record connect failures against.
    private var watched: [String: Upstream] = [:]
    /// Connects started, for tests that count attempts against an address that refuses them.
    private(set) var connectsStarted = 0
    /// TLS for `https://` addresses (`UpstreamPool+TLS.swift`): contexts (the proxy's loops share theirs), and the
    /// settings of upstreams that have their own.
    var tlsContexts = UpstreamTLSContexts()
    var tlsSettings: [String: UpstreamTLSSettings] = [:]

    init(
        eventLoop: EventLoop,
        configuration: ProxyConfiguration,
        loops: Int,
        metrics: ProxyMetrics?,
        backoff: ConnectBackoff? = nil,
        transport: UpstreamTransport = .sockets,
        health: UpstreamHealth? = nil
    ) {
        self.eventLoop = eventLoop
        self.transport = transport
        self.health = health
        self.machine = StateMachine(
            limits: StateMachine.Limits(
                maxConnections: max(1, (configuration.pool.maxConnectionsPerUpstream + loops - 1) / loops),
                maxPending: max(0, (configuration.pool.maxPendingPerUpstream + loops - 1) / loops),
                backoff: backoff,
                loops: loops
            ),
            seed: UInt64.random(in: 1...UInt64.max)
        )
        self.timeouts = configuration.timeouts
        self.metrics = metrics
    }

    /// Hands `requester` a connection now, later (queued), or a failure; `fresh` refuses idle connections.
    ///
    /// An upstream with an outlier policy is picked from among its addresses in rotation (asked of `health`).
    func acquire(_ upstream: Upstream, for requester: UpstreamConnectionRequester, fresh: Bool = false) {
        self.noteTLSSettings(upstream)
        let now = self.eventLoop.now
        var ejected: [String] = []
        if let health = self.health, UpstreamHealth.watches(upstream) {
            ejected = health.ejected(upstream, now: now)
            self.watched[upstream.name] = upstream
        } else if !self.watched.isEmpty {
            self.watched[upstream.name] = nil  // its policy was removed: connect failures are no longer counted
        }
        let action = self.machine.leaseRequested(upstream, by: requester, fresh: fresh, now: now, ejected: ejected)
        self.run(action, upstream: upstream.name)
    }

    /// This loop's requests in flight per address of `upstream` (tests).
    func activeRequests(upstream: String) -> [String: Int] {
        self.machine.activeRequests(upstream: upstream)
    }

    /// Withdraws a queued request (its client went away or its wait timed out).
    func cancel(_ requester: UpstreamConnectionRequester, upstream: String) {
        self.machine.waiterCancelled(upstream: upstream) { $0 === requester }
    }

    /// Takes back a connection whose exchange ended cleanly.
    func release(_ connection: UpstreamConnection) {
        self.run(self.machine.connectionReleased(connection), upstream: connection.upstream)
    }

    /// Accounts for a closed connection and lets the next waiter open one.
    func connectionClosed(_ connection: UpstreamConnection) {
        self.run(self.machine.connectionClosed(connection, now: self.eventLoop.now), upstream: connection.upstream)
    }

    /// Closes every idle connection (shutdown).
    func closeIdle() {
        for (upstream, action) in self.machine.shutdownStarted() {
            self.run(action, upstream: upstream)
        }
    }

    /// Carries out one of the machine's actions.
    ///
    /// Called only once the machine has returned: a close or a requester's callback may come straight back into the
    /// pool (a closed connection's `connectionClosed`, a release, a new lease), and then finds it consistent.
    private func run(_ action: StateMachine.Action, upstream: String) {
        if action.openDelta != 0 { self.metrics?.openConnections(upstream, delta: action.openDelta) }
        if action.idleDelta != 0 { self.metrics?.idleConnections(upstream, delta: action.idleDelta) }
        if action.waitsAtConnectionLimit { self.metrics?.overflow(upstream: upstream, reason: "max_connections") }
        for connection in action.close {
            connection.close()
        }
        switch action.request {
        case .none:
            break
        case .lease(let connection, let requester, let reused):
            requester.connectionReady(connection, reused: reused)
        case .connect(let target, let requester):
            self.connect(target, for: requester)
        case .fail(let requester, let failure):
            switch failure {
            case .poolExhausted: self.metrics?.overflow(upstream: upstream, reason: "max_pending")
            case .overflow(let limit): self.metrics?.overflow(upstream: upstream, reason: limit.rawValue)
            default: break
            }
            requester.connectionFailed(failure)
        }
    }

    /// Opens a connection for `requester` through the transport; success or failure comes back to the machine.
    ///
    /// A connect timeout is told apart from other failures because clients get 503 for it and 502 for the rest.
    private func connect(_ target: StateMachine.ConnectTarget, for requester: UpstreamConnectionRequester) {
        self.connectsStarted += 1
        let connection = UpstreamConnection(
            upstream: target.upstream, endpoint: target.endpoint, idleTimeout: self.timeouts.upstreamIdle)
        connection.pool = self
        let connected: EventLoopFuture<Channel>
        switch self.transport {
        case .sockets:
            let handler = UnsafeTransfer(connection)
            let tls: UnsafeTransfer<TLSClientSetup>?
            do {
                tls = try self.tlsSetup(for: target).map { UnsafeTransfer($0) }
            } catch {
                self.connectFailed(target, for: requester, failure: .connectFailed(String(describing: error)))
                return
            }
            let bootstrap = ClientBootstrap(group: self.eventLoop)
                .connectTimeout(self.timeouts.connect)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelOption(.autoRead, value: true)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls {
                            try tls.value.addHandlers(to: channel)
                        }
                        try channel.pipeline.syncOperations.addHandler(handler.value)
                    }
                }
            // An IP literal is connected to directly: `connect(host:port:)` would resolve it with getaddrinfo on a
            // libdispatch thread and race it through Happy Eyeballs at every new connection (a third of the shadow
            // loop's time with a dead shadow upstream, where every copy connects). Host names still resolve per
            // connect.
            let socket: EventLoopFuture<Channel>
            if let address = target.socketAddress {
                socket = bootstrap.connect(to: address)
            } else {
                socket = bootstrap.connect(host: target.endpoint.host, port: target.endpoint.port)
            }
            // A TLS connection is ready once its handshake is done, not when its socket is.
            if let tls {
                connected = socket.flatMap { channel in tls.value.waiter.handshake.map { channel } }
            } else {
                connected = socket
            }
        case .connector(let connect):
            connected = connect(
                UpstreamTransport.ConnectRequest(
                    eventLoop: self.eventLoop,
                    endpoint: target.endpoint,
                    socketAddress: target.socketAddress,
                    connectTimeout: self.timeouts.connect,
                    connection: connection
                )
            )
        }
        let context = UnsafeTransfer((pool: self, connection: connection, requester: requester))
        connected.whenComplete { result in
            let (pool, connection, requester) = context.value
            switch result {
            case .success:
                pool.run(pool.machine.connectSucceeded(connection, for: requester), upstream: target.upstream)
            case .failure(ChannelError.connectTimeout):
                pool.connectFailed(target, for: requester, failure: .connectTimeout)
            case .failure(let error):
                pool.connectFailed(target, for: requester, failure: .connectFailed(String(describing: error)))
            }
        }
    }

    private func connectFailed(
        _ target: StateMachine.ConnectTarget, for requester: UpstreamConnectionRequester, failure: UpstreamFailure
    ) {
        let now = self.eventLoop.now
        if let health = self.health, let upstream = self.watched[target.upstream] {
            health.record(.localFailure, upstream: upstream, address: target.endpoint.address, now: now)
        }
        let action = self.machine.connectFailed(target, for: requester, failure: failure, now: now)
        self.run(action, upstream: target.upstream)
    }
}
