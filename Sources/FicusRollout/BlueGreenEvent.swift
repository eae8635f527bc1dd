import FicusCore
import Foundation

/// Something that happened to a blue-green upstream.
///
/// Commands and probe results, each with the time it happened.
public enum BlueGreenEvent: Sendable, Equatable {
    /// `ficus bluegreen deploy UPSTREAM --slot S ADDR...`.
    ///
    /// Only the idle slot can be deployed to; replacing live addresses is an ordinary upstream edit.
    case deployRequested(now: Date, slot: BlueGreenSlots.Slot, addresses: [Endpoint])

    /// Every probe of `ficus bluegreen check` on `addresses` of `slot` answered 2xx.
    ///
    /// Carries the addresses so that a check that raced a redeploy is refused.
    case checkPassed(now: Date, slot: BlueGreenSlots.Slot, addresses: [Endpoint])

    /// A probe of `ficus bluegreen check` failed.
    ///
    /// See `checkPassed`; `reason` says which probe and how.
    case checkFailed(now: Date, slot: BlueGreenSlots.Slot, addresses: [Endpoint], reason: String)

    /// `ficus bluegreen switch UPSTREAM [--force]`: make the idle slot active.
    ///
    /// `force` overrides a failed check, never an empty slot.
    case switchRequested(now: Date, force: Bool)

    /// `ficus bluegreen switch UPSTREAM --back [--force]`: make the previous slot active again.
    ///
    /// See `BlueGreenState.previousActive`.
    case switchBackRequested(now: Date, force: Bool)
}

/// What the wiring must do after a blue-green event, in order.
///
/// `.setSlotAddresses` and `.setActive` each become one revision, with the following `.record` as its reason.
public enum BlueGreenAction: Sendable, Equatable {
    /// Replace the addresses of `slot` on the upstream.
    ///
    /// Always the idle slot, so no live traffic moves.
    case setSlotAddresses(BlueGreenSlots.Slot, [Endpoint])

    /// Make `slot` the upstream's active slot.
    ///
    /// One revision: proxies swap tables atomically and drain the old slot's connections.
    case setActive(BlueGreenSlots.Slot)

    /// Append `line` to the audit log.
    ///
    /// Checks are recorded too, so `ficus history` shows what a switch was based on.
    case record(String)

    /// The event was refused; show `message` and change nothing.
    ///
    /// The message says what to do instead.
    case refuse(String)
}
