import FicusCore
import NIOCore

/// What the pool's state machine needs to know of a connection: where it goes, and whether it is still open.
///
/// The machine keeps connections as opaque handles. `isUsable` is the one question it asks of them, because a
/// connection that sat idle can be closed (its idle timer, the upstream's FIN) a moment before the pool hears of it.
protocol PooledConnection: AnyObject {
    var upstream: String { get }
    var endpoint: Endpoint { get }
    var isUsable: Bool { get }
}

extension UpstreamConnection: PooledConnection {}

/// How long a pool leaves an address alone after connects to it failed: `initial` after the first failure, doubling
/// with each failure in a row, never more than `maximum`. Pure arithmetic, so that it can be tested on its own.
struct ConnectBackoff: Sendable, Equatable {
    var initial: TimeAmount
    var maximum: TimeAmount

    /// The pause after `failures` (≥ 1) consecutive failed connects.
    func delay(afterFailures failures: Int) -> TimeAmount {
        guard failures > 0, self.initial.nanoseconds > 0 else { return .nanoseconds(0) }
        let doublings = min(failures - 1, 62)
        let (scaled, overflow) = self.initial.nanoseconds.multipliedReportingOverflow(by: Int64(1) << doublings)
        return .nanoseconds(overflow ? self.maximum.nanoseconds : min(scaled, self.maximum.nanoseconds))
    }
}

/// Every decision of one event loop's upstream pool, as a value: events in, actions out.
///
/// Which address a request goes to, reuse of idle connections, the connection and queue limits and the back-off
/// after failed connects all live here, so that they are tested as plain function calls with a manual clock
/// (docs/PROXY.md, "Connections, timeouts and retries"); `UpstreamPool` only turns NIO events into these events and
/// carries out the actions. The machine does no I/O and never reads a clock: `now` is passed in (the event loop's), and
/// connections and requesters are handles it stores and hands back, never calls.
struct UpstreamPoolStateMachine<Connection: PooledConnection, Requester> {
    /// The limits of one event loop's share of the pool.
    struct Limits {
        /// Connections per upstream, open or being opened.
        var maxConnections: Int
        /// Requests per upstream waiting for a connection.
        var maxPending: Int
        /// The pause after failed connects to an address; nil (client loops) means every request gets its attempt.
        var backoff: ConnectBackoff?
        /// The event loops the proxy's limits are shared among: an upstream's own `limits` are divided by it, rounded
        /// up, as the pool limits are.
        var loops = 1

        /// This loop's share of an upstream's circuit breakers: its own `limits` where set, else the pool's.
        func shares(for upstream: Upstream) -> (maxConnections: Int, maxPending: Int, maxRequests: Int) {
            let loops = max(1, self.loops)
            guard let own = upstream.limits else {
                return (self.maxConnections, self.maxPending, (UpstreamLimits.defaultMaxRequests + loops - 1) / loops)
            }
            return (
                own.maxConnections.map { max(1, ($0 + loops - 1) / loops) } ?? self.maxConnections,
                own.maxPending.map { max(0, ($0 + loops - 1) / loops) } ?? self.maxPending,
                max(1, ((own.maxRequests ?? UpstreamLimits.defaultMaxRequests) + loops - 1) / loops)
            )
        }
    }

    /// What the shell does after an event, in this order: adjust the gauges, close `close`, then `request`.
    ///
    /// One value rather than a list, so that the hot path (a lease from idle, a release to idle) allocates nothing.
    struct Action {
        var request: RequestAction
        /// Idle connections found closed or to an address the upstream no longer has, or a released connection the
        /// pool cannot take back.
        var close: [Connection] = []
        /// Changes of the gauges of the event's upstream (`ficus_upstream_connections_open` / `_idle`).
        var openDelta = 0
        var idleDelta = 0
        /// The request waits because the upstream is at its connection limit (`max_connections` overflow, counted).
        var waitsAtConnectionLimit = false

        static var none: Action { Action(request: .none) }
    }

    /// What happens to the one requester an event concerns.
    enum RequestAction {
        case none
        /// Hand `connection` to the requester: idle or released (`reused`), or just connected for it.
        case lease(Connection, to: Requester, reused: Bool)
        /// Open a connection for the requester; its outcome comes back as `connectSucceeded` or `connectFailed`.
        case connect(ConnectTarget, for: Requester)
        case fail(Requester, UpstreamFailure)
    }

