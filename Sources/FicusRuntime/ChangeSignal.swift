import Foundation
import NIOConcurrencyHelpers

/// Tells waiters that the store changed: a new revision, or a canary, blue-green or lease row (`StoreEvent.changed`).
///
/// The store feed fires it for every event of the store's watch; the canary controller waits on it instead of
/// polling, so a canary started, paused or released on another host is acted upon within the watch's latency (a
/// `NOTIFY` on PostgreSQL, one `data_version` poll on SQLite). A generation count rather than a stream: a waiter
/// names the generation it has seen, so a change that lands while it works (not waiting) is not lost, and a wait
/// that is cancelled ends quietly without ending later ones.
public final class ChangeSignal: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        /// Waits created but not registered yet, and those of them cancelled before registering.
        var unregistered: Set<UInt64> = []
        var cancelled: Set<UInt64> = []
        var nextID: UInt64 = 0
    }

    private let state = NIOLockedValueBox(State())

    public init() {}

    /// The number of changes so far.
    public var generation: UInt64 { self.state.withLockedValue { $0.generation } }

    /// Counts a change and wakes every waiter.
    public func fire() {
        let woken = self.state.withLockedValue { state in
            state.generation += 1
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for continuation in woken {
            continuation.resume()
        }
    }

    /// Returns once the generation is past `seen` (at once if it already is), or when the task is cancelled.
    public func wait(past seen: UInt64) async {
        let id = self.state.withLockedValue { state in
            defer { state.nextID += 1 }
            state.unregistered.insert(state.nextID)
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = self.state.withLockedValue { state -> Bool in
                    state.unregistered.remove(id)
                    if state.cancelled.remove(id) != nil || state.generation > seen {
                        return true
                    }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow {
                    continuation.resume()
                }
            }
        } onCancel: {
            let waiter = self.state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
                guard let waiter = state.waiters.removeValue(forKey: id) else {
                    // Not registered yet: the registration sees this. Already woken: nothing to do.
                    if state.unregistered.contains(id) {
                        state.cancelled.insert(id)
                    }
                    return nil
                }
                return waiter
            }
            waiter?.resume()
        }
    }
}
