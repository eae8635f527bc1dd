import FicusCore
import NIOCore
import Testing

@testable import FicusProxy

/// A connection as the machine sees it: a name for the tables, and whether it is still open.
final class FakePooledConnection: PooledConnection {
    let name: String
    let upstream: String
    let endpoint: Endpoint
    var isUsable = true

    init(_ name: String, upstream: String, endpoint: Endpoint) {
        self.name = name
        self.upstream = upstream
        self.endpoint = endpoint
    }
}

/// Drives an `UpstreamPoolStateMachine` through a table of events with a manual clock, and writes each action as a
/// line of text, so that a scenario reads as what the pool was told and what it answered.
///
/// Requesters are plain names; a connect's outcome is reported for the requester it was started for.
struct PoolScript {
    typealias Machine = UpstreamPoolStateMachine<FakePooledConnection, String>

    enum Event {
        /// `requester` asks for a connection to the upstream (`fresh`: no idle one).
        case lease(String, fresh: Bool = false)
        /// The connect started for `requester` succeeded; the connection is called `name` from then on.
        case connected(String, as: String)
        /// The connect started for `requester` was refused.
        case refused(String)
        case release(String)
        case close(String)
        /// The connection closed without the pool hearing of it yet (its idle timer fired a moment ago).
        case dies(String)
        /// The waiting `requester` gave up (its deadline passed).
        case cancel(String)
        case advance(TimeAmount)
        /// A new revision gives the upstream these addresses.
        case readdress([String])
        case shutdown
    }

    var machine: Machine
    var upstream: Upstream
    var now = NIODeadline.uptimeNanoseconds(1_000_000_000)
    var connects: [String: Machine.ConnectTarget] = [:]
    var connections: [String: FakePooledConnection] = [:]
    /// The addresses out of rotation, as the proxy's health would report them at each lease.
    var ejected: [String] = []

    init(
        addresses: [String] = ["10.0.0.1:8080"], maxConnections: Int = 8, maxPending: Int = 8,
        backoff: ConnectBackoff? = nil,
        loops: Int = 1
    ) {
        self.machine = Machine(
            limits: Machine.Limits(maxConnections: maxConnections, maxPending: maxPending, backoff: backoff, loops: loops))
        self.upstream = Upstream(name: "svc", addresses: addresses.map { Endpoint(parsing: $0)! })
    }

    /// Feeds `event` to the machine and describes what it answered ("" for nothing).
    mutating func step(_ event: Event) -> String {
        switch event {
        case .lease(let requester, let fresh):
            return self.describe(self.machine.leaseRequested(
                    self.upstream, by: requester, fresh: fresh, now: self.now, ejected: self.ejected))
        case .connected(let requester, let name):
            let target = self.connects.removeValue(forKey: requester)!
            let connection = FakePooledConnection(name, upstream: target.upstream, endpoint: target.endpoint)
            self.connections[name] = connection
            return self.describe(self.machine.connectSucceeded(connection, for: requester))
        case .refused(let requester):
            let target = self.connects.removeValue(forKey: requester)!
            let failure = UpstreamFailure.connectFailed("refused")
            return self.describe(self.machine.connectFailed(target, for: requester, failure: failure, now: self.now))
        case .release(let name):
            return self.describe(self.machine.connectionReleased(self.connections[name]!))
        case .close(let name):
            self.connections[name]!.isUsable = false
            return self.describe(self.machine.connectionClosed(self.connections[name]!, now: self.now))
        case .dies(let name):
            self.connections[name]!.isUsable = false
            return ""
        case .cancel(let requester):
            self.machine.waiterCancelled(upstream: self.upstream.name) { $0 == requester }
            return ""
        case .advance(let amount):
            self.now = self.now + amount
            return ""
        case .readdress(let addresses):
            self.upstream.addresses = addresses.map { Endpoint(parsing: $0)! }
            return ""
        case .shutdown:
            return self.machine.shutdownStarted().map { "\($0.upstream): " + self.describe($0.action) }
                .joined(separator: " | ")
        }
    }

