import FicusCore
import NIOCore

extension UpstreamPoolStateMachine {
    /// One address of an upstream: its idle connections and its back-off.
    struct AddressState {
        let endpoint: Endpoint
        /// The socket address when the endpoint is an IP literal: connected to directly, without a resolver.
        let socketAddress: SocketAddress?
        /// Most recently released last: a lease takes the warmest (LIFO), so idle timers retire the coldest.
        var idle: [Connection] = []
        /// Connects that failed in a row (pools with a back-off only).
        var failures = 0
        /// Before this time no connect to the address starts, once one has failed.
        var retryAt = NIODeadline.distantPast
        /// A connect is under way after a failure: the others wait for its outcome rather than pile on.
        var probing = false
        /// Connections to the address open or being opened; those not idle carry a request (least request's count).
        var open = 0
        /// `host:port`, how ejection names the address.
        let key: String

        init(_ endpoint: Endpoint) {
            self.endpoint = endpoint
            self.key = endpoint.address
            self.socketAddress = try? SocketAddress(ipAddress: endpoint.host, port: endpoint.port)
        }

        /// Whether a connect may start now: always without a back-off or a failure, else once the pause is over
        /// and no probe is under way.
        func mayConnect(now: NIODeadline, backoff: ConnectBackoff?) -> Bool {
            guard backoff != nil, self.failures > 0 else { return true }
            return !self.probing && now >= self.retryAt
        }
    }

    /// The pool's part of one upstream: its addresses in rotation, its open connections and its queue.
    struct UpstreamState {
        let name: String
        /// The configured addresses, kept as given so that an unchanged revision is recognised by one comparison.
        var endpoints: [Endpoint] = []
        var addresses: [AddressState] = []
        /// Picks the address of each request: round robin (one step per lease, as nginx and Envoy pick the address
        /// per request) or least request.
        var balancer: Balancer
        /// Whether any address has a weight other than 1 (then round robin is nginx's smooth weighted one).
        var weighted = false
        /// Connections open or being opened, to any address, current or not.
        var open = 0
        /// Idle connections, over all addresses.
        var idleCount = 0
        var waiters = CircularBuffer<Requester>()
        /// The addresses out of rotation as of the last lease (`host:port`), skipped by every pick.
        var ejected: [String] = []

        init(name: String, seed: UInt64) {
            self.name = name
            self.balancer = Balancer(policy: .roundRobin, seed: seed)
        }

        /// Requests this loop has in flight to the upstream: on a connection, being connected for, or waiting.
        var requestsInFlight: Int { self.open - self.idleCount + self.waiters.count }

        /// Whether the address at `index` may be picked: not ejected.
        func inRotation(_ index: Int) -> Bool {
            self.ejected.isEmpty || !self.ejected.contains(self.addresses[index].key)
        }

        /// The index of the address of `endpoint` (weights aside), if it is configured.
        func index(of endpoint: Endpoint) -> Int? {
            self.addresses.firstIndex { $0.endpoint.host == endpoint.host && $0.endpoint.port == endpoint.port }
        }

        /// The next address to use among those in rotation; with `connectableAt`, only those a connect may start to
        /// at that time (after the back-off of failed connects).
        mutating func pick(connectableAt now: NIODeadline? = nil, backoff: ConnectBackoff? = nil) -> Int? {
            let addresses = self.addresses
            let ejected = self.ejected
            return self.balancer.pick(
                count: addresses.count,
                weighted: self.weighted,
                weight: { addresses[$0].endpoint.effectiveWeight },
                active: { addresses[$0].open - addresses[$0].idle.count },
                eligible: { index in
                    if !ejected.isEmpty, ejected.contains(addresses[index].key) { return false }
                    guard let now else { return true }
                    return addresses[index].mayConnect(now: now, backoff: backoff)
                }
            )
        }

