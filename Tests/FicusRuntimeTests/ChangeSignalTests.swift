import FicusCore
import FicusRollout
import FicusStore
import Foundation
import Testing

@testable import FicusRuntime

/// The canary controller waits for the store's changes and its own deadlines, not a poll (issue 18, item 4).
@Suite struct ChangeSignalTests {
    @Test func aWaitEndsOnAChangeAfterTheGenerationSeenOrOnCancellation() async throws {
        let signal = ChangeSignal()
        let seen = signal.generation
        signal.fire()
        // A change that landed before the wait began is not lost.
        await signal.wait(past: seen)
        #expect(signal.generation == seen + 1)

        let waiting = Task { await signal.wait(past: signal.generation) }
        try await Task.sleep(for: .milliseconds(20))
        signal.fire()
        await waiting.value

        let cancelled = Task { await signal.wait(past: signal.generation) }
        cancelled.cancel()
        await cancelled.value
        // Later waits still work after a cancelled one.
        let later = Task { await signal.wait(past: signal.generation) }
        try await Task.sleep(for: .milliseconds(20))
        signal.fire()
        await later.value
    }

    @Test func aCanaryStartedElsewhereIsTakenUpOnTheChangeNotOnAPoll() async throws {
        let clock = ManualClock()
        let temporary = try TemporaryStore(clock: clock)
        try await temporary.commit("orders", RuntimeFixtures.orders)
        let changes = ChangeSignal()
        let controller = CanaryController(
            store: temporary.store,
            holder: "proxy-a",
            configuration: FicusNode.Configuration.Canary(),
            windows: FicusNode.Configuration.Windows(),
            clock: clock,
            changes: changes,
            logger: RuntimeFixtures.logger
        )
        try await RuntimeFixtures.running(controller) {
            // No canary: the controller waits for its safety net (5 s), not 250 ms.
            try await clock.waitForSleepers(1)
            try await CanaryControllerTests().startCanary(temporary, clock: clock)
            try await clock.advance(by: .seconds(1))
            #expect(try await temporary.store.canaryLease(route: "orders") == nil)

            // The store feed reports the write: the controller looks at once, with the clock standing still.
            changes.fire()
            #expect(try await RuntimeFixtures.eventually {
                try await temporary.store.canaryLease(route: "orders")?.holder == "proxy-a"
            })
            try await clock.waitForSleepers(1)
            // Holding a running step due in a minute, it next wakes for its lease (every 5 s), not every 250 ms:
            // half a second later nothing was read or written, so the lease row is the one it wrote.
            let lease = try await temporary.store.canaryLease(route: "orders")
            try await clock.advance(by: .milliseconds(500))
            #expect(try await temporary.store.canaryLease(route: "orders") == lease)
            try await clock.advance(by: .milliseconds(4_600))
            #expect(try await RuntimeFixtures.eventually {
                try await temporary.store.canaryLease(route: "orders") != lease
            })
        }
    }

    @Test func theDeadlineIsTheEarliestLeaseCheckOrDueStep() {
        let now = Date(timeIntervalSince1970: 1_000)
        var a = CanaryController.RouteMemory()
        a.nextLeaseCheck = now.addingTimeInterval(5)
        var b = CanaryController.RouteMemory()
        b.nextLeaseCheck = now.addingTimeInterval(5)
        b.nextDue = now.addingTimeInterval(2)
        #expect(CanaryController.deadline([:]) == nil)
        #expect(CanaryController.deadline(["a": a]) == now.addingTimeInterval(5))
        #expect(CanaryController.deadline(["a": a, "b": b]) == now.addingTimeInterval(2))
    }
}
