import Foundation

/// Everything a canary controller must remember: the spec, where the canary is, and how every step was judged.
///
/// Stored by the wiring after every event (see `jsonData()`), so that a restarted proxy, or the proxy that takes over
/// the lease, continues from exactly here with the same next actions.
public struct CanaryState: Sendable, Codable, Equatable {
    /// The spec the canary was started with; never changed afterwards.
    ///
    /// Stored with the state so that a resumed canary keeps the thresholds it was started with.
    public var spec: CanarySpec

    /// Where the canary is.
    ///
    /// See `CanaryPhase`.
    public var phase: CanaryPhase

    /// Every judgement, oldest first; consecutive identical holds of one step are folded into one entry.
    ///
    /// What `ficus canary status` and the report's migration-progress section show; folding keeps a canary that
    /// holds for days on a quiet route from growing its stored row without bound.
    public var history: [CanaryEvaluation]

    /// Why the canary paused by itself (a gate failed with `--on-fail pause`, or `no evidence` after `maxHold`
    /// intervals without a judgement); nil while running and after an operator's pause.
    public var pausedReason: String?

    /// Creates the state of a canary that has not started yet.
    ///
    /// The first `.started` event sets the first weight.
    public init(spec: CanarySpec) {
        self.spec = spec
        self.phase = .pending
        self.history = []
    }

    /// The new side's weight the route should have now, in percent.
    ///
    /// Lets the wiring check, after a restart, that the last `.setWeight` actually reached the configuration.
    public var weight: Int {
        switch self.phase {
        case .pending, .aborted:
            return 0
        case .running(let progress), .paused(let progress, _):
            return self.spec.steps[progress.index]
        case .promoted:
            return 100
        }
    }

    /// Whether the canary is promoted or aborted.
    ///
    /// A finished canary takes no more events and its controller can stop, releasing the lease.
    public var isFinished: Bool {
        switch self.phase {
        case .promoted, .aborted:
            return true
        case .pending, .running, .paused:
            return false
        }
    }

    /// The state as JSON, with dates as fractional seconds since 2001-01-01 (Foundation's reference date) and sorted
    /// keys.
    ///
    /// One fixed format so that decoding gives back bit-for-bit the same dates: ISO 8601 drops sub-second parts, and
    /// seconds since 1970 add and subtract an offset that can move the last bit, either of which would change the
    /// next `.wait(until:)` after a restart. Sorted keys make equal states store as equal bytes.
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .deferredToDate
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(self)
    }

    /// Decodes a state written by `jsonData()`.
    ///
    /// The counterpart of `jsonData()`; see there for the format.
    public init(jsonData: Data) throws {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .deferredToDate
        self = try decoder.decode(CanaryState.self, from: jsonData)
    }
}

/// Where a canary is in its life.
///
/// Promoted and aborted are final: a new canary on the route is a new state.
public enum CanaryPhase: Sendable, Codable, Equatable {
    /// Created but not started: no weight has been set.
    ///
    /// Exists so that the state can be stored before the first revision is written.
    case pending

    /// A step is running at its weight.
    ///
    /// See `CanaryStepProgress`.
    case running(CanaryStepProgress)

    /// A step is frozen at its weight since `since`: traffic keeps flowing, time does not count and nothing is judged.
    ///
    /// Pausing keeps the weight because an operator pauses to look, not to roll back; abort rolls back.
    case paused(CanaryStepProgress, since: Date)

    /// The new side serves all of the route's traffic.
    ///
    /// `reason` says whether every step passed or an operator skipped the rest.
    case promoted(at: Date, reason: String)

    /// The route went back to legacy (or an operator took over) at the step at index `step` (nil: before start), for
    /// `reason`.
    ///
    /// The reason names the failed gate with its value and threshold, or the operator command; the step is kept
    /// apart so that status can show where the canary stopped.
    case aborted(at: Date, step: Int?, reason: String)
}

/// How far the current step has run, with paused time left out.
///
/// Counting is split into a total before the latest resume and the running stretch since, so that pausing and
/// resuming never needs a timer and survives a restart.
public struct CanaryStepProgress: Sendable, Codable, Equatable {
    /// The step's position in `CanarySpec.steps`, from 0.
    ///
    /// Status shows it from 1.
    public var index: Int

    /// When the step's weight was set.
    ///
    /// The start of the evidence window: every request since then went through this weight.
    public var startedAt: Date

    /// Seconds counted before `runningSince`.
    ///
    /// Grows at each pause by the stretch that ended.
    public var countedBefore: TimeInterval

    /// When the current unpaused stretch began: the step start, or the latest resume.
    ///
    /// While paused, the value from before the pause; it is replaced at resume.
    public var runningSince: Date

    /// The counted seconds after which the step is judged: one interval, plus one more per hold.
    ///
    /// A hold waits a whole interval again so that the next judgement sees more evidence, not the same.
    public var judgeAfter: TimeInterval

    /// Judgements in a row that held this step since it started or was last resumed; nil counts as 0 (states
    /// stored before it was kept). After `CanarySpec.maxHold` of them the canary pauses: no evidence.
    public var holds: Int?

    /// Creates the progress of a step that starts now.
    ///
    /// See the properties.
    public init(index: Int, startedAt: Date, interval: TimeInterval) {
        self.index = index
        self.startedAt = startedAt
        self.countedBefore = 0
        self.runningSince = startedAt
        self.judgeAfter = interval
    }

    /// The seconds counted at `now` while running.
    ///
    /// A clock that went backwards (a takeover by a proxy whose clock lags) counts as no time, never negative.
    public func counted(at now: Date) -> TimeInterval {
        self.countedBefore + max(0, now.timeIntervalSince(self.runningSince))
    }

    /// When the step is due to be judged, if it keeps running.
    ///
    /// What `.wait(until:)` carries.
    public var dueAt: Date {
        self.runningSince.addingTimeInterval(self.judgeAfter - self.countedBefore)
    }
}

/// One judgement of a step.
///
/// Inputs are stored with the verdict so that a reader can recompute it and see why it went that way.
public struct CanaryEvaluation: Sendable, Codable, Equatable {
    /// The step's position in `CanarySpec.steps`, from 0.
    ///
    /// See `CanaryStepProgress.index`.
    public var step: Int

    /// The new side's weight during the step, in percent.
    ///
    /// Redundant with the spec, kept so that history reads on its own.
    public var weight: Int

    /// The evidence window: from the step's start to the judgement.
    ///
    /// The same window the `.evaluate(from:to:)` action asked for.
    public var from: Date

    /// When the step was judged; for a folded hold, the latest time.
    ///
    /// The end of the evidence window.
    public var at: Date

    /// The numbers the verdict was computed from; for a folded hold, the latest.
    ///
    /// See `GateInputs`.
    public var inputs: GateInputs

    /// The outcome.
    ///
    /// See `GateVerdict`.
    public var verdict: GateVerdict

    /// How many consecutive judgements this entry stands for; above 1 only for folded holds.
    ///
    /// See `CanaryState.history`.
    public var count: Int

    /// Creates an evaluation standing for one judgement.
    ///
    /// See the properties.
    public init(step: Int, weight: Int, from: Date, at: Date, inputs: GateInputs, verdict: GateVerdict) {
        self.step = step
        self.weight = weight
        self.from = from
        self.at = at
        self.inputs = inputs
        self.verdict = verdict
        self.count = 1
    }

    /// The gate values of `inputs`.
    ///
    /// Derived rather than stored so that stored values and inputs can never disagree.
    public var values: GateValues {
        GateValues(self.inputs)
    }
}
