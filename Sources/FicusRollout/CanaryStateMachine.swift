import Foundation

/// The canary controller's logic: takes `CanaryEvent`s, updates `CanaryState`, returns `CanaryAction`s.
///
/// No clock, store or network: the wiring in `ficus serve` reads windows, writes revisions and sleeps, so every rule
/// of a canary (judge after the interval, hold on thin evidence, abort on a failed gate, pause freezes time) is tested
/// as plain calls. Events that do not fit the phase are answered as documented on each case below; after promotion
/// or abort, operator commands get `.refuse` and everything else (ticks, evaluations, overrides) gets no action.
public struct CanaryStateMachine: Sendable {
    /// The state after the last event; store it after every `handle` that returned actions.
    ///
    /// Public so that the wiring can persist it and status can be computed from it.
    public private(set) var state: CanaryState

    /// Creates the machine for a new canary, after validating `spec` on its own.
    ///
    /// Throws `CanarySpecInvalid` naming every bad field; checks against the configuration are
    /// `CanarySpec.validate(in:)`, which the CLI runs first.
    public init(spec: CanarySpec) throws {
        let errors = spec.validate()
        guard errors.isEmpty else {
            throw CanarySpecInvalid(errors: errors)
        }
        self.state = CanaryState(spec: spec)
    }

    /// Resumes a canary from stored state.
    ///
    /// The state is trusted: it was valid when stored and the spec never changes.
    public init(state: CanaryState) {
        self.state = state
    }

    /// Handles one event and returns what to do, in order.
    ///
    /// See `CanaryEvent` and `CanaryAction`.
    public mutating func handle(_ event: CanaryEvent) -> [CanaryAction] {
        switch event {
        case .started(let now):
            return self.start(now: now)
        case .tick(let now):
            return self.tick(now: now)
        case .evaluated(let now, let inputs):
            return self.evaluated(now: now, inputs: inputs)
        case .paused(let now):
            return self.pause(now: now)
        case .resumed(let now):
            return self.resume(now: now)
        case .promoteRequested(let now):
            return self.promoteRequested(now: now)
        case .abortRequested(let now, let reason):
            return self.abortRequested(now: now, reason: reason)
        case .operatorOverride(let now, let command):
            return self.override(now: now, command: command)
        }
    }

    // MARK: - Transitions

    /// Pending → running at the first step; refused otherwise.
    ///
    /// A second start of the same canary must not reset its progress.
    private mutating func start(now: Date) -> [CanaryAction] {
        guard case .pending = self.state.phase else {
            return [.refuse("\(self.name) is already \(self.phaseWord)")]
        }
        let spec = self.state.spec
        let progress = CanaryStepProgress(index: 0, startedAt: now, interval: spec.interval)
        self.state.phase = .running(progress)
        let steps = spec.steps.map(String.init).joined(separator: ",")
        let line =
            "\(self.name): started towards '\(spec.target)', steps \(steps)% every "
            + "\(RolloutFormat.duration(spec.interval)); \(self.stepLabel(0)) at \(spec.steps[0])%"
        return [.setWeight(percent: spec.steps[0]), .record(line), .wait(until: progress.dueAt)]
    }

    /// While running: asks for the evidence once the step is due, else says how long to wait; otherwise nothing.
    ///
    /// A due step asks again on every tick until `.evaluated` arrives, so an evaluation lost in a restart is simply
    /// asked for again.
    private func tick(now: Date) -> [CanaryAction] {
        guard case .running(let progress) = self.state.phase else {
            return []
        }
        if progress.counted(at: now) >= progress.judgeAfter {
            return [.evaluate(from: progress.startedAt, to: now)]
        }
        return [.wait(until: progress.dueAt)]
    }

