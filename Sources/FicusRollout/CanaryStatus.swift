import Foundation

/// What `ficus canary status` shows: the phase, step k of n, the weight, each gate's latest value against its
/// threshold, and the time to the next judgement.
///
/// Computed from a stored `CanaryState` and a time, so that any process (the CLI, another proxy, the report) can show
/// it without asking the proxy that drives the canary.
public struct CanaryStatus: Sendable, Codable, Equatable {
    /// The canary's route.
    ///
    /// From the spec.
    public var route: String

    /// The canary's target upstream.
    ///
    /// From the spec.
    public var target: String

    /// `pending`, `running`, `paused`, `promoted` or `aborted`.
    ///
    /// A word rather than the enum so that JSON output is stable for scripts.
    public var phase: String

    /// Why the canary ended, for promoted and aborted canaries.
    ///
    /// The abort reason names the gate, its value and its threshold.
    public var reason: String?

    /// The current step, from 1; 0 before start, the last step once finished by passing.
    ///
    /// For an aborted canary, the step it was aborted at (from history), or 0.
    public var step: Int

    /// The number of steps.
    ///
    /// From the spec.
    public var stepCount: Int

    /// The new side's weight now, in percent.
    ///
    /// See `CanaryState.weight`.
    public var weight: Int

    /// Share of the canary done, 0...1: finished steps plus the counted part of the current one, over all steps.
    ///
    /// What the progress bar draws; 1 once promoted.
    public var progress: Double

    /// Seconds until the current step is judged; nil unless running or paused. Frozen while paused.
    ///
    /// Zero when the judgement is overdue (the controller is reading windows, or no controller holds the lease).
    public var secondsToNextJudgement: TimeInterval?

    /// The gates with the latest values seen at this step (or the last step judged, once finished).
    ///
    /// Values are nil before the step's first judgement.
    public var gates: [GateStatus]

    /// The reason the current step is holding, if its latest judgement held.
    ///
    /// Tells the operator why a canary is not moving: usually too little traffic.
    public var holding: String?

    /// The proxy that drives the canary (holds its lease), or nil when none does; set by whoever read the lease.
    ///
    /// A running canary with no driver is not moving: no `ficus serve` runs on its store, or the last one died and
    /// its lease has not expired yet.
    public var driver: String?

    /// What a failed gate does: `abort` or `pause`.
    public var onFail: String

    /// Intervals a step may hold without a judgement before the canary pauses (no evidence).
    public var maxHold: Int

    /// Computes the status of `state` at `now`.
    ///
    /// Pure, so `--watch` simply recomputes it from the freshly read state.
    public init(state: CanaryState, now: Date) {
        let spec = state.spec
        self.route = spec.route
        self.target = spec.target
        self.phase = Self.word(for: state.phase)
        self.stepCount = spec.steps.count
        self.weight = state.weight
        self.holding = nil
        self.driver = nil
        self.reason = nil
        self.secondsToNextJudgement = nil
        var latest: CanaryEvaluation? = state.history.last
        switch state.phase {
        case .pending:
            self.step = 0
            self.progress = 0
            latest = nil
        case .running(let progress), .paused(let progress, _):
            let counted: TimeInterval
            if case .paused = state.phase {
                counted = progress.countedBefore
            } else {
                counted = progress.counted(at: now)
            }
            self.step = progress.index + 1
            self.secondsToNextJudgement = max(0, progress.judgeAfter - counted)
            let fraction = min(1, counted / max(progress.judgeAfter, .leastNonzeroMagnitude))
            self.progress = (Double(progress.index) + fraction) / Double(spec.steps.count)
            if latest?.step != progress.index {
                latest = nil
            }
            if let latest, case .hold(let reason) = latest.verdict {
                self.holding = reason
            }
            if case .paused = state.phase, let reason = state.pausedReason {
                self.reason = "paused by the canary: \(reason)"
            }
        case .promoted(_, let reason):
            self.step = spec.steps.count
            self.progress = 1
            self.reason = reason
        case .aborted(_, let step, let reason):
            self.step = step.map { $0 + 1 } ?? 0
            self.progress = Double(step ?? 0) / Double(spec.steps.count)
            self.reason = reason
            if step == nil || latest?.step != step {
                latest = nil
            }
        }
        let values = latest.map { GateValues($0.inputs) }
        var gates = [
            GateStatus(
                name: "requests",
                value: latest.map { Double($0.inputs.newRequests) },
                threshold: Double(spec.gates.minRequests),
                comparison: .atLeast
            ),
            GateStatus(
                name: "error rate",
                value: values?.errorRate,
                threshold: spec.gates.maxErrorRate,
                comparison: .atMost
            ),
            GateStatus(
                name: "p99 ratio",
                value: values?.p99Ratio,
                threshold: spec.gates.maxP99Ratio,
                comparison: .atMost
            ),
        ]
        if let maxDiffRate = spec.gates.maxDiffRate {
            gates.append(
                GateStatus(
                    name: "diff rate",
                    value: values?.diffRate,
                    threshold: maxDiffRate,
                    comparison: .atMost
                )
            )
        }
        self.gates = gates
        self.onFail = spec.onFail.rawValue
        self.maxHold = spec.maxHold
    }

