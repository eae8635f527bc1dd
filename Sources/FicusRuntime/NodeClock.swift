import Foundation

/// The time a node reads and waits on: the system's in production, one a test moves by hand.
///
/// Everything the runtime stores is in wall-clock time (metric windows, heartbeats, canary steps and leases), and
/// everything it does periodically waits on this clock, so a test drives a window, a heartbeat or a canary step by
/// advancing it instead of sleeping.
public protocol NodeClock: Sendable {
    /// The wall-clock time now.
    var now: Date { get }

    /// Suspends for `duration` of this clock's time; throws `CancellationError` when the task is cancelled.
    func sleep(for duration: Duration) async throws
}

/// The system's clock: `Date()` and `Task.sleep`.
public struct SystemNodeClock: NodeClock {
    public init() {}

    public var now: Date { Date() }

    public func sleep(for duration: Duration) async throws {
        try await Task.sleep(for: duration)
    }
}

extension Duration {
    /// The duration in seconds, as `TimeInterval` (for `Date` arithmetic).
    var seconds: TimeInterval {
        let parts = self.components
        return TimeInterval(parts.seconds) + TimeInterval(parts.attoseconds) / 1e18
    }

    /// `interval` seconds as a duration.
    static func interval(_ interval: TimeInterval) -> Duration {
        .nanoseconds(Int64((interval * 1e9).rounded()))
    }
}
