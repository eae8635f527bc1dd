import FicusCore
import FicusRollout
import FicusStore
import Foundation
import Testing

@testable import FicusRuntime

@Suite struct BlueGreenWiringTests {
    let author = ChangeAuthor(author: "runtime-tests", reason: "", action: "bluegreen.test")

    @Test func aFailedCheckIsRecordedAndRefusesTheSwitch() async throws {
        let clock = ManualClock()
        let temporary = try TemporaryStore(clock: clock)
        try await temporary.commit("orders", RuntimeFixtures.orders)
        let green = [Endpoint(host: "127.0.0.1", port: 10)]

        // The first deploy turns the plain upstream into slots: its addresses active in blue, green idle.
        let deployed = try await BlueGreenWiring.apply(
            upstream: "legacy", store: temporary.store, author: self.author, creatingSlotsFor: .green
        ) { _ in .deployRequested(now: clock.now, slot: .green, addresses: green) }
        let revision = try #require(deployed.revision)
        let slots = try #require(revision.configuration.upstream(named: "legacy")?.slots)
        #expect(slots.active == .blue)
        #expect(slots.green == green)
        #expect(!deployed.lines.isEmpty)

        // A check writes no revision, only its audit line and the state a later switch reads.
        let checked = try await BlueGreenWiring.apply(
            upstream: "legacy", store: temporary.store, author: self.author, creatingSlotsFor: nil
        ) { _ in .checkFailed(now: clock.now, slot: .green, addresses: green, reason: "GET /healthz: 500") }
        #expect(checked.revision == nil)
        #expect(try await temporary.store.latest()?.number == revision.number)

        await #expect(throws: BlueGreenWiring.Refused.self) {
            try await BlueGreenWiring.apply(
                upstream: "legacy", store: temporary.store, author: self.author, creatingSlotsFor: nil
            ) { _ in .switchRequested(now: clock.now, force: false) }
        }
        #expect(try await temporary.store.latest()?.number == revision.number, "a refused switch changes nothing")
    }
}
