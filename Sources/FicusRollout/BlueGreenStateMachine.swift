import FicusCore
import Foundation

/// The blue-green logic: takes `BlueGreenEvent`s, updates `BlueGreenState`, returns `BlueGreenAction`s.
///
/// Pure, like the canary's, so that the refusals (empty slot, failed check, nothing to switch back to) are tested
/// without a proxy.
public struct BlueGreenStateMachine: Sendable {
    /// The state after the last event.
    ///
    /// Store it after every event that did not end in `.refuse`.
    public private(set) var state: BlueGreenState

    /// Creates the machine over `state`.
    ///
    /// See `BlueGreenState.init(upstream:slots:)` for a first use.
    public init(state: BlueGreenState) {
        self.state = state
    }

    /// Handles one event and returns what to do, in order.
    ///
    /// See `BlueGreenEvent` and `BlueGreenAction`.
    public mutating func handle(_ event: BlueGreenEvent) -> [BlueGreenAction] {
        switch event {
        case .deployRequested(_, let slot, let addresses):
            return self.deploy(slot: slot, addresses: addresses)
        case .checkPassed(let now, let slot, let addresses):
            return self.checked(slot: slot, check: SlotCheck(addresses: addresses, at: now, failure: nil))
        case .checkFailed(let now, let slot, let addresses, let reason):
            return self.checked(slot: slot, check: SlotCheck(addresses: addresses, at: now, failure: reason))
        case .switchRequested(_, let force):
            return self.switchTo(self.state.slots.active.other, force: force, back: false)
        case .switchBackRequested(_, let force):
            guard let previous = self.state.previousActive else {
                return [
                    .refuse(
                        "\(self.name) has no previous slot to switch back to (never switched, or it was "
                            + "redeployed since)"
                    )
                ]
            }
            return self.switchTo(previous, force: force, back: true)
        }
    }

    /// Sets the idle slot's addresses; refused for the active slot and for no addresses.
    ///
    /// Redeploying the slot `--back` would return to forgets it, since it no longer holds what served before.
    private mutating func deploy(slot: BlueGreenSlots.Slot, addresses: [Endpoint]) -> [BlueGreenAction] {
        guard slot != self.state.slots.active else {
            return [
                .refuse(
                    "\(self.name): slot '\(slot.rawValue)' is active; deploy to the idle slot "
                        + "'\(slot.other.rawValue)'"
                )
            ]
        }
        guard !addresses.isEmpty else {
            return [.refuse("\(self.name): no addresses to deploy to slot '\(slot.rawValue)'")]
        }
        self.state.slots[slot] = addresses
        if self.state.previousActive == slot {
            self.state.previousActive = nil
        }
        let list = addresses.map(\.description).joined(separator: " ")
        return [
            .setSlotAddresses(slot, addresses),
            .record(
                "\(self.name): deployed \(list) to idle slot "
                    + "'\(slot.rawValue)'"
            ),
        ]
    }

    /// Stores a check made on the slot's current addresses; refused when the addresses changed meanwhile.
    ///
    /// A stale pass must never unblock a switch to addresses nobody probed.
    private mutating func checked(slot: BlueGreenSlots.Slot, check: SlotCheck) -> [BlueGreenAction] {
        guard check.addresses == self.state.slots[slot] else {
            return [
                .refuse(
                    "\(self.name): check of slot '\(slot.rawValue)' ignored: its addresses changed "
                        + "while it ran; check again"
                )
            ]
        }
        self.state[check: slot] = check
        let outcome = check.failure.map { "failed: \($0)" } ?? "passed"
        return [.record("\(self.name): check of slot '\(slot.rawValue)' \(outcome)")]
    }

    /// Makes `target` active; refused when it has no addresses, or when its last check failed unless `force`.
    ///
    /// An unchecked slot may be switched to (not every upstream has probe paths); the audit line says it was not
    /// checked.
    private mutating func switchTo(_ target: BlueGreenSlots.Slot, force: Bool, back: Bool) -> [BlueGreenAction] {
        let slotName = "'\(target.rawValue)'"
        guard !self.state.slots[target].isEmpty else {
            return [.refuse("\(self.name): slot \(slotName) has no addresses; deploy to it first")]
        }
        let check = self.state.currentCheck(of: target)
        var note = ""
        if let check, let failure = check.failure {
            guard force else {
                return [
                    .refuse(
                        "\(self.name): slot \(slotName) failed its last check (\(failure)); check again or "
                            + "use --force"
                    )
                ]
            }
            note = " (forced past a failed check: \(failure))"
        } else if check == nil {
            note = " (not checked)"
        }
        let from = self.state.slots.active
        self.state.slots.active = target
        self.state.previousActive = from
        let verb = back ? "switched back" : "switched"
        return [.setActive(target), .record("\(self.name): \(verb) from '\(from.rawValue)' to \(slotName)\(note)")]
    }

    /// `upstream 'orders'`: how audit lines and refusals name the upstream.
    ///
    /// Matches the object names of validation errors.
    private var name: String {
        "upstream '\(self.state.upstream)'"
    }
}