    /// Judges a due running step: pass moves on (or promotes after the last), hold waits one more interval, fail
    /// aborts.
    ///
    /// Not running: no action. Running but not due (a late answer for a step already judged): the current wait.
    private mutating func evaluated(now: Date, inputs: GateInputs) -> [CanaryAction] {
        guard case .running(var progress) = self.state.phase else {
            return []
        }
        guard progress.counted(at: now) >= progress.judgeAfter else {
            return [.wait(until: progress.dueAt)]
        }
        let spec = self.state.spec
        let verdict = spec.gates.judge(inputs)
        let weight = spec.steps[progress.index]
        self.appendHistory(
            CanaryEvaluation(
                step: progress.index,
                weight: weight,
                from: progress.startedAt,
                at: now,
                inputs: inputs,
                verdict: verdict
            )
        )
        let step = "\(self.stepLabel(progress.index)) (\(weight)%)"
        switch verdict {
        case .pass:
            let summary = self.summary(inputs)
            let next = progress.index + 1
            guard next < spec.steps.count else {
                self.state.phase = .promoted(at: now, reason: "every step passed")
                let line = "\(self.name): \(step) passed (\(summary)); promoted to '\(spec.target)'"
                return [.promote(reverseShadow: spec.reverseShadowOnPromote), .record(line)]
            }
            let nextProgress = CanaryStepProgress(index: next, startedAt: now, interval: spec.interval)
            self.state.phase = .running(nextProgress)
            let line = "\(self.name): \(step) passed (\(summary)); \(self.stepLabel(next)) at \(spec.steps[next])%"
            return [.setWeight(percent: spec.steps[next]), .record(line), .wait(until: nextProgress.dueAt)]
        case .hold(let reason):
            progress.judgeAfter = progress.counted(at: now) + spec.interval
            let holds = (progress.holds ?? 0) + 1
            progress.holds = holds
            if holds >= spec.maxHold {
                // Never promote on no evidence, and never hold forever in silence: stop and say why.
                let why = "no evidence: \(holds) intervals at \(step) without a judgement (\(reason))"
                return self.pauseByItself(progress, now: now, reason: why)
            }
            self.state.phase = .running(progress)
            let line = "\(self.name): \(step) held: \(reason); judged again in \(RolloutFormat.duration(spec.interval))"
            return [.record(line), .wait(until: progress.dueAt)]
        case .fail(let reason):
            let fullReason = "\(reason) at \(step)"
            if spec.onFail == .pause {
                return self.pauseByItself(progress, now: now, reason: "gate failed: \(fullReason)")
            }
            self.state.phase = .aborted(at: now, step: progress.index, reason: fullReason)
            return [.abort(reason: fullReason), .record("\(self.name): aborted: \(fullReason); back to 0% new")]
        }
    }

    /// Running → paused by the canary itself, at the step's weight, with `reason` kept for status and the report.
    ///
    /// An operator resumes (counting on, the hold count reset), promotes or aborts.
    private mutating func pauseByItself(_ progress: CanaryStepProgress, now: Date, reason: String) -> [CanaryAction] {
        var progress = progress
        progress.countedBefore = progress.counted(at: now)
        self.state.phase = .paused(progress, since: now)
        self.state.pausedReason = reason
        let weight = self.state.spec.steps[progress.index]
        return [.record("\(self.name): paused at \(self.stepLabel(progress.index)) (\(weight)%): \(reason)")]
    }

    /// Running → paused, folding the stretch that ends into the counted time.
    ///
    /// The weight stays: pausing is for looking, aborting is for going back.
    private mutating func pause(now: Date) -> [CanaryAction] {
        guard case .running(var progress) = self.state.phase else {
            return [.refuse("\(self.name) is \(self.phaseWord), only a running canary can be paused")]
        }
        progress.countedBefore = progress.counted(at: now)
        self.state.phase = .paused(progress, since: now)
        let counted = RolloutFormat.duration(progress.countedBefore)
        let weight = self.state.spec.steps[progress.index]
        let line =
            "\(self.name): paused at \(self.stepLabel(progress.index)) (\(weight)%), \(counted) of "
            + "\(RolloutFormat.duration(progress.judgeAfter)) counted"
        return [.record(line)]
    }

    /// Paused → running at the same step, counting on from where the pause stopped it.
    ///
    /// The step is not restarted, so pausing never makes a canary judge a step on less than one interval.
    private mutating func resume(now: Date) -> [CanaryAction] {
        guard case .paused(var progress, _) = self.state.phase else {
            return [.refuse("\(self.name) is \(self.phaseWord), only a paused canary can be resumed")]
        }
        progress.runningSince = now
        progress.holds = 0
        // A step paused by a failed gate or for lack of evidence is judged afresh one interval after the resume.
        if self.state.pausedReason != nil {
            progress.judgeAfter = max(progress.judgeAfter, progress.countedBefore + self.state.spec.interval)
        }
        self.state.pausedReason = nil
        self.state.phase = .running(progress)
        let remaining = RolloutFormat.duration(progress.judgeAfter - progress.countedBefore)
        let weight = self.state.spec.steps[progress.index]
        let line = "\(self.name): resumed at \(self.stepLabel(progress.index)) (\(weight)%), judged in \(remaining)"
        return [.record(line), .wait(until: progress.dueAt)]
    }

    /// Running or paused → promoted, skipping the remaining steps.
    ///
    /// Refused before start and after the end: there is nothing to promote from.
    private mutating func promoteRequested(now: Date) -> [CanaryAction] {
        guard let progress = self.activeProgress else {
            return [.refuse("\(self.name) is \(self.phaseWord), only a running or paused canary can be promoted")]
        }
        let spec = self.state.spec
        let skipped = spec.steps[(progress.index + 1)...].map { "\($0)%" }.joined(separator: ", ")
        let reason =
            "promoted by an operator at \(self.stepLabel(progress.index))"
            + (skipped.isEmpty ? "" : ", skipping \(skipped)")
        self.state.phase = .promoted(at: now, reason: reason)
        return [.promote(reverseShadow: spec.reverseShadowOnPromote), .record("\(self.name): \(reason)")]
    }