    /// Feeds each row's event and expects the row's answer; a mismatch names the row and its event.
    mutating func run(_ table: [(Event, String)], sourceLocation: SourceLocation = #_sourceLocation) {
        for (row, (event, expected)) in table.enumerated() {
            let answer = self.step(event)
            #expect(answer == expected, "row \(row): \(event)", sourceLocation: sourceLocation)
        }
    }

    private mutating func describe(_ action: Machine.Action) -> String {
        var parts: [String] = []
        switch action.request {
        case .none:
            break
        case .lease(let connection, let requester, let reused):
            parts.append("lease \(connection.name) to \(requester)" + (reused ? " (reused)" : " (new)"))
        case .connect(let target, let requester):
            self.connects[requester] = target
            parts.append("connect \(target.endpoint) for \(requester)")
        case .fail(let requester, let failure):
            parts.append("fail \(requester): \(failure)")
        }
        parts += action.close.map { "close \($0.name)" }
        if action.openDelta != 0 { parts.append("open \(action.openDelta > 0 ? "+" : "")\(action.openDelta)") }
        if action.idleDelta != 0 { parts.append("idle \(action.idleDelta > 0 ? "+" : "")\(action.idleDelta)") }
        return parts.joined(separator: "; ")
    }
}

@Suite("The upstream pool's state machine, with a manual clock")
struct UpstreamPoolStateMachineTests {
    static let backoff = ConnectBackoff(initial: .milliseconds(100), maximum: .seconds(3))
    /// The opening of most scenarios: r1 asks, a connection to the first address is opened and handed to it as c1.
    static let c1InUse: [(PoolScript.Event, String)] = [
        (.lease("r1"), "connect 10.0.0.1:8080 for r1; open +1"),
        (.connected("r1", as: "c1"), "lease c1 to r1 (new)"),
    ]

    @Test func aLeaseReusesTheMostRecentlyReleasedIdleConnectionAndConnectsWhenNoneIsIdle() {
        var script = PoolScript()
        script.run(
            Self.c1InUse + [
                (.lease("r2"), "connect 10.0.0.1:8080 for r2; open +1"),
                (.connected("r2", as: "c2"), "lease c2 to r2 (new)"),
                (.release("c1"), "idle +1"),
                (.release("c2"), "idle +1"),
                (.lease("r3"), "lease c2 to r3 (reused); idle -1"),
                (.lease("r4", fresh: true), "connect 10.0.0.1:8080 for r4; open +1"),
                (.lease("r5"), "lease c1 to r5 (reused); idle -1"),
                (.lease("r6"), "connect 10.0.0.1:8080 for r6; open +1"),
            ]
        )
    }

    @Test func anIdleConnectionFoundClosedIsDroppedAndTheNextOneUsed() {
        var script = PoolScript()
        script.run(
            [
                (.lease("r1"), "connect 10.0.0.1:8080 for r1; open +1"),
                (.lease("r2"), "connect 10.0.0.1:8080 for r2; open +1"),
                (.connected("r1", as: "c1"), "lease c1 to r1 (new)"),
                (.connected("r2", as: "c2"), "lease c2 to r2 (new)"),
                (.release("c1"), "idle +1"),
                (.release("c2"), "idle +1"),
                (.dies("c2"), ""),
                (.lease("r3"), "lease c1 to r3 (reused); close c2; idle -2"),
                // Its close arrives later: the slot is freed, the idle gauge is not counted down twice.
                (.close("c2"), "open -1"),
            ]
        )
    }

    @Test func addressesTakeTurnsPerLease() {
        var script = PoolScript(addresses: ["10.0.0.1:8080", "10.0.0.2:8080"])
        script.run(
            [
                (.lease("r1"), "connect 10.0.0.1:8080 for r1; open +1"),
                (.lease("r2"), "connect 10.0.0.2:8080 for r2; open +1"),
                (.lease("r3"), "connect 10.0.0.1:8080 for r3; open +1"),
                (.connected("r2", as: "c2"), "lease c2 to r2 (new)"),
                (.release("c2"), "idle +1"),
                // The turn is 10.0.0.2's: its idle connection is reused.
                (.lease("r4"), "lease c2 to r4 (reused); idle -1"),
            ]
        )
    }

