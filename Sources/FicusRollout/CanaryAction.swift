import Foundation

/// What the controller must do, in order, after an event.
///
/// `.setWeight`, `.promote` and `.abort` each become one revision; a `.record` that follows one of them is that
/// revision's reason and audit line and belongs in the same transaction as the revision and the stored state.
public enum CanaryAction: Sendable, Equatable {
    /// Set the new side's weight on the route to `percent`, with sticky buckets, in one revision.
    ///
    /// Sticky buckets mean a user in the first 5% stays in the first 25%, so nobody bounces between sides.
    case setWeight(percent: Int)

    /// Read the windows from `from` to `to` and send `.evaluated` with what they say.
    ///
    /// The window starts at the step's weight change, so all of it was served at this weight.
    case evaluate(from: Date, to: Date)

    /// Send all of the route's traffic to the new side in one revision (its default becomes the target and the
    /// canary's rule goes); with `reverseShadow`, shadow to legacy from now on.
    ///
    /// One revision, so that a rollback of it returns to the last canary step in one command.
    case promote(reverseShadow: Bool)

    /// Send the route back to 0% new in one revision, with `reason` recorded.
    ///
    /// Emitted for a failed gate and for `ficus canary abort`, not for an operator override: that operator's own
    /// revision already decided where the traffic goes.
    case abort(reason: String)

    /// Append `line` to the audit log.
    ///
    /// Every transition records one line, so `ficus history` tells the whole canary.
    case record(String)

    /// Nothing is due before `until`: send `.tick` then (or earlier, which is harmless).
    ///
    /// A deadline rather than a duration, so that a restart computes the same wake-up.
    case wait(until: Date)

    /// The event was refused; show `message` to the operator and change nothing.
    ///
    /// For commands that do not fit the phase: pausing a paused canary, anything on a finished one.
    case refuse(String)
}
