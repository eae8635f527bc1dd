import Foundation

/// Where one route's traffic goes now, where it went in the window, and what changed it.
///
/// The migration's progress is per route: rules and flips move routes one at a time.
public struct RouteProgress: Sendable, Equatable, Codable {
    public var route: String
    /// The upstream the route's traffic came from.
    public var legacy: String
    /// Where requests that match no rule go now.
    public var defaultUpstream: String
    /// The configured rules in order, with their share when it is a plain percentage.
    public var rules: [RuleShare]
    /// The configured share per upstream in percent, from the default and the unconditional percentage rules;
    /// rules with other conditions are left out and named in `conditionalRules`.
    public var configuredShares: [UpstreamShare]
    /// Rules whose share depends on who sends the request (segments, headers, flags), so it cannot be computed.
    public var conditionalRules: [String]
    /// Requests per upstream in the window, from the proxies' metric windows.
    public var observed: [ObservedTraffic]
    /// The observed share of the legacy upstream in percent, nil without traffic.
    public var observedLegacyPercent: Double?
    /// The observed share of every other upstream in percent, nil without traffic.
    public var observedNewPercent: Double?
    /// The revision that last changed the route, and when.
    public var sinceRevision: Int?
    public var since: Date?
    /// Flips and rollbacks of the route in the window.
    public var flips: Int
    public var rollbacks: Int
    /// The route's changes in the window, newest first.
    public var changes: [RouteChange]
    /// The route's latest canary, when one runs or ended in the window.
    public var canary: RouteCanary?
    /// The blue-green upstreams the route sends traffic to (legacy, default or a rule's), sorted by name.
    public var slots: [UpstreamSlots]

    public init(
        route: String,
        legacy: String,
        defaultUpstream: String,
        rules: [RuleShare],
        configuredShares: [UpstreamShare],
        conditionalRules: [String],
        observed: [ObservedTraffic],
        observedLegacyPercent: Double?,
        observedNewPercent: Double?,
        sinceRevision: Int?,
        since: Date?,
        flips: Int,
        rollbacks: Int,
        changes: [RouteChange],
        canary: RouteCanary? = nil,
        slots: [UpstreamSlots] = []
    ) {
        self.route = route
        self.legacy = legacy
        self.defaultUpstream = defaultUpstream
        self.rules = rules
        self.configuredShares = configuredShares
        self.conditionalRules = conditionalRules
        self.observed = observed
        self.observedLegacyPercent = observedLegacyPercent
        self.observedNewPercent = observedNewPercent
        self.sinceRevision = sinceRevision
        self.since = since
        self.flips = flips
        self.rollbacks = rollbacks
        self.changes = changes
        self.canary = canary
        self.slots = slots
    }

    private enum CodingKeys: String, CodingKey {
        case route, legacy, defaultUpstream, rules, configuredShares, conditionalRules, observed
        case observedLegacyPercent, observedNewPercent, sinceRevision, since, flips, rollbacks, changes
        case canary, slots
    }

    /// Encodes every key, nil as null; see `MigrationReport.encode(to:)`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.route, forKey: .route)
        try container.encode(self.legacy, forKey: .legacy)
        try container.encode(self.defaultUpstream, forKey: .defaultUpstream)
        try container.encode(self.rules, forKey: .rules)
        try container.encode(self.configuredShares, forKey: .configuredShares)
        try container.encode(self.conditionalRules, forKey: .conditionalRules)
        try container.encode(self.observed, forKey: .observed)
        try container.encode(self.observedLegacyPercent, forKey: .observedLegacyPercent)
        try container.encode(self.observedNewPercent, forKey: .observedNewPercent)
        try container.encode(self.sinceRevision, forKey: .sinceRevision)
        try container.encode(self.since, forKey: .since)
        try container.encode(self.flips, forKey: .flips)
        try container.encode(self.rollbacks, forKey: .rollbacks)
        try container.encode(self.changes, forKey: .changes)
        try container.encode(self.canary, forKey: .canary)
        try container.encode(self.slots, forKey: .slots)
    }
}

/// One rule of a route as the report shows it.
///
/// The condition is shown as one line; `percentage` only when the whole condition is a percentage.
public struct RuleShare: Sendable, Equatable, Codable {
    public var name: String
    public var upstream: String
    public var condition: String
    public var percentage: Int?

    public init(name: String, upstream: String, condition: String, percentage: Int?) {
        self.name = name
        self.upstream = upstream
        self.condition = condition
        self.percentage = percentage
    }

    private enum CodingKeys: String, CodingKey {
        case name, upstream, condition, percentage
    }

    /// Encodes every key, nil as null; see `MigrationReport.encode(to:)`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.name, forKey: .name)
        try container.encode(self.upstream, forKey: .upstream)
        try container.encode(self.condition, forKey: .condition)
        try container.encode(self.percentage, forKey: .percentage)
    }
}

/// A share of a route's traffic, in percent.
///
/// Configured shares are what the rules say; observed ones are what the proxies counted.
public struct UpstreamShare: Sendable, Equatable, Codable {
    public var upstream: String
    public var percent: Double

    public init(upstream: String, percent: Double) {
        self.upstream = upstream
        self.percent = percent
    }
}

/// The traffic one upstream of a route received in the window, over every proxy.
///
/// From `ShadowStore.trafficSummary`.
public struct ObservedTraffic: Sendable, Equatable, Codable {
    public var upstream: String
    public var requests: Int
    public var percent: Double
    public var serverErrors: Int
    public var p99Microseconds: Int

    public init(upstream: String, requests: Int, percent: Double, serverErrors: Int, p99Microseconds: Int) {
        self.upstream = upstream
        self.requests = requests
        self.percent = percent
        self.serverErrors = serverErrors
        self.p99Microseconds = p99Microseconds
    }
}

/// One revision that changed a route, with the audit action that made it.
///
/// The audit trail of the route in the window.
public struct RouteChange: Sendable, Equatable, Codable {
    public var revision: Int
    public var time: Date
    public var author: String
    public var reason: String
    /// The audit action (`flip`, `rollback`, `rule.add`, ...), or "change" when the log has none.
    public var action: String
    public var summary: String

    public init(revision: Int, time: Date, author: String, reason: String, action: String, summary: String) {
        self.revision = revision
        self.time = time
        self.author = author
        self.reason = reason
        self.action = action
        self.summary = summary
    }

    /// Whether the change moved the route's default (a flip).
    public var isFlip: Bool { self.action == "flip" }

    /// Whether the change restored an earlier revision.
    public var isRollback: Bool { self.action.hasPrefix("rollback") || self.summary.hasPrefix("rollback to") }
}