    @Test func atTheConnectionLimitRequestsWaitAndOverThePendingLimitTheyAreRefused() {
        var script = PoolScript(maxConnections: 1, maxPending: 2)
        script.run(
            Self.c1InUse + [
                (.lease("r2"), ""),
                (.lease("r3"), ""),
                (.lease("r4"), "fail r4: no free connection and the queue is full"),
                // A released connection goes to the oldest waiter, not to idle.
                (.release("c1"), "lease c1 to r2 (reused)"),
                (.release("c1"), "lease c1 to r3 (reused)"),
                (.release("c1"), "idle +1"),
            ]
        )
    }

    @Test func aClosedConnectionsSlotGoesToTheOldestWaiter() {
        var script = PoolScript(maxConnections: 1, maxPending: 2)
        script.run(
            Self.c1InUse + [
                (.lease("r2"), ""),
                (.close("c1"), "connect 10.0.0.1:8080 for r2"),
                (.connected("r2", as: "c2"), "lease c2 to r2 (new)"),
            ]
        )
    }

    @Test func aWaiterThatTimedOutIsNotHandedAConnection() {
        var script = PoolScript(maxConnections: 1, maxPending: 1)
        script.run(
            Self.c1InUse + [
                (.lease("r2"), ""),
                (.cancel("r2"), ""),
                // Its place in the queue is free again.
                (.lease("r3"), ""),
                (.release("c1"), "lease c1 to r3 (reused)"),
                (.release("c1"), "idle +1"),
            ]
        )
    }

    @Test func withoutABackoffEveryRequestGetsItsConnect() {
        var script = PoolScript()
        script.run(
            [
                (.lease("r1"), "connect 10.0.0.1:8080 for r1; open +1"),
                (.refused("r1"), "fail r1: cannot connect: refused; open -1"),
                (.lease("r2"), "connect 10.0.0.1:8080 for r2; open +1"),
                (.refused("r2"), "fail r2: cannot connect: refused; open -1"),
                (.lease("r3"), "connect 10.0.0.1:8080 for r3; open +1"),
            ]
        )
    }

    @Test func aFailedAddressPausesThenOneConnectProbesItAndTheFirstSuccessEndsThePause() {
        var script = PoolScript(backoff: Self.backoff)
        func paused(_ requester: String, failures: Int, _ rest: String) -> String {
            "fail \(requester): cannot connect: not tried: the last \(failures) connect(s) to 10.0.0.1:8080 failed; "
                + rest
        }
        script.run(
            [
                (.lease("r1"), "connect 10.0.0.1:8080 for r1; open +1"),
                (.refused("r1"), "fail r1: cannot connect: refused; open -1"),
                (.lease("r2"), paused("r2", failures: 1, "next try in 100 ms")),
                (.advance(.milliseconds(60)), ""),
                (.lease("r3"), paused("r3", failures: 1, "next try in 40 ms")),
                (.advance(.milliseconds(40)), ""),
                // The pause is over: one connect probes the address, and others do not pile on meanwhile.
                (.lease("r4"), "connect 10.0.0.1:8080 for r4; open +1"),
                (.lease("r5"), paused("r5", failures: 1, "one is under way")),
                // The probe fails too: the pause doubles.
                (.refused("r4"), "fail r4: cannot connect: refused; open -1"),
                (.lease("r6"), paused("r6", failures: 2, "next try in 200 ms")),
                (.advance(.milliseconds(200)), ""),
                (.lease("r7"), "connect 10.0.0.1:8080 for r7; open +1"),
                (.connected("r7", as: "c1"), "lease c1 to r7 (new)"),
                // One success ends the pause: connects start again in parallel.
                (.lease("r8"), "connect 10.0.0.1:8080 for r8; open +1"),
                (.lease("r9"), "connect 10.0.0.1:8080 for r9; open +1"),
            ]
        )
    }