        mutating func leaseRequested(
            _ upstream: Upstream, by requester: Requester, fresh: Bool, now: NIODeadline, limits: Limits,
            ejected: [String]
        ) -> Action {
            var action = Action.none
            let addresses = upstream.addresses
            if addresses != self.endpoints {
                self.follow(addresses, action: &action)
            }
            if upstream.effectiveBalance != self.balancer.policy {
                self.balancer.policy = upstream.effectiveBalance
                self.balancer.reset()
            }
            self.ejected = ejected
            guard !self.addresses.isEmpty else {
                action.request = .fail(requester, .connectFailed("upstream '\(self.name)' has no addresses"))
                return action
            }
            let shares = limits.shares(for: upstream)
            guard self.requestsInFlight < shares.maxRequests else {
                action.request = .fail(requester, .overflow(.maxRequests))
                return action
            }
            guard var index = self.pick() else {
                action.request = .fail(requester, .noHealthyAddress)
                return action
            }
            if !fresh, let connection = self.popIdle(at: index, action: &action) {
                action.request = .lease(connection, to: requester, reused: true)
                return action
            }
            if !self.addresses[index].mayConnect(now: now, backoff: limits.backoff) {
                if !fresh, let connection = self.popAnyIdle(action: &action) {
                    action.request = .lease(connection, to: requester, reused: true)
                    return action
                }
                guard let other = self.addressToConnect(preferring: index, now: now, backoff: limits.backoff) else {
                    action.request = .fail(requester, .connectFailed(self.notTried(now: now)))
                    return action
                }
                index = other
            }
            if self.open < shares.maxConnections {
                action.request = self.connect(to: index, for: requester, action: &action, backoff: limits.backoff)
            } else if !fresh, let connection = self.popAnyIdle(action: &action) {
                // At the connection limit, an idle connection to another address beats waiting.
                action.request = .lease(connection, to: requester, reused: true)
            } else if self.waiters.count < shares.maxPending {
                self.waiters.append(requester)
                action.waitsAtConnectionLimit = true
            } else {
                action.request = .fail(requester, .poolExhausted)
            }
            return action
        }

        /// Takes a new revision's addresses: idle connections to addresses that stay are kept, those to the others
        /// closed; connections in flight finish where they are. Back-off starts afresh.
        private mutating func follow(_ endpoints: [Endpoint], action: inout Action) {
            var addresses = endpoints.map { AddressState($0) }
            for old in self.addresses {
                // An address whose weight changed is the same address: its connections stay with it.
                if let moved = endpoints.firstIndex(where: { $0.host == old.endpoint.host && $0.port == old.endpoint.port }) {
                    addresses[moved].idle.append(contentsOf: old.idle)
                    addresses[moved].open += old.open
                } else if !old.idle.isEmpty {
                    action.close.append(contentsOf: old.idle)
                    action.idleDelta -= old.idle.count
                    self.idleCount -= old.idle.count
                }
            }
            self.endpoints = endpoints
            self.addresses = addresses
            self.weighted = endpoints.contains { $0.effectiveWeight != 1 }
            self.balancer.reset()
        }

        private mutating func connect(
            to index: Int, for requester: Requester, action: inout Action, backoff: ConnectBackoff?
        ) -> RequestAction {
            if backoff != nil, self.addresses[index].failures > 0 {
                self.addresses[index].probing = true
            }
            self.open += 1
            self.addresses[index].open += 1
            action.openDelta += 1
            let address = self.addresses[index]
            let target = ConnectTarget(
                upstream: self.name, endpoint: address.endpoint, socketAddress: address.socketAddress)
            return .connect(target, for: requester)
        }

        /// `preferred` if a connect to it may start now, else the first address in rotation that may, else nil.
        private func addressToConnect(preferring preferred: Int, now: NIODeadline, backoff: ConnectBackoff?) -> Int? {
            if self.inRotation(preferred), self.addresses[preferred].mayConnect(now: now, backoff: backoff) {
                return preferred
            }
            return self.addresses.indices.first {
                self.inRotation($0) && self.addresses[$0].mayConnect(now: now, backoff: backoff)
            }
        }

