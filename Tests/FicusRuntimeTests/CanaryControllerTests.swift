import FicusCore
import FicusRollout
import FicusStore
import Foundation
import Testing

@testable import FicusRuntime

@Suite struct CanaryControllerTests {
    /// Starts a canary of `orders` towards `orders-v2` (5% then 100%, one minute a step) as `ficus canary start`
    /// does, at the clock's time.
    func startCanary(_ temporary: TemporaryStore, clock: ManualClock) async throws {
        let spec = CanarySpec(route: "orders", target: "orders-v2", steps: [5, 100], interval: 60)
        var machine = try CanaryStateMachine(spec: spec)
        let actions = machine.handle(.started(now: clock.now))
        let row = CanaryRow(
            route: "orders",
            stateJSON: Data(),
            active: true,
            ruleName: "canary-orders-1",
            stickiness: nil,
            version: 0,
            updatedAt: clock.now
        )
        let wiring = CanaryWiring(store: temporary.store, author: "runtime-tests")
        _ = try await wiring.write(
            row: row, before: nil, after: machine.state, actions: actions, action: "canary.start", expectVersion: nil)
    }

    func state(_ temporary: TemporaryStore) async throws -> CanaryState {
        let row = try #require(try await temporary.store.canary(route: "orders"))
        return try CanaryState(jsonData: row.stateJSON)
    }

    @Test func aStepIsJudgedOnTheClockOnceItsWindowsHaveLanded() async throws {
        let clock = ManualClock()
        let started = clock.now
        let temporary = try TemporaryStore(clock: clock)
        try await temporary.commit("orders", RuntimeFixtures.orders)
        try await self.startCanary(temporary, clock: clock)
        let revisionAtStart = try #require(try await temporary.store.latest())
        #expect(revisionAtStart.configuration.routes[0].rules.map(\.condition) == [.percentage(5)])

        let controller = CanaryController(
            store: temporary.store,
            holder: "proxy-a",
            configuration: FicusNode.Configuration.Canary(),
            windows: FicusNode.Configuration.Windows(),
            clock: clock,
            logger: RuntimeFixtures.logger
        )
        try await RuntimeFixtures.running(controller) {
            // The first pass takes the lease and ticks: the step is not due, nothing is judged.
            try await clock.waitForSleepers(1)
            #expect(try await temporary.store.canaryLease(route: "orders")?.holder == "proxy-a")
            try await clock.advance(by: .milliseconds(59_750))
            #expect(try await self.state(temporary).history.isEmpty)

            // Due at one minute: the controller asks for the step's windows and waits for every proxy to flush its
            // last one (one 10 s window, the pace for a one-minute step, plus half a second).
            try await clock.advance(by: .milliseconds(250))
            try await clock.advance(by: .seconds(10))
            #expect(try await self.state(temporary).history.isEmpty)

            try await clock.advance(by: .milliseconds(500))
            let judged = try await self.state(temporary)
            let evaluation = try #require(judged.history.first)
            #expect(judged.history.count == 1)
            #expect(evaluation.from == started)
            #expect(evaluation.at == started.addingTimeInterval(70.5))
            #expect(evaluation.weight == 5)
            // No traffic reached the new side: the step holds (it is judged again one interval later) at 5%.
            guard case .hold = evaluation.verdict else {
                Issue.record("expected a hold, got \(evaluation.verdict)")
                return
            }
            guard case .running(let progress) = judged.phase else {
                Issue.record("expected a running canary, got \(judged.phase)")
                return
            }
            #expect(progress.index == 0)
            #expect(try await temporary.store.latest()?.number == revisionAtStart.number, "a hold writes no revision")
        }
        #expect(try await temporary.store.canaryLease(route: "orders") == nil, "the lease is released on shutdown")
    }
}
