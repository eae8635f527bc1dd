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

        init(_ endpoint: Endpoint) {
            self.endpoint = endpoint
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
        /// The round robin's counter: one step per lease, as nginx and Envoy pick the address per request.
        var next = 0
        /// Connections open or being opened, to any address, current or not.
        var open = 0
        var waiters = CircularBuffer<Requester>()

        init(name: String) {
            self.name = name
        }

        mutating func leaseRequested(
            addresses: [Endpoint], by requester: Requester, fresh: Bool, now: NIODeadline, limits: Limits
        ) -> Action {
            var action = Action.none
            if addresses != self.endpoints {
                self.follow(addresses, action: &action)
            }
            guard !self.addresses.isEmpty else {
                action.request = .fail(requester, .connectFailed("upstream '\(self.name)' has no addresses"))
                return action
            }
            var index = self.next % self.addresses.count
            self.next &+= 1
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
            if self.open < limits.maxConnections {
                action.request = self.connect(to: index, for: requester, action: &action, backoff: limits.backoff)
            } else if !fresh, let connection = self.popAnyIdle(action: &action) {
                // At the connection limit, an idle connection to another address beats waiting.
                action.request = .lease(connection, to: requester, reused: true)
            } else if self.waiters.count < limits.maxPending {
                self.waiters.append(requester)
            } else {
                action.request = .fail(requester, .poolExhausted)
            }
            return action
        }

        /// Takes a new revision's addresses: idle connections to addresses that stay are kept, those to the others
        /// closed; connections in flight finish where they are. Back-off starts afresh.
        private mutating func follow(_ endpoints: [Endpoint], action: inout Action) {
            var addresses = endpoints.map { AddressState($0) }
            for old in self.addresses where !old.idle.isEmpty {
                if let moved = endpoints.firstIndex(of: old.endpoint) {
                    addresses[moved].idle.append(contentsOf: old.idle)
                } else {
                    action.close.append(contentsOf: old.idle)
                    action.idleDelta -= old.idle.count
                }
            }
            self.endpoints = endpoints
            self.addresses = addresses
            self.next = 0
        }

        private mutating func connect(
            to index: Int, for requester: Requester, action: inout Action, backoff: ConnectBackoff?
        ) -> RequestAction {
            if backoff != nil, self.addresses[index].failures > 0 {
                self.addresses[index].probing = true
            }
            self.open += 1
            action.openDelta += 1
            let address = self.addresses[index]
            let target = ConnectTarget(
                upstream: self.name, endpoint: address.endpoint, socketAddress: address.socketAddress)
            return .connect(target, for: requester)
        }

        /// `preferred` if a connect to it may start now, else the first address that may, else nil.
        private func addressToConnect(preferring preferred: Int, now: NIODeadline, backoff: ConnectBackoff?) -> Int? {
            if self.addresses[preferred].mayConnect(now: now, backoff: backoff) { return preferred }
            return self.addresses.indices.first { self.addresses[$0].mayConnect(now: now, backoff: backoff) }
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
                if connection.isUsable { return connection }
                action.close.append(connection)
            }
            return nil
        }

        private mutating func popAnyIdle(action: inout Action) -> Connection? {
            for index in self.addresses.indices {
                if let connection = self.popIdle(at: index, action: &action) { return connection }
            }
            return nil
        }

        mutating func connectSucceeded(_ endpoint: Endpoint) {
            guard let index = self.endpoints.firstIndex(of: endpoint) else { return }
            self.addresses[index].probing = false
            self.addresses[index].failures = 0
        }

        mutating func connectFailed(_ endpoint: Endpoint, now: NIODeadline, backoff: ConnectBackoff?) {
            self.open -= 1
            guard let backoff, let index = self.endpoints.firstIndex(of: endpoint) else { return }
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
            return Action(request: .none, idleDelta: 1)
        }

        /// Frees the connection's slot and, if a request waits for one, opens a connection for the oldest.
        mutating func connectionClosed(_ connection: Connection, now: NIODeadline, limits: Limits) -> Action {
            var action = Action(request: .none, openDelta: -1)
            self.open -= 1
            if let address = self.endpoints.firstIndex(of: connection.endpoint),
                let index = self.addresses[address].idle.firstIndex(where: { $0 === connection })
            {
                self.addresses[address].idle.remove(at: index)
                action.idleDelta = -1
            }
            guard let waiter = self.waiters.popFirst() else { return action }
            if self.addresses.isEmpty {
                action.request = .fail(waiter, .connectFailed("upstream '\(self.name)' has no addresses"))
            } else if let index = self.addressToConnect(
                preferring: self.next % self.addresses.count, now: now, backoff: limits.backoff)
            {
                self.next &+= 1
                action.request = self.connect(to: index, for: waiter, action: &action, backoff: limits.backoff)
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
            return closed
        }
    }
}