    /// Where a new connection goes.
    struct ConnectTarget {
        var upstream: String
        var endpoint: Endpoint
        /// The socket address when the endpoint is an IP literal (parsed once per address), nil for host names.
        var socketAddress: SocketAddress?
    }

    let limits: Limits
    private var upstreams: [String: UpstreamState] = [:]
    /// Seeds each upstream's balancer (least request draws at random); fixed in tests, random per loop otherwise.
    private let seed: UInt64

    init(limits: Limits, seed: UInt64 = 0x5EED) {
        self.limits = limits
        self.seed = seed
    }

    // MARK: Events

    /// A requester wants a connection to `upstream` (as configured in the current revision); `fresh` refuses idle
    /// ones (a re-send after a reused connection was found dead). `ejected` names the addresses (`host:port`) out of
    /// rotation now, which no pick may choose: when that is all of them the request fails with `noHealthyAddress`.
    mutating func leaseRequested(
        _ upstream: Upstream, by requester: Requester, fresh: Bool = false, now: NIODeadline, ejected: [String] = []
    ) -> Action {
        let limits = self.limits
        let seed = self.seed
        return self.upstreams[upstream.name, default: UpstreamState(name: upstream.name, seed: seed)]
            .leaseRequested(upstream, by: requester, fresh: fresh, now: now, limits: limits, ejected: ejected)
    }

    /// Requests this loop has in flight to `upstream` per address (`host:port`), for least request's tests and
    /// `/upstreams`.
    func activeRequests(upstream: String) -> [String: Int] {
        guard let state = self.upstreams[upstream] else { return [:] }
        var result: [String: Int] = [:]
        for address in state.addresses { result[address.key] = address.open - address.idle.count }
        return result
    }

    /// A connect that `.connect` started succeeded: the connection goes to the requester it was opened for.
    mutating func connectSucceeded(_ connection: Connection, for requester: Requester) -> Action {
        self.upstreams[connection.upstream]?.connectSucceeded(connection.endpoint)
        return Action(request: .lease(connection, to: requester, reused: false))
    }

    /// A connect that `.connect` started failed (refused, timed out, not resolved).
    mutating func connectFailed(
        _ target: ConnectTarget, for requester: Requester, failure: UpstreamFailure, now: NIODeadline
    ) -> Action {
        var action = Action(request: .fail(requester, failure))
        if self.upstreams[target.upstream] != nil {
            let backoff = self.limits.backoff
            self.upstreams[target.upstream]!.connectFailed(target.endpoint, now: now, backoff: backoff)
            action.openDelta = -1
        }
        return action
    }

    /// A connection's exchange ended cleanly and it may serve another.
    mutating func connectionReleased(_ connection: Connection) -> Action {
        self.upstreams[connection.upstream]?.connectionReleased(connection)
            ?? Action(request: .none, close: [connection])
    }

    /// A connection closed (either side, any state): its slot is free for the oldest waiter.
    mutating func connectionClosed(_ connection: Connection, now: NIODeadline) -> Action {
        let limits = self.limits
        return self.upstreams[connection.upstream]?.connectionClosed(connection, now: now, limits: limits) ?? .none
    }

    /// A waiting requester no longer wants a connection (its client went away, or its deadline passed).
    ///
    /// Requesters are opaque to the machine, so the shell says which one it is (`===` for objects).
    mutating func waiterCancelled(upstream: String, where isRequester: (Requester) -> Bool) {
        self.upstreams[upstream]?.removeWaiter(where: isRequester)
    }

    /// Shutdown began: every idle connection is to be closed, one action per upstream; connections in flight finish
    /// as usual (and are closed by their owners), and the pool keeps serving whoever still asks.
    mutating func shutdownStarted() -> [(upstream: String, action: Action)] {
        var actions: [(upstream: String, action: Action)] = []
        for name in Array(self.upstreams.keys) {
            let closed = self.upstreams[name]!.removeAllIdle()
            if !closed.isEmpty {
                actions.append((name, Action(request: .none, close: closed, idleDelta: -closed.count)))
            }
        }
        return actions
    }
}
