import NIOConcurrencyHelpers
import NIOCore

/// The state a test upstream shares between its connections and the test: behaviour, recordings, open channels
/// and the tasks waiting for requests.
///
/// Connections live on several event loops while the test reads from its own task, so everything sits behind one
/// lock, and promises are completed outside it.
final class UpstreamRecorder: Sendable {
    private struct Waiter {
        var id: Int
        var count: Int
        var promise: EventLoopPromise<[TestUpstream.RecordedRequest]>
    }

    private struct State {
        var behavior: TestUpstream.Behavior
        var received: [TestUpstream.RecordedRequest] = []
        var connectionsAccepted = 0
        var openChannels: [Int: any Channel] = [:]
        var waiters: [Waiter] = []
        var nextWaiterID = 0
        var isShutDown = false
    }

    private let state: NIOLockedValueBox<State>

    init(behavior: TestUpstream.Behavior) {
        self.state = NIOLockedValueBox(State(behavior: behavior))
    }

    var behavior: TestUpstream.Behavior {
        get { self.state.withLockedValue { $0.behavior } }
        set { self.state.withLockedValue { $0.behavior = newValue } }
    }

    var received: [TestUpstream.RecordedRequest] {
        self.state.withLockedValue { $0.received }
    }

    var connectionsAccepted: Int {
        self.state.withLockedValue { $0.connectionsAccepted }
    }

    var openConnections: Int {
        self.state.withLockedValue { $0.openChannels.count }
    }

    /// Registers a new connection and returns its id, or `nil` when the upstream is shutting down.
    ///
    /// Ids count from 1 in order of acceptance so that tests can name connections.
    func connectionAccepted(_ channel: any Channel) -> Int? {
        self.state.withLockedValue { state in
            guard !state.isShutDown else {
                return nil
            }
            state.connectionsAccepted += 1
            state.openChannels[state.connectionsAccepted] = channel
            return state.connectionsAccepted
        }
    }

    func connectionClosed(_ id: Int) {
        self.state.withLockedValue { _ = $0.openChannels.removeValue(forKey: id) }
    }

    func record(_ request: TestUpstream.RecordedRequest) {
        let ready = self.state.withLockedValue { state in
            state.received.append(request)
            let count = state.received.count
            let ready = state.waiters.filter { $0.count <= count }
            state.waiters.removeAll { $0.count <= count }
            return ready.map { ($0.promise, state.received) }
        }
        for (promise, received) in ready {
            promise.succeed(received)
        }
    }

    func waitForRequests(
        _ count: Int,
        timeout: TimeAmount,
        on eventLoop: any EventLoop
    ) async throws -> [TestUpstream.RecordedRequest] {
        enum Registration {
            case ready([TestUpstream.RecordedRequest])
            case waiting(Int, EventLoopFuture<[TestUpstream.RecordedRequest]>)
            case shutDown
        }
        let registration: Registration = self.state.withLockedValue { state in
            if state.received.count >= count {
                return .ready(state.received)
            }
            if state.isShutDown {
                return .shutDown
            }
            state.nextWaiterID += 1
            let promise = eventLoop.makePromise(of: [TestUpstream.RecordedRequest].self)
            state.waiters.append(Waiter(id: state.nextWaiterID, count: count, promise: promise))
            return .waiting(state.nextWaiterID, promise.futureResult)
        }
        switch registration {
        case .ready(let received):
            return received
        case .shutDown:
            throw FicusTestingError(.shutDown, "the test upstream was shut down")
        case .waiting(let id, let future):
            let timer = eventLoop.scheduleTask(in: timeout) {
                self.expireWaiter(id, wanted: count, timeout: timeout)
            }
            defer { timer.cancel() }
            return try await future.get()
        }
    }

    private func expireWaiter(_ id: Int, wanted: Int, timeout: TimeAmount) {
        let expired = self.state.withLockedValue { state in
            let index = state.waiters.firstIndex { $0.id == id }
            return index.map { (state.waiters.remove(at: $0).promise, state.received.count) }
        }
        guard let (promise, got) = expired else {
            return
        }
        let seconds = Double(timeout.nanoseconds) / 1e9
        promise.fail(FicusTestingError(.timedOut, "waited \(seconds) s for \(wanted) requests, received \(got)"))
    }

    /// Marks the upstream as shut down and returns the channels still open; pending waits fail.
    ///
    /// The caller closes the channels outside the lock, since closing runs handlers that take it.
    func shutDown() -> [any Channel] {
        let (channels, waiters) = self.state.withLockedValue { state in
            state.isShutDown = true
            let waiters = state.waiters
            state.waiters.removeAll()
            return (Array(state.openChannels.values), waiters)
        }
        for waiter in waiters {
            waiter.promise.fail(FicusTestingError(.shutDown, "the test upstream was shut down"))
        }
        return channels
    }
}
