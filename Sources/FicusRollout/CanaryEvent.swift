import Foundation

/// Something that happened to a canary: an operator command, a controller tick, or the windows read for a step.
///
/// Every event carries the time it happened, read once by the wiring from its clock, so that the state machine has no
/// clock of its own and tests control time exactly.
public enum CanaryEvent: Sendable, Equatable {
    /// `ficus canary start` was accepted: set the first weight.
    ///
    /// Only a pending canary starts.
    case started(now: Date)

    /// The controller read the windows an `.evaluate(from:to:)` action asked for.
    ///
    /// Ignored unless the canary is running and its step is due, so a late or duplicated answer cannot judge a step
    /// twice.
    case evaluated(now: Date, GateInputs)

    /// `ficus canary pause`: keep the weight, stop counting time.
    ///
    /// See `CanaryPhase.paused`.
    case paused(now: Date)

    /// `ficus canary resume`: continue the same step where its counted time stopped.
    ///
    /// The step is not restarted: the time it already ran still counts.
    case resumed(now: Date)

    /// `ficus canary promote`: skip the remaining steps and send all traffic to the new side.
    ///
    /// An operator's judgement replaces the gates'.
    case promoteRequested(now: Date)

    /// `ficus canary abort`: send the route back to legacy.
    ///
    /// The reason is the operator's, recorded verbatim.
    case abortRequested(now: Date, reason: String)

    /// An operator changed the route by other means (kill, rollback, flip) while the canary ran.
    ///
    /// The canary ends so that no controller fights an operator; see `CanaryAction` for what is and is not written.
    case operatorOverride(now: Date, OperatorOverride)

    /// Time passed: judge the step if it is due, otherwise say how long to wait.
    ///
    /// The controller sends one at each `.wait(until:)` deadline and whenever it wakes for another reason.
    case tick(now: Date)
}

/// An operator command that takes a route out of a canary's hands.
///
/// Named so that the abort reason says which command it was.
public enum OperatorOverride: Sendable, Codable, Equatable, CustomStringConvertible {
    /// `ficus kill`: all traffic to legacy.
    ///
    /// The kill switch wins over every rule, the canary's included.
    case kill

    /// `ficus rollback`: the configuration of an earlier revision was restored.
    ///
    /// Carries the revision restored.
    case rollback(toRevision: Int)

    /// `ficus flip`: the route's default upstream was changed.
    ///
    /// Carries the new default.
    case flip(to: String)

    /// The command as a phrase for reasons: `ficus kill`, `ficus rollback to revision 12`, `ficus flip to 'x'`.
    ///
    /// Read after `aborted by`.
    public var description: String {
        switch self {
        case .kill:
            return "ficus kill"
        case .rollback(let revision):
            return "ficus rollback to revision \(revision)"
        case .flip(let upstream):
            return "ficus flip to '\(upstream)'"
        }
    }
}