    @Test func whileOneAddressPausesAnotherIsUsedAndAnIdleConnectionBeatsAConnect() {
        var script = PoolScript(addresses: ["10.0.0.1:8080", "10.0.0.2:8080"], backoff: Self.backoff)
        script.run(
            [
                (.lease("r1"), "connect 10.0.0.1:8080 for r1; open +1"),
                (.refused("r1"), "fail r1: cannot connect: refused; open -1"),
                (.lease("r2"), "connect 10.0.0.2:8080 for r2; open +1"),
                // 10.0.0.1's turn, but it pauses: 10.0.0.2 is connected to instead.
                (.lease("r3"), "connect 10.0.0.2:8080 for r3; open +1"),
                (.connected("r2", as: "c2"), "lease c2 to r2 (new)"),
                (.release("c2"), "idle +1"),
                (.lease("r4"), "lease c2 to r4 (reused); idle -1"),
                (.release("c2"), "idle +1"),
                // 10.0.0.1's turn again: the idle connection to 10.0.0.2 is used rather than a new one.
                (.lease("r5"), "lease c2 to r5 (reused); idle -1"),
            ]
        )
    }

    @Test func whenEveryAddressPausesARequestFailsAtOnce() {
        var script = PoolScript(addresses: ["10.0.0.1:8080", "10.0.0.2:8080"], backoff: Self.backoff)
        let notTried = "cannot connect: not tried: the last connects to every address of 'svc' failed; next try within"
        script.run(
            [
                (.lease("r1"), "connect 10.0.0.1:8080 for r1; open +1"),
                (.lease("r2"), "connect 10.0.0.2:8080 for r2; open +1"),
                (.refused("r1"), "fail r1: cannot connect: refused; open -1"),
                (.advance(.milliseconds(30)), ""),
                (.refused("r2"), "fail r2: cannot connect: refused; open -1"),
                (.lease("r3"), "fail r3: \(notTried) 70 ms"),
                (.advance(.milliseconds(70)), ""),
                (.lease("r4"), "connect 10.0.0.1:8080 for r4; open +1"),
            ]
        )
    }

    @Test func aWaiterWhoseTurnComesWhileEveryAddressPausesFailsAtOnce() {
        var script = PoolScript(maxConnections: 1, maxPending: 1, backoff: Self.backoff)
        script.run(
            Self.c1InUse + [
                (.lease("r2"), ""),
                (.lease("r3"), "fail r3: no free connection and the queue is full"),
                (.close("c1"), "connect 10.0.0.1:8080 for r2"),
                (.refused("r2"), "fail r2: cannot connect: refused; open -1"),
                (.lease("r4"), "fail r4: cannot connect: not tried: the last 1 connect(s) to 10.0.0.1:8080 failed; "
                    + "next try in 100 ms"),
            ]
        )
    }

    @Test func aNewRevisionsAddressesKeepIdleConnectionsThatStayAndCloseTheOthers() {
        var script = PoolScript(addresses: ["10.0.0.1:8080", "10.0.0.2:8080"])
        script.run(
            [
                (.lease("r1"), "connect 10.0.0.1:8080 for r1; open +1"),
                (.lease("r2"), "connect 10.0.0.2:8080 for r2; open +1"),
                (.connected("r1", as: "c1"), "lease c1 to r1 (new)"),
                (.connected("r2", as: "c2"), "lease c2 to r2 (new)"),
                (.release("c1"), "idle +1"),
                (.readdress(["10.0.0.2:8080", "10.0.0.3:8080"]), ""),
                // The rotation starts again at the first address, where c2 waits.
                (.release("c2"), "idle +1"),
                (.lease("r3"), "lease c2 to r3 (reused); close c1; idle -2"),
                (.lease("r4"), "connect 10.0.0.3:8080 for r4; open +1"),
                // c1's address is gone: its close frees a slot, and c1 never comes back.
                (.close("c1"), "open -1"),
                (.readdress([]), ""),
                (.lease("r5"), "fail r5: cannot connect: upstream 'svc' has no addresses"),
                (.release("c2"), "close c2"),
            ]
        )
    }

    @Test func shutdownClosesEveryIdleConnection() {
        var script = PoolScript()
        script.run(
            [
                (.lease("r1"), "connect 10.0.0.1:8080 for r1; open +1"),
                (.lease("r2"), "connect 10.0.0.1:8080 for r2; open +1"),
                (.connected("r1", as: "c1"), "lease c1 to r1 (new)"),
                (.connected("r2", as: "c2"), "lease c2 to r2 (new)"),
                (.release("c1"), "idle +1"),
                (.shutdown, "svc: close c1; idle -1"),
                (.close("c1"), "open -1"),
                (.shutdown, ""),
            ]
        )
    }
}
