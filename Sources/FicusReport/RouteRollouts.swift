import Foundation

/// A route's latest canary as the report shows it: where it stands, its gates, and every judgement so far.
///
/// Built by the caller from the rollout store (the report module does not read canary states itself), so the report
/// shows exactly what `ficus canary status` shows. Rates and shares are percentages (0–100), as elsewhere in the report.
public struct RouteCanary: Sendable, Equatable, Codable {
    /// The upstream the canary moves traffic to.
    public var target: String
    /// `pending`, `running`, `paused`, `promoted` or `aborted`.
    public var phase: String
    /// The current step from 1 (the step it ended at once finished; 0 before the first).
    public var step: Int
    public var stepCount: Int
    /// The new side's weight now, in percent.
    public var weight: Int
    /// Share of the canary done, in percent.
    public var progressPercent: Double
    /// Why it was promoted or aborted; null while it runs.
    public var reason: String?
    /// Why the current step is holding (usually too little traffic); null otherwise.
    public var holding: String?
    /// The proxy driving it (`host:pid:id`); null when none holds a live lease or it has finished.
    public var driver: String?
    /// When it was promoted or aborted; null while it runs.
    public var endedAt: Date?
    /// The gates with their latest values at this step.
    public var gates: [CanaryGate]
    /// Every judgement of a step, oldest first; consecutive holds of one step are folded into one with a count.
    public var judgements: [CanaryJudgement]

    public init(
        target: String,
        phase: String,
        step: Int,
        stepCount: Int,
        weight: Int,
        progressPercent: Double,
        reason: String?,
        holding: String?,
        driver: String?,
        endedAt: Date?,
        gates: [CanaryGate],
        judgements: [CanaryJudgement]
    ) {
        self.target = target
        self.phase = phase
        self.step = step
        self.stepCount = stepCount
        self.weight = weight
        self.progressPercent = progressPercent
        self.reason = reason
        self.holding = holding
        self.driver = driver
        self.endedAt = endedAt
        self.gates = gates
        self.judgements = judgements
    }

    private enum CodingKeys: String, CodingKey {
        case target, phase, step, stepCount, weight, progressPercent, reason, holding, driver, endedAt, gates
        case judgements
    }

    /// Encodes every key, nil as null; see `MigrationReport.encode(to:)`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.target, forKey: .target)
        try container.encode(self.phase, forKey: .phase)
        try container.encode(self.step, forKey: .step)
        try container.encode(self.stepCount, forKey: .stepCount)
        try container.encode(self.weight, forKey: .weight)
        try container.encode(self.progressPercent, forKey: .progressPercent)
        try container.encode(self.reason, forKey: .reason)
        try container.encode(self.holding, forKey: .holding)
        try container.encode(self.driver, forKey: .driver)
        try container.encode(self.endedAt, forKey: .endedAt)
        try container.encode(self.gates, forKey: .gates)
        try container.encode(self.judgements, forKey: .judgements)
    }

    /// Whether the report should show the canary: it is still under way, or it ended inside `window`.
    ///
    /// A canary that finished before the window says nothing about it.
    func belongs(in window: ReportWindow) -> Bool {
        guard let ended = self.endedAt else {
            return true
        }
        return window.contains(ended)
    }
}

/// One canary gate: its latest value against its threshold.
///
/// `requests` must reach its threshold; the others (`error rate`, `p99 ratio`, `diff rate`) must stay at or under it.
public struct CanaryGate: Sendable, Equatable, Codable {
    public var name: String
    /// The latest value (rates in percent); null before the step's first judgement.
    public var value: Double?
    /// The threshold (rates in percent).
    public var threshold: Double
    /// Whether the value is within the threshold; null without a value.
    public var passing: Bool?

    public init(name: String, value: Double?, threshold: Double, passing: Bool?) {
        self.name = name
        self.value = value
        self.threshold = threshold
        self.passing = passing
    }

    private enum CodingKeys: String, CodingKey {
        case name, value, threshold, passing
    }

