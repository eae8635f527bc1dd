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

/// The keep-alive connections of one event loop to every upstream.
///
/// One pool per event loop means no locks and no thread hops on the hot path; the configured limits are divided
/// among the loops. Loop-confined: every method must be called on `eventLoop`.
///
/// With a `ConnectBackoff` (the shadow loop's pool), an address whose connect failed is not tried again until its
/// pause is over, and then by one connect at a time: a copy that would need it goes to another address of the
/// upstream or fails at once ("not tried"), instead of opening a socket that will be refused, or waiting out a
/// connect timeout, once per request. Client pools have none: a client's request always gets its attempt.
final class UpstreamPool {
    final class Entry {
        var addresses: [Endpoint] = []
        /// Parallel to `addresses`: the socket address of each one that is an IP literal, nil for host names.
        var socketAddresses: [SocketAddress?] = []
        var next = 0
        /// Parallel to `addresses` (pools with a back-off only): connects failed in a row, the time before which
        /// none is tried, and whether one is under way after a failure (others then wait for its outcome).
        var failures: [Int] = []
        var retryAt: [NIODeadline] = []
        var probing: [Bool] = []
        /// Idle connections per address, parallel to `addresses`.
        var idle: [[UpstreamConnection]] = []
        var open = 0
        var waiters = CircularBuffer<UpstreamConnectionRequester>()
    }

    let eventLoop: EventLoop
    private let maxConnections: Int
    private let maxPending: Int
    private let timeouts: ProxyConfiguration.Timeouts
    private var entries: [String: Entry] = [:]
    let metrics: ProxyMetrics?
    private let backoff: ConnectBackoff?
    private let transport: UpstreamTransport
    /// Connects started, for tests that count attempts against an address that refuses them.
    private(set) var connectsStarted = 0

    init(
        eventLoop: EventLoop,
        configuration: ProxyConfiguration,
        loops: Int,
        metrics: ProxyMetrics?,
        backoff: ConnectBackoff? = nil,
        transport: UpstreamTransport = .sockets
    ) {
        self.eventLoop = eventLoop
        self.backoff = backoff
        self.transport = transport
        self.maxConnections = max(1, (configuration.pool.maxConnectionsPerUpstream + loops - 1) / loops)
        self.maxPending = max(0, (configuration.pool.maxPendingPerUpstream + loops - 1) / loops)
        self.timeouts = configuration.timeouts
        self.metrics = metrics
    }

    private func entry(for upstream: Upstream) -> Entry {
        let entry: Entry
        if let existing = self.entries[upstream.name] {
            entry = existing
        } else {
            entry = Entry()
            self.entries[upstream.name] = entry
        }
        if entry.addresses != upstream.addresses {
            // A new revision moved the upstream: new connections go to the new addresses; idle connections to old
            // ones are closed, in-flight ones finish where they are.
            var idle = Array(repeating: [UpstreamConnection](), count: upstream.addresses.count)
            for (index, connections) in entry.idle.enumerated() where index < entry.addresses.count {
                if let moved = upstream.addresses.firstIndex(of: entry.addresses[index]) {
                    idle[moved] = connections
                } else {
                    for connection in connections {
                        self.metrics?.idleConnections(upstream.name, delta: -1)
                        connection.close()
                    }
                }
            }
            entry.addresses = upstream.addresses
            entry.socketAddresses = upstream.addresses.map { try? SocketAddress(ipAddress: $0.host, port: $0.port) }
            entry.failures = Array(repeating: 0, count: upstream.addresses.count)
            entry.retryAt = Array(repeating: .distantPast, count: upstream.addresses.count)
            entry.probing = Array(repeating: false, count: upstream.addresses.count)
            entry.idle = idle
            entry.next = 0
        }
        return entry
    }