        /// Why a request fails without a connect: every address is pausing after failed connects.
        private func notTried(now: NIODeadline) -> String {
            let soonest = self.addresses.lazy.map(\.retryAt).min() ?? now
            let wait = max(0, (soonest - now).nanoseconds / 1_000_000)
            if self.addresses.count == 1 {
                let address = self.addresses[0]
                return "not tried: the last \(address.failures) connect(s) to \(address.endpoint) failed; "
                    + (address.probing ? "one is under way" : "next try in \(wait) ms")
            }
            return "not tried: the last connects to every address of '\(self.name)' failed; next try within \(wait) ms"
        }

        /// The warmest idle connection to `index` that is still open; closed ones found on the way are dropped.
        private mutating func popIdle(at index: Int, action: inout Action) -> Connection? {
            while let connection = self.addresses[index].idle.popLast() {
                action.idleDelta -= 1
                self.idleCount -= 1
                if connection.isUsable { return connection }
                action.close.append(connection)
            }
            return nil
        }

        private mutating func popAnyIdle(action: inout Action) -> Connection? {
            for index in self.addresses.indices where self.inRotation(index) {
                if let connection = self.popIdle(at: index, action: &action) { return connection }
            }
            return nil
        }

        mutating func connectSucceeded(_ endpoint: Endpoint) {
            guard let index = self.index(of: endpoint) else { return }
            self.addresses[index].probing = false
            self.addresses[index].failures = 0
        }

        mutating func connectFailed(_ endpoint: Endpoint, now: NIODeadline, backoff: ConnectBackoff?) {
            self.open -= 1
            guard let index = self.index(of: endpoint) else { return }
            self.addresses[index].open = max(0, self.addresses[index].open - 1)
            guard let backoff else { return }
            self.addresses[index].probing = false
            self.addresses[index].failures += 1
            self.addresses[index].retryAt = now + backoff.delay(afterFailures: self.addresses[index].failures)
        }

        /// The oldest waiter gets the connection; without one it waits idle, if its address is still configured.
        mutating func connectionReleased(_ connection: Connection) -> Action {
            guard let index = self.endpoints.firstIndex(of: connection.endpoint) else {
                return Action(request: .none, close: [connection])
            }
            if let waiter = self.waiters.popFirst() {
                return Action(request: .lease(connection, to: waiter, reused: true))
            }
            self.addresses[index].idle.append(connection)
            self.idleCount += 1
            return Action(request: .none, idleDelta: 1)
        }

        /// Frees the connection's slot and, if a request waits for one, opens a connection for the oldest.
        mutating func connectionClosed(_ connection: Connection, now: NIODeadline, limits: Limits) -> Action {
            var action = Action(request: .none, openDelta: -1)
            self.open -= 1
            if let address = self.index(of: connection.endpoint) {
                self.addresses[address].open = max(0, self.addresses[address].open - 1)
                if let index = self.addresses[address].idle.firstIndex(where: { $0 === connection }) {
                    self.addresses[address].idle.remove(at: index)
                    self.idleCount -= 1
                    action.idleDelta = -1
                }
            }
            guard let waiter = self.waiters.popFirst() else { return action }
            if self.addresses.isEmpty {
                action.request = .fail(waiter, .connectFailed("upstream '\(self.name)' has no addresses"))
            } else if let index = self.pick(connectableAt: now, backoff: limits.backoff) {
                action.request = self.connect(to: index, for: waiter, action: &action, backoff: limits.backoff)
            } else if self.addresses.indices.allSatisfy({ !self.inRotation($0) }) {
                action.request = .fail(waiter, .noHealthyAddress)
            } else {
                action.request = .fail(waiter, .connectFailed(self.notTried(now: now)))
            }
            return action
        }

        mutating func removeWaiter(where isRequester: (Requester) -> Bool) {
            guard let index = self.waiters.firstIndex(where: isRequester) else { return }
            self.waiters.remove(at: index)
        }

        mutating func removeAllIdle() -> [Connection] {
            var closed: [Connection] = []
            for index in self.addresses.indices {
                closed.append(contentsOf: self.addresses[index].idle)
                self.addresses[index].idle.removeAll()
            }
            self.idleCount = 0
            return closed
        }
    }
}
