import FicusDiff
import Foundation
import NIOConcurrencyHelpers

/// Counts, per endpoint and minute, the shadow copies that were chosen but never compared, until the runtime takes
/// them for the store (`ShadowDropCount`).
///
/// A report's coverage (eligible = compared + shadow errors + dropped) needs the drops by endpoint, which the
/// `ficus_shadow_dropped_total{route,reason}` counter does not have. A drop costs one template of the path, a clock
/// read and one dictionary update under a lock (at capacity, for every request past the in-flight bound); counts that
/// a failed store write loses are counted by the store as dropped telemetry, like metric windows.
public final class ShadowCoverage: Sendable {
    private struct Key: Hashable {
        var minute: Int64
        var route: String
        var endpoint: String
        var reason: String
        var sent: Bool
    }

    /// Distinct keys held between two takes; past it, drops of new endpoints are folded into one `other` endpoint
    /// of their route so that a flood of distinct paths cannot grow the table without bound.
    public static let maxKeys = 10_000
    /// The endpoint drops are counted under once `maxKeys` is reached.
    public static let overflowEndpoint = "(other endpoints)"

    private let counts = NIOLockedValueBox<[Key: Int]>([:])
    private let clock: @Sendable () -> Int64

    /// Creates a counter; `clock` gives whole seconds since 1970 (tests pass their own).
    public init(clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }) {
        self.clock = clock
    }

    /// Counts one copy of a `method` `target` request on `route` that was not compared.
    public func dropped(route: String, method: String, target: String, reason: String, sent: Bool) {
        self.dropped(route: route, endpoint: ShadowRecord.endpoint(method: method, target: target), reason: reason, sent: sent)
    }

    /// Counts one copy of `endpoint` on `route` that was not compared.
    public func dropped(route: String, endpoint: String, reason: String, sent: Bool) {
        let now = self.clock()
        let minute = now - ((now % 60) + 60) % 60
        var key = Key(minute: minute, route: route, endpoint: endpoint, reason: reason, sent: sent)
        self.counts.withLockedValue { counts in
            if counts[key] == nil, counts.count >= Self.maxKeys {
                key.endpoint = Self.overflowEndpoint
            }
            counts[key, default: 0] += 1
        }
    }

    /// Hands over the counts since the last take, sorted by minute, route, endpoint and reason.
    public func take() -> [ShadowDropCount] {
        let taken = self.counts.withLockedValue { counts -> [Key: Int] in
            defer { counts = [:] }
            return counts
        }
        return taken.map { key, count in
            ShadowDropCount(
                minute: key.minute,
                route: key.route,
                endpoint: key.endpoint,
                reason: key.reason,
                sent: key.sent,
                count: count
            )
        }
        .sorted { ($0.minute, $0.route, $0.endpoint, $0.reason) < ($1.minute, $1.route, $1.endpoint, $1.reason) }
    }
}
