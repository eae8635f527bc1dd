import FicusCore
import Foundation
import Testing

@testable import FicusStore

/// A write that makes no revision (a canary step, a blue-green check, a released lease) is reported as
/// `StoreEvent.changed`, so that canary controllers wake on it instead of polling.
extension StoreEvent {
    /// Whether this is `.changed`.
    var isChange: Bool {
        switch self {
        case .changed: return true
        default: return false
        }
    }
}

@Suite("Store change events")
struct StoreChangeEventTests {
    /// Watches `store` (at revision 1), writes a canary row without a revision, and returns the events after the
    /// write that arrived within ten seconds, stopping at the first `.changed`.
    static func eventsAfterARolloutWrite(_ store: any StoreBackend) async throws -> [StoreEvent] {
        let collector = EventCollector(store.watch(pollInterval: 0.005))
        defer { collector.stop() }
        guard await collector.wait(for: { $0.revisionNumber == 1 }) != nil else {
            return []
        }
        let before = collector.events.count
        let row = CanaryRow(
            route: "orders", stateJSON: Data(#"{"s":"paused"}"#.utf8), active: true, ruleName: "canary-orders-1",
            stickiness: nil, version: 0, updatedAt: Date())
        try await store.writeCanary(row, expectVersion: nil, author: StoreFixtures.author("canary.pause"), change: nil)
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            let events = Array(collector.events.dropFirst(before))
            if events.contains(where: \.isChange) {
                return events
            }
            try await Task.sleep(for: .milliseconds(2))
        }
        return Array(collector.events.dropFirst(before))
    }

    @Test(arguments: StoreFixtures.backends)
    func aRolloutWriteWithoutARevisionIsReportedAsAChange(on backend: StoreFixtures.Backend) async throws {
        try await backend.withStore { store in
            let events = try await Self.eventsAfterARolloutWrite(store)
            let changed = events.contains { $0.isChange }
            #expect(changed, "\(events)")
            // No revision was made, so none is reported.
            #expect(events.allSatisfy { $0.revisionNumber == nil })
        }
    }
}