    /// Encodes every key, nil as null; see `MigrationReport.encode(to:)`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.name, forKey: .name)
        try container.encode(self.value, forKey: .value)
        try container.encode(self.threshold, forKey: .threshold)
        try container.encode(self.passing, forKey: .passing)
    }
}

/// One judgement of a canary step.
///
/// The audit trail says what the controller did; this says what it saw.
public struct CanaryJudgement: Sendable, Equatable, Codable {
    /// The step from 1.
    public var step: Int
    /// The new side's weight during the step, in percent.
    public var weight: Int
    public var at: Date
    /// `pass`, `hold` or `fail`.
    public var verdict: String
    /// What held or failed the step; empty for a pass.
    public var reason: String
    /// Requests the new side served in the evidence window.
    public var newRequests: Int
    /// How many consecutive judgements this stands for (above 1 for folded holds).
    public var count: Int

    public init(step: Int, weight: Int, at: Date, verdict: String, reason: String, newRequests: Int, count: Int) {
        self.step = step
        self.weight = weight
        self.at = at
        self.verdict = verdict
        self.reason = reason
        self.newRequests = newRequests
        self.count = count
    }
}

/// A blue-green upstream a route sends traffic to: which slot is active, what the idle one holds, who previews it,
/// and the deploys, checks and switches in the window.
///
/// Switches change an upstream rather than a route, so they do not appear among the route's revisions; this is
/// where the report shows them.
public struct UpstreamSlots: Sendable, Equatable, Codable {
    public var upstream: String
    /// `blue` or `green`.
    public var active: String
    public var activeAddresses: [String]
    public var idle: String
    /// Empty when nothing is deployed to the idle slot.
    public var idleAddresses: [String]
    /// The segment whose requests reach the idle slot; null for none.
    public var previewSegment: String?
    /// `ficus bluegreen` actions on the upstream in the window, newest first.
    public var events: [SlotEvent]

    public init(
        upstream: String,
        active: String,
        activeAddresses: [String],
        idle: String,
        idleAddresses: [String],
        previewSegment: String?,
        events: [SlotEvent]
    ) {
        self.upstream = upstream
        self.active = active
        self.activeAddresses = activeAddresses
        self.idle = idle
        self.idleAddresses = idleAddresses
        self.previewSegment = previewSegment
        self.events = events
    }

    private enum CodingKeys: String, CodingKey {
        case upstream, active, activeAddresses, idle, idleAddresses, previewSegment, events
    }

    /// Encodes every key, nil as null; see `MigrationReport.encode(to:)`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.upstream, forKey: .upstream)
        try container.encode(self.active, forKey: .active)
        try container.encode(self.activeAddresses, forKey: .activeAddresses)
        try container.encode(self.idle, forKey: .idle)
        try container.encode(self.idleAddresses, forKey: .idleAddresses)
        try container.encode(self.previewSegment, forKey: .previewSegment)
        try container.encode(self.events, forKey: .events)
    }
}

/// One `ficus bluegreen` action from the audit log.
///
/// Checks write no revision, so `revision` is null for them.
public struct SlotEvent: Sendable, Equatable, Codable {
    public var time: Date
    public var revision: Int?
    public var author: String
    /// `bluegreen.deploy`, `bluegreen.check`, `bluegreen.preview`, `bluegreen.switch` or `bluegreen.back`.
    public var action: String
    /// The audit line (`upstream 'orders': switched from 'blue' to 'green' (checked)`).
    public var summary: String

    public init(time: Date, revision: Int?, author: String, action: String, summary: String) {
        self.time = time
        self.revision = revision
        self.author = author
        self.action = action
        self.summary = summary
    }

    private enum CodingKeys: String, CodingKey {
        case time, revision, author, action, summary
    }

    /// Encodes every key, nil as null; see `MigrationReport.encode(to:)`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.time, forKey: .time)
        try container.encode(self.revision, forKey: .revision)
        try container.encode(self.author, forKey: .author)
        try container.encode(self.action, forKey: .action)
        try container.encode(self.summary, forKey: .summary)
    }
}