    /// Pending, running or paused → aborted with the operator's reason; back to 0% new.
    ///
    /// A pending canary never set a weight, so it only records.
    private mutating func abortRequested(now: Date, reason: String) -> [CanaryAction] {
        if case .pending = self.state.phase {
            let fullReason = "aborted by an operator before start: \(reason)"
            self.state.phase = .aborted(at: now, step: nil, reason: fullReason)
            return [.record("\(self.name): \(fullReason)")]
        }
        guard let progress = self.activeProgress else {
            return [.refuse("\(self.name) is \(self.phaseWord), there is nothing to abort")]
        }
        let fullReason = "aborted by an operator at \(self.stepLabel(progress.index)): \(reason)"
        self.state.phase = .aborted(at: now, step: progress.index, reason: fullReason)
        return [.abort(reason: fullReason), .record("\(self.name): \(fullReason); back to 0% new")]
    }

    /// Pending, running or paused → aborted by an operator's kill, rollback or flip; no revision of its own.
    ///
    /// The operator's revision already says where the traffic goes, so writing 0% new on top of a flip would fight
    /// it. On a finished canary it is nothing: a kill after a promotion is ordinary operation.
    private mutating func override(now: Date, command: OperatorOverride) -> [CanaryAction] {
        let reason: String
        let step: Int?
        switch self.state.phase {
        case .pending:
            reason = "aborted by \(command) before start"
            step = nil
        case .running(let progress), .paused(let progress, _):
            reason = "aborted by \(command) at \(self.stepLabel(progress.index))"
            step = progress.index
        case .promoted, .aborted:
            return []
        }
        self.state.phase = .aborted(at: now, step: step, reason: reason)
        return [.record("\(self.name): \(reason); the route is left as the operator set it")]
    }

    // MARK: - Helpers

    /// The progress of a running or paused step.
    ///
    /// The phases in which the canary holds a weight that an operator can promote or abort from.
    private var activeProgress: CanaryStepProgress? {
        switch self.state.phase {
        case .running(let progress), .paused(let progress, _):
            return progress
        case .pending, .promoted, .aborted:
            return nil
        }
    }

    /// Appends an evaluation, folding it into the last one when both are the same hold of the same step.
    ///
    /// See `CanaryState.history`.
    private mutating func appendHistory(_ evaluation: CanaryEvaluation) {
        if case .hold = evaluation.verdict, var last = self.state.history.last, last.step == evaluation.step,
            last.verdict == evaluation.verdict
        {
            last.at = evaluation.at
            last.inputs = evaluation.inputs
            last.count += 1
            self.state.history[self.state.history.count - 1] = last
        } else {
            self.state.history.append(evaluation)
        }
    }

    /// `canary 'orders'`: how audit lines and refusals name the canary.
    ///
    /// Matches the object names of validation errors.
    private var name: String {
        self.state.spec.objectName
    }

    /// `step 2/5` for the step at `index`.
    ///
    /// One-based, as status shows it.
    private func stepLabel(_ index: Int) -> String {
        "step \(index + 1)/\(self.state.spec.steps.count)"
    }

    /// The phase as a word for refusals: `pending`, `running`, `paused`, `promoted`, `aborted`.
    ///
    /// Same words as `CanaryStatus.phase`.
    private var phaseWord: String {
        CanaryStatus.word(for: self.state.phase)
    }

    /// The gate values of a passed step as a phrase: `120 requests, error rate 0%, p99 ratio 1.02`.
    ///
    /// Recorded with every pass so that the audit log shows what each step was promoted on.
    private func summary(_ inputs: GateInputs) -> String {
        let values = GateValues(inputs)
        var parts = ["\(inputs.newRequests) requests"]
        if let distinct = inputs.distinctIdentities {
            // Windows keep at most 32 distinct values each, so a union of 32 or more means "at least".
            parts.append(distinct >= 32 ? "32+ distinct users" : "\(distinct) distinct users")
        }
        if let errorRate = values.errorRate {
            parts.append("error rate \(RolloutFormat.percent(errorRate))")
        }
        if let p99Ratio = values.p99Ratio {
            parts.append("p99 ratio \(RolloutFormat.number(p99Ratio))")
        }
        if let diffRate = values.diffRate {
            parts.append("diff rate \(RolloutFormat.percent(diffRate))")
        }
        return parts.joined(separator: ", ")
    }
}
