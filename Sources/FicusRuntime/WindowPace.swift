import FicusRollout
import FicusStore
import Foundation
import NIOConcurrencyHelpers

/// How often a proxy writes its metric windows: the configured interval (`--window-interval`), or faster while a
/// canary runs.
///
/// A canary judges each step on the windows of its interval; with 10 s windows a 3 s step has none to judge. While
/// any canary is active every proxy writes at least four windows per (shortest) canary interval, whatever
/// the configured interval says, and the controller waits one such window (plus a margin) before it reads a step.
public enum WindowPace {
    /// The shortest window any proxy writes.
    public static let minimum: TimeInterval = 0.25

    /// The window interval given `configured` and the intervals of the active canaries.
    public static func interval(configured: TimeInterval, canaryIntervals: [TimeInterval]) -> TimeInterval {
        guard let shortest = canaryIntervals.min() else { return configured }
        return max(Self.minimum, min(configured, shortest / 4))
    }

    /// The intervals of the canaries active in `store` (none when it cannot be read: the configured pace holds).
    static func activeCanaryIntervals(_ store: any RolloutStore) async -> [TimeInterval] {
        guard let rows = try? await store.canaries(activeOnly: true) else { return [] }
        return rows.compactMap { try? CanaryState(jsonData: $0.stateJSON).spec.interval }
    }
}

/// Metric-window writes of this proxy that failed (thrown, or dropped by the telemetry file), counted so that the
/// canary controller judges a step whose windows were lost as a gate error rather than as "no data yet".
final class WindowFailures: Sendable {
    private let count = NIOLockedValueBox(0)

    func record(_ windows: Int) {
        self.count.withLockedValue { $0 += windows }
    }

    var total: Int { self.count.withLockedValue { $0 } }
}
