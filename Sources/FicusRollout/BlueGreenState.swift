import FicusCore
import Foundation

/// What a blue-green upstream must remember besides its configuration: the last check of each slot and the slot to
/// switch back to.
///
/// The addresses and the active slot live in the configuration too; the wiring builds this state from the upstream's
/// `BlueGreenSlots` plus the stored checks, and writes back what the actions say.
public struct BlueGreenState: Sendable, Codable, Equatable {
    /// The upstream's name.
    ///
    /// Audit lines and refusals name it.
    public var upstream: String

    /// Both slots' addresses and which one is active.
    ///
    /// The same type the configuration stores, so nothing is translated.
    public var slots: BlueGreenSlots

    /// The latest check of the blue slot, or nil if never checked.
    ///
    /// Stored with the addresses checked, so a redeploy makes an earlier check irrelevant without erasing it.
    public var blueCheck: SlotCheck?

    /// The latest check of the green slot, or nil if never checked.
    ///
    /// See `blueCheck`.
    public var greenCheck: SlotCheck?

    /// The slot that was active before the last switch, or nil if there was none or it was redeployed since.
    ///
    /// `--back` goes only to a slot whose addresses are those that served before, never to new ones.
    public var previousActive: BlueGreenSlots.Slot?

    /// Creates the state of an upstream with `slots` and no checks or switches yet.
    ///
    /// See the properties.
    public init(upstream: String, slots: BlueGreenSlots) {
        self.upstream = upstream
        self.slots = slots
        self.blueCheck = nil
        self.greenCheck = nil
        self.previousActive = nil
    }

    /// The latest check of `slot`.
    ///
    /// Lets callers address a slot by name instead of switching over it.
    public subscript(check slot: BlueGreenSlots.Slot) -> SlotCheck? {
        get {
            slot == .blue ? self.blueCheck : self.greenCheck
        }
        set {
            if slot == .blue {
                self.blueCheck = newValue
            } else {
                self.greenCheck = newValue
            }
        }
    }

    /// The latest check of `slot` if it was made on the slot's current addresses.
    ///
    /// A check of addresses that have since been replaced says nothing about the slot.
    public func currentCheck(of slot: BlueGreenSlots.Slot) -> SlotCheck? {
        guard let check = self[check: slot], check.addresses == self.slots[slot] else {
            return nil
        }
        return check
    }
}

/// The outcome of probing a slot's configured paths.
///
/// Kept with the addresses probed so that a check never vouches for addresses it did not see.
public struct SlotCheck: Sendable, Codable, Equatable {
    /// The addresses the probes went to.
    ///
    /// See `BlueGreenState.currentCheck(of:)`.
    public var addresses: [Endpoint]

    /// When the check finished.
    ///
    /// Shown by status.
    public var at: Date

    /// Nil if every probe answered 2xx, else what failed (`GET /health on 10.0.0.5:8080: 503`).
    ///
    /// A failed check blocks a switch unless forced.
    public var failure: String?

    /// Creates a check.
    ///
    /// See the properties.
    public init(addresses: [Endpoint], at: Date, failure: String?) {
        self.addresses = addresses
        self.at = at
        self.failure = failure
    }
}
