import FicusCore
import FicusRollout
import Foundation
import Testing

@Suite("Blue-green")
struct BlueGreenStateMachineTests {
    let blue = [Endpoint(host: "10.0.0.1", port: 8080)]
    let green = [Endpoint(host: "10.0.0.2", port: 8080), Endpoint(host: "10.0.0.3", port: 8080)]

    /// A machine for upstream `orders` with blue active and green empty.
    func machine() -> BlueGreenStateMachine {
        BlueGreenStateMachine(
            state: BlueGreenState(upstream: "orders", slots: BlueGreenSlots(blue: self.blue, green: [], active: .blue))
        )
    }

    @Test("Deploy, check, switch, switch back")
    func happyPath() {
        var machine = self.machine()
        #expect(
            machine.handle(.deployRequested(now: Fixtures.at(0), slot: .green, addresses: self.green)) == [
                .setSlotAddresses(.green, self.green),
                .record("upstream 'orders': deployed 10.0.0.2:8080 10.0.0.3:8080 to idle slot 'green'"),
            ]
        )
        #expect(
            machine.handle(.checkPassed(now: Fixtures.at(5), slot: .green, addresses: self.green)) == [
                .record("upstream 'orders': check of slot 'green' passed")
            ]
        )
        #expect(
            machine.handle(.switchRequested(now: Fixtures.at(10), force: false)) == [
                .setActive(.green), .record("upstream 'orders': switched from 'blue' to 'green'"),
            ]
        )
        #expect(machine.state.slots.active == .green)
        #expect(machine.state.previousActive == .blue)
        #expect(
            machine.handle(.switchBackRequested(now: Fixtures.at(20), force: false)) == [
                .setActive(.blue), .record("upstream 'orders': switched back from 'green' to 'blue' (not checked)"),
            ]
        )
        #expect(machine.state.slots.active == .blue)
    }

    @Test("Switching to a slot without addresses is refused, even forced")
    func refusesEmptySlot() {
        var machine = self.machine()
        for force in [false, true] {
            #expect(
                machine.handle(.switchRequested(now: Fixtures.at(0), force: force)) == [
                    .refuse("upstream 'orders': slot 'green' has no addresses; deploy to it first")
                ]
            )
        }
        #expect(machine.state.slots.active == .blue)
    }

    @Test("A failed last check blocks the switch unless forced; a new passing check unblocks it")
    func failedCheckBlocks() {
        var machine = self.machine()
        _ = machine.handle(.deployRequested(now: Fixtures.at(0), slot: .green, addresses: self.green))
        _ = machine.handle(
            .checkFailed(
                now: Fixtures.at(1),
                slot: .green,
                addresses: self.green,
                reason: "GET /health on 10.0.0.3:8080: 503"
            )
        )
        #expect(
            machine.handle(.switchRequested(now: Fixtures.at(2), force: false)) == [
                .refuse(
                    "upstream 'orders': slot 'green' failed its last check (GET /health on 10.0.0.3:8080: 503); "
                        + "check again or use --force"
                )
            ]
        )
        var forced = machine
        #expect(forced.handle(.switchRequested(now: Fixtures.at(2), force: true)).first == .setActive(.green))

        _ = machine.handle(.checkPassed(now: Fixtures.at(3), slot: .green, addresses: self.green))
        #expect(machine.handle(.switchRequested(now: Fixtures.at(4), force: false)).first == .setActive(.green))
    }

    @Test("Deploying to the active slot, deploying nothing and a check of replaced addresses are refused")
    func refusals() {
        var machine = self.machine()
        #expect(
            machine.handle(.deployRequested(now: Fixtures.at(0), slot: .blue, addresses: self.green)) == [
                .refuse("upstream 'orders': slot 'blue' is active; deploy to the idle slot 'green'")
            ]
        )
        #expect(
            machine.handle(.deployRequested(now: Fixtures.at(0), slot: .green, addresses: [])) == [
                .refuse("upstream 'orders': no addresses to deploy to slot 'green'")
            ]
        )
        _ = machine.handle(.deployRequested(now: Fixtures.at(0), slot: .green, addresses: self.green))
        #expect(
            machine.handle(.checkPassed(now: Fixtures.at(1), slot: .green, addresses: self.blue)) == [
                .refuse(
                    "upstream 'orders': check of slot 'green' ignored: its addresses changed while it ran; check again"
                )
            ]
        )
        #expect(machine.state.greenCheck == nil)
    }

    @Test("A failed check of old addresses does not block a redeployed slot")
    func redeployForgetsOldCheck() {
        var machine = self.machine()
        _ = machine.handle(.deployRequested(now: Fixtures.at(0), slot: .green, addresses: self.blue))
        _ = machine.handle(.checkFailed(now: Fixtures.at(1), slot: .green, addresses: self.blue, reason: "503"))
        _ = machine.handle(.deployRequested(now: Fixtures.at(2), slot: .green, addresses: self.green))
        #expect(
            machine.handle(.switchRequested(now: Fixtures.at(3), force: false)) == [
                .setActive(.green), .record("upstream 'orders': switched from 'blue' to 'green' (not checked)"),
            ]
        )
    }

    @Test("Switch back is refused before any switch and after the previous slot was redeployed")
    func switchBackRefusals() {
        var machine = self.machine()
        let refusal = BlueGreenAction.refuse(
            "upstream 'orders' has no previous slot to switch back to (never switched, or it was redeployed since)"
        )
        #expect(machine.handle(.switchBackRequested(now: Fixtures.at(0), force: false)) == [refusal])
        _ = machine.handle(.deployRequested(now: Fixtures.at(0), slot: .green, addresses: self.green))
        _ = machine.handle(.switchRequested(now: Fixtures.at(1), force: false))
        _ = machine.handle(.deployRequested(now: Fixtures.at(2), slot: .blue, addresses: self.green))
        #expect(machine.handle(.switchBackRequested(now: Fixtures.at(3), force: false)) == [refusal])
    }

    @Test("The state survives a JSON round trip")
    func stateRoundTrips() throws {
        var machine = self.machine()
        _ = machine.handle(.deployRequested(now: Fixtures.at(0), slot: .green, addresses: self.green))
        _ = machine.handle(.checkPassed(now: Fixtures.at(1), slot: .green, addresses: self.green))
        let data = try JSONEncoder().encode(machine.state)
        #expect(try JSONDecoder().decode(BlueGreenState.self, from: data) == machine.state)
    }
}