    /// Hands `requester` a connection now, later (queued), or a failure.
    func acquire(_ upstream: Upstream, for requester: UpstreamConnectionRequester, fresh: Bool = false) {
        let entry = self.entry(for: upstream)
        guard !entry.addresses.isEmpty else {
            requester.connectionFailed(.connectFailed("upstream '\(upstream.name)' has no addresses"))
            return
        }
        // Round robin picks the address per request (as nginx and Envoy do), then reuses an idle connection to it.
        var index = entry.next % entry.addresses.count
        entry.next &+= 1
        if !fresh, let connection = self.popIdle(entry, index, upstream.name) {
            requester.connectionReady(connection, reused: true)
            return
        }
        if !self.mayConnect(entry, index) {
            if !fresh, let connection = self.popAnyIdle(entry, upstream.name) {
                requester.connectionReady(connection, reused: true)
                return
            }
            guard let other = self.addressToConnect(entry, preferring: index) else {
                requester.connectionFailed(.connectFailed(self.notTried(upstream.name, entry)))
                return
            }
            index = other
        }
        if entry.open < self.maxConnections {
            self.connect(upstream.name, entry, index, for: requester)
        } else if !fresh, let connection = self.popAnyIdle(entry, upstream.name) {
            // At the connection limit, an idle connection to another address beats waiting.
            requester.connectionReady(connection, reused: true)
        } else if entry.waiters.count < self.maxPending {
            entry.waiters.append(requester)
        } else {
            requester.connectionFailed(.poolExhausted)
        }
    }

    /// Whether a connect to address `index` may start now (always, without a back-off).
    private func mayConnect(_ entry: Entry, _ index: Int) -> Bool {
        guard self.backoff != nil, entry.failures[index] > 0 else { return true }
        return !entry.probing[index] && NIODeadline.now() >= entry.retryAt[index]
    }

    /// `preferred` if a connect to it may start now, else the first address that may, else nil.
    private func addressToConnect(_ entry: Entry, preferring preferred: Int) -> Int? {
        if self.mayConnect(entry, preferred) { return preferred }
        return entry.addresses.indices.first { self.mayConnect(entry, $0) }
    }

    /// Why a copy fails without a connect: every address is pausing after failed connects.
    private func notTried(_ name: String, _ entry: Entry) -> String {
        let now = NIODeadline.now()
        let soonest = entry.retryAt.min() ?? now
        let wait = max(0, (soonest - now).nanoseconds / 1_000_000)
        if entry.addresses.count == 1 {
            return "not tried: the last \(entry.failures[0]) connect(s) to \(entry.addresses[0]) failed; "
                + (entry.probing[0] ? "one is under way" : "next try in \(wait) ms")
        }
        return "not tried: the last connects to every address of '\(name)' failed; next try within \(wait) ms"
    }

    /// Notes the outcome of a connect for the back-off (pools with one only).
    private func connectEnded(_ name: String, _ endpoint: Endpoint, succeeded: Bool) {
        guard let backoff = self.backoff, let entry = self.entries[name],
            let index = entry.addresses.firstIndex(of: endpoint)
        else { return }
        entry.probing[index] = false
        if succeeded {
            entry.failures[index] = 0
        } else {
            entry.failures[index] += 1
            entry.retryAt[index] = .now() + backoff.delay(afterFailures: entry.failures[index])
        }
    }

    private func popIdle(_ entry: Entry, _ index: Int, _ name: String) -> UpstreamConnection? {
        while let connection = entry.idle[index].popLast() {
            self.metrics?.idleConnections(name, delta: -1)
            if connection.isUsable { return connection }
            connection.close()
        }
        return nil
    }

    private func popAnyIdle(_ entry: Entry, _ name: String) -> UpstreamConnection? {
        for index in entry.idle.indices {
            if let connection = self.popIdle(entry, index, name) { return connection }
        }
        return nil
    }

    /// Withdraws a queued request (its client went away or its wait timed out).
    func cancel(_ requester: UpstreamConnectionRequester, upstream: String) {
        guard let entry = self.entries[upstream],
            let index = entry.waiters.firstIndex(where: { $0 === requester })
        else { return }
        entry.waiters.remove(at: index)
    }

