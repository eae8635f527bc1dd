import FicusRuntime
import Foundation
import NIOConcurrencyHelpers

/// A `NodeClock` that moves only when a test advances it; its sleepers wake when their deadline is reached.
///
/// `advance(by:)` returns once every woken sleeper (and whatever else uses this clock) has gone back to sleep, so a
/// test sees the effects of the periodic work it triggered without sleeping itself.
final class ManualClock: NodeClock {
    private struct Sleeper {
        var deadline: Date
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now: Date
        var sleepers: [UInt64: Sleeper] = [:]
        /// Sleepers cancelled before they registered.
        var cancelled: Set<UInt64> = []
        var nextID: UInt64 = 0
    }

    private let state: NIOLockedValueBox<State>

    /// A clock at `now`: by default the present (so that what the store compares with its own clock agrees), on a
    /// whole second (the store keeps milliseconds).
    init(now: Date = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))) {
        self.state = NIOLockedValueBox(State(now: now))
    }

    var now: Date { self.state.withLockedValue { $0.now } }

    /// Sleepers waiting now.
    var sleeping: Int { self.state.withLockedValue { $0.sleepers.count } }

    func sleep(for duration: Duration) async throws {
        let id = self.state.withLockedValue { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let result = self.state.withLockedValue { state -> Result<Void, any Error>? in
                    if state.cancelled.remove(id) != nil { return .failure(CancellationError()) }
                    let deadline = state.now.addingTimeInterval(Self.seconds(duration))
                    if deadline <= state.now { return .success(()) }
                    state.sleepers[id] = Sleeper(deadline: deadline, continuation: continuation)
                    return nil
                }
                if let result { continuation.resume(with: result) }
            }
        } onCancel: {
            let sleeper = self.state.withLockedValue { state -> Sleeper? in
                guard let sleeper = state.sleepers.removeValue(forKey: id) else {
                    state.cancelled.insert(id)
                    return nil
                }
                return sleeper
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves the clock on by `duration`, wakes the sleepers that are due, and waits until `sleepers` are asleep
    /// again (by default as many as before: each woken loop has done its work and waits for its next turn).
    func advance(by duration: Duration, thenWaitFor sleepers: Int? = nil) async throws {
        let (due, expected) = self.state.withLockedValue { state -> ([Sleeper], Int) in
            let expected = sleepers ?? state.sleepers.count
            state.now = state.now.addingTimeInterval(Self.seconds(duration))
            let now = state.now
            let due = state.sleepers.filter { $0.value.deadline <= now }
            for id in due.keys { state.sleepers[id] = nil }
            return (Array(due.values), expected)
        }
        for sleeper in due { sleeper.continuation.resume() }
        try await self.waitForSleepers(expected)
    }

    /// Waits until `count` sleepers wait on this clock; the minute of real time it allows is a bound for a hang,
    /// not a timing (a loaded machine may take seconds to schedule a task).
    func waitForSleepers(_ count: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while self.sleeping < count {
            guard ContinuousClock.now < deadline else {
                throw ManualClockError.sleepersMissing(expected: count, sleeping: self.sleeping)
            }
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    private static func seconds(_ duration: Duration) -> TimeInterval {
        TimeInterval(duration.components.seconds) + TimeInterval(duration.components.attoseconds) / 1e18
    }
}

enum ManualClockError: Error {
    case sleepersMissing(expected: Int, sleeping: Int)
}