    /// The word for a phase, as in `phase`.
    ///
    /// Shared with the state machine's refusals so that both use the same words.
    public static func word(for phase: CanaryPhase) -> String {
        switch phase {
        case .pending:
            return "pending"
        case .running:
            return "running"
        case .paused:
            return "paused"
        case .promoted:
            return "promoted"
        case .aborted:
            return "aborted"
        }
    }
}

/// One gate's latest value against its threshold.
///
/// Minimum requests is shown as a gate too, since it is the one that holds a quiet canary.
public struct GateStatus: Sendable, Codable, Equatable {
    /// Which way a value must lie relative to the threshold.
    ///
    /// Requests must reach their minimum; rates and ratios must stay under their maximum.
    public enum Comparison: String, Sendable, Codable, Equatable {
        case atMost
        case atLeast
    }

    /// `requests`, `error rate`, `p99 ratio` or `diff rate`.
    ///
    /// The same names reasons use.
    public var name: String

    /// The latest value; nil before the first judgement or when undefined.
    ///
    /// Rates are fractions, as in the spec.
    public var value: Double?

    /// The threshold from the spec.
    ///
    /// Rates are fractions, as in the spec.
    public var threshold: Double

    /// How `value` must compare to `threshold`.
    ///
    /// See `Comparison`.
    public var comparison: Comparison

    /// Whether the value is within the threshold; nil without a value.
    ///
    /// What the status line colours.
    public var passing: Bool? {
        guard let value = self.value else {
            return nil
        }
        return self.comparison == .atMost ? value <= self.threshold : value >= self.threshold
    }

    /// Creates a gate status.
    ///
    /// See the properties.
    public init(name: String, value: Double?, threshold: Double, comparison: Comparison) {
        self.name = name
        self.value = value
        self.threshold = threshold
        self.comparison = comparison
    }
}

extension CanaryStatus: CustomStringConvertible {
    /// A few lines for the terminal: headline with a progress bar, then one line per gate.
    ///
    /// The CLI prints this as is; `--json` prints the struct instead.
    public var description: String {
        let width = 20
        let filled = Int((self.progress * Double(width)).rounded(.down))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        var headline =
            "canary '\(self.route)' → '\(self.target)': \(self.phase), step \(self.step) of "
            + "\(self.stepCount), \(self.weight)% new [\(bar)]"
        if let seconds = self.secondsToNextJudgement {
            headline +=
                self.phase == "paused"
                ? ", \(RolloutFormat.duration(seconds)) left on this step (paused)"
                : ", next judgement in \(RolloutFormat.duration(seconds))"
        }
        var lines = [headline]
        if let reason = self.reason {
            lines.append("  \(reason)")
        }
        if let holding = self.holding {
            lines.append("  holding: \(holding)")
        }
        if self.phase == "running" || self.phase == "paused" || self.phase == "pending" {
            lines.append("  driven by: \(self.driver ?? "no proxy (start 'ficus serve' on this store)")")
        }
        lines.append("  on fail: \(self.onFail); pauses after \(self.maxHold) intervals without a judgement")
        for gate in self.gates {
            let isRate = gate.name.hasSuffix("rate")
            let format: (Double) -> String = {
                isRate ? RolloutFormat.percent($0) : RolloutFormat.number($0)
            }
            let value = gate.value.map(format) ?? "-"
            let sign = gate.comparison == .atMost ? "≤" : "≥"
            let verdict = gate.passing.map { $0 ? "ok" : (gate.comparison == .atLeast ? "holding" : "FAIL") } ?? ""
            lines.append("  \(gate.name): \(value) (\(sign) \(format(gate.threshold))) \(verdict)")
        }
        return lines.joined(separator: "\n")
    }
}
