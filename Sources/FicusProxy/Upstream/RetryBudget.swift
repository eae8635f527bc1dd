import NIOConcurrencyHelpers

/// The retry budget's arithmetic for one upstream, as a value: Envoy's `RetryBudget` (docs/PROXY.md, Retries).
///
/// Retries in flight may be at most `percent` of the requests in flight (of routes with a retry policy), or
/// `minConcurrent`, whichever is more. Under a 100% failing upstream, retries therefore stay at a fifth of the load
/// (plus a small floor) instead of multiplying it by the number of attempts.
struct RetryBudgetCounts: Equatable {
    /// Requests in flight to the upstream whose route has a retry policy.
    var active = 0
    /// Requests among them that hold a retry (from its grant until the request finishes).
    var retrying = 0

    /// A request finished; `heldRetry`: its last retry still held a slot.
    mutating func finish(heldRetry: Bool) {
        self.active = max(0, self.active - 1)
        if heldRetry { self.retryEnded() }
    }

    /// A retry's slot is given back.
    mutating func retryEnded() {
        self.retrying = max(0, self.retrying - 1)
    }

    /// Whether one more request may start retrying.
    func allows(percent: Int, minConcurrent: Int) -> Bool {
        let share = self.active * percent / 100
        return self.retrying < max(minConcurrent, share)
    }
}

/// The retry budgets of every upstream of one proxy, shared by its event loops.
///
/// A lock around a small dictionary: touched twice per request of a route with a retry policy (start and finish)
/// and once or twice per retry asked for; routes without a policy never touch it. A retry holds its slot while it is
/// outstanding: from its grant until the request finishes or asks for the next retry, which needs a slot again (as
/// Envoy counts active retries).
final class RetryBudget: Sendable {
    private let counts = NIOLockedValueBox<[String: RetryBudgetCounts]>([:])

    init() {}

    /// A request of a route with a retry policy started towards `upstream`.
    ///
    /// An upstream's entry stays when its counts fall to zero (one per upstream name ever retried towards, a few
    /// dozen bytes each): removing it and inserting it again hashed the name twice more per request.
    func requestStarted(_ upstream: String) {
        self.counts.withLockedValue { $0[upstream, default: RetryBudgetCounts()].active += 1 }
    }

    /// The request finished; `heldRetry`: its last retry still held a slot.
    func requestFinished(_ upstream: String, heldRetry: Bool) {
        self.counts.withLockedValue { counts in
            counts[upstream]?.finish(heldRetry: heldRetry)
        }
    }

    /// A retry's attempt ended without finishing its request (it failed and another retry is asked for).
    func retryEnded(_ upstream: String) {
        self.counts.withLockedValue { counts in
            counts[upstream]?.retryEnded()
        }
    }

    /// Takes a retry slot for a request to `upstream` if the budget allows one.
    func tryAcquire(_ upstream: String, percent: Int, minConcurrent: Int) -> Bool {
        self.counts.withLockedValue { counts in
            var entry = counts[upstream, default: RetryBudgetCounts()]
            guard entry.allows(percent: percent, minConcurrent: minConcurrent) else { return false }
            entry.retrying += 1
            counts[upstream] = entry
            return true
        }
    }

    /// The counts of `upstream`, for tests and status.
    func counts(_ upstream: String) -> RetryBudgetCounts {
        self.counts.withLockedValue { $0[upstream] ?? RetryBudgetCounts() }
    }
}