    private func connect(_ name: String, _ entry: Entry, _ index: Int, for requester: UpstreamConnectionRequester) {
        let endpoint = entry.addresses[index]
        if self.backoff != nil, entry.failures[index] > 0 { entry.probing[index] = true }
        self.connectsStarted += 1
        entry.open += 1
        self.metrics?.openConnections(name, delta: 1)
        let connection = UpstreamConnection(upstream: name, endpoint: endpoint, idleTimeout: self.timeouts.upstreamIdle)
        connection.pool = self
        let handler = UnsafeTransfer(connection)
        let pool = UnsafeTransfer(self)
        let waiting = UnsafeTransfer(requester)
        let connected: EventLoopFuture<Channel>
        switch self.transport {
        case .sockets:
            let bootstrap = ClientBootstrap(group: self.eventLoop)
                .connectTimeout(self.timeouts.connect)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelOption(.autoRead, value: true)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(handler.value)
                    }
                }
            // An IP literal is connected to directly: `connect(host:port:)` would resolve it with getaddrinfo on a
            // libdispatch thread and race it through Happy Eyeballs at every new connection (a third of the shadow
            // loop's time with a dead shadow upstream, where every copy connects). Host names still resolve per
            // connect.
            if let address = entry.socketAddresses[index] {
                connected = bootstrap.connect(to: address)
            } else {
                connected = bootstrap.connect(host: endpoint.host, port: endpoint.port)
            }
        case .connector(let connect):
            connected = connect(
                UpstreamTransport.ConnectRequest(
                    eventLoop: self.eventLoop,
                    endpoint: endpoint,
                    socketAddress: entry.socketAddresses[index],
                    connectTimeout: self.timeouts.connect,
                    connection: connection
                )
            )
        }
        connected.whenComplete { result in
            switch result {
            case .success:
                pool.value.connectEnded(name, endpoint, succeeded: true)
                waiting.value.connectionReady(handler.value, reused: false)
            case .failure(let error):
                pool.value.connectEnded(name, endpoint, succeeded: false)
                pool.value.connectFailed(name, error: error, requester: waiting.value)
            }
        }
    }

    private func connectFailed(_ name: String, error: Error, requester: UpstreamConnectionRequester) {
        if let entry = self.entries[name] {
            entry.open -= 1
            self.metrics?.openConnections(name, delta: -1)
        }
        if case ChannelError.connectTimeout = error {
            requester.connectionFailed(.connectTimeout)
        } else {
            requester.connectionFailed(.connectFailed(String(describing: error)))
        }
    }

    /// Takes back a connection whose exchange ended cleanly.
    func release(_ connection: UpstreamConnection) {
        guard let entry = self.entries[connection.upstream],
            let index = entry.addresses.firstIndex(of: connection.endpoint)
        else {
            connection.close()
            return
        }
        if let waiter = entry.waiters.popFirst() {
            waiter.connectionReady(connection, reused: true)
            return
        }
        entry.idle[index].append(connection)
        self.metrics?.idleConnections(connection.upstream, delta: 1)
    }

    /// Accounts for a closed connection and lets the next waiter open one.
    func connectionClosed(_ connection: UpstreamConnection) {
        guard let entry = self.entries[connection.upstream] else { return }
        entry.open -= 1
        self.metrics?.openConnections(connection.upstream, delta: -1)
        if let address = entry.addresses.firstIndex(of: connection.endpoint),
            let index = entry.idle[address].firstIndex(where: { $0 === connection })
        {
            entry.idle[address].remove(at: index)
            self.metrics?.idleConnections(connection.upstream, delta: -1)
        }
        if let waiter = entry.waiters.popFirst() {
            if entry.addresses.isEmpty {
                waiter.connectionFailed(.connectFailed("upstream '\(connection.upstream)' has no addresses"))
            } else if let index = self.addressToConnect(entry, preferring: entry.next % entry.addresses.count) {
                entry.next &+= 1
                self.connect(connection.upstream, entry, index, for: waiter)
            } else {
                waiter.connectionFailed(.connectFailed(self.notTried(connection.upstream, entry)))
            }
        }
    }

    /// Closes every idle connection (shutdown).
    func closeIdle() {
        for entry in self.entries.values {
            let idle = entry.idle.flatMap { $0 }
            entry.idle = Array(repeating: [], count: entry.addresses.count)
            for connection in idle { connection.close() }
        }
    }
}
