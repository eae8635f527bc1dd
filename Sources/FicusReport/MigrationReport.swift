import Foundation

/// Everything a migration report shows, computed once from a store and rendered as text, JSON or HTML.
///
/// A plain value so that the three renderers cannot disagree: they format the same numbers, and the JSON form is the
/// stable interface that CI pipelines read (docs/REPORTS.md, docs/report.schema.json).
public struct MigrationReport: Sendable, Equatable, Codable {
    /// The version of the JSON schema; bumped only for changes that break readers.
    public var schemaVersion: Int
    public var generatedAt: Date
    public var window: ReportWindow
    public var thresholds: ReportThresholds
    /// The newest revision in the store, or nil for an empty store.
    public var revision: Int?
    public var totals: ReportTotals
    /// The gate's answer over every endpoint.
    public var verdict: GateVerdict
    /// Per endpoint, sorted by route and endpoint.
    public var endpoints: [EndpointReport]
    /// Compared and differing requests per bucket of `window.bucketSeconds`, oldest first.
    public var timeline: [TimelinePoint]
    /// Migration progress per configured route, sorted by name.
    public var routes: [RouteProgress]

    public init(
        schemaVersion: Int = MigrationReport.currentSchemaVersion,
        generatedAt: Date,
        window: ReportWindow,
        thresholds: ReportThresholds,
        revision: Int?,
        totals: ReportTotals,
        verdict: GateVerdict,
        endpoints: [EndpointReport],
        timeline: [TimelinePoint],
        routes: [RouteProgress]
    ) {
        self.schemaVersion = schemaVersion
        self.generatedAt = generatedAt
        self.window = window
        self.thresholds = thresholds
        self.revision = revision
        self.totals = totals
        self.verdict = verdict
        self.endpoints = endpoints
        self.timeline = timeline
        self.routes = routes
    }

    /// The schema version this code writes.
    ///
    /// Readers check it before trusting field meanings; additions keep it, removals and renames bump it.
    public static let currentSchemaVersion = 1

    private enum CodingKeys: String, CodingKey {
        case schemaVersion, generatedAt, window, thresholds, revision, totals, verdict, endpoints, timeline, routes
    }

    /// Encodes every key, nil as null.
    ///
    /// A stable schema has the same keys in every report; a reader should not have to tell "absent" from "null".
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.schemaVersion, forKey: .schemaVersion)
        try container.encode(self.generatedAt, forKey: .generatedAt)
        try container.encode(self.window, forKey: .window)
        try container.encode(self.thresholds, forKey: .thresholds)
        try container.encode(self.revision, forKey: .revision)
        try container.encode(self.totals, forKey: .totals)
        try container.encode(self.verdict, forKey: .verdict)
        try container.encode(self.endpoints, forKey: .endpoints)
        try container.encode(self.timeline, forKey: .timeline)
        try container.encode(self.routes, forKey: .routes)
    }
}

/// The time range a report covers, as asked for; nil bounds are open (everything stored).
///
/// Aggregates are kept per minute, so the store rounds `from` down to its minute.
public struct ReportWindow: Sendable, Equatable, Codable {
    public var from: Date?
    public var to: Date?
    /// The width of one timeline bucket, a whole number of minutes.
    public var bucketSeconds: Int

    public init(from: Date?, to: Date?, bucketSeconds: Int) {
        self.from = from
        self.to = to
        self.bucketSeconds = bucketSeconds
    }

    private enum CodingKeys: String, CodingKey {
        case from, to, bucketSeconds
    }

    /// Encodes every key, nil as null; see `MigrationReport.encode(to:)`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.from, forKey: .from)
        try container.encode(self.to, forKey: .to)
        try container.encode(self.bucketSeconds, forKey: .bucketSeconds)
    }

    /// Whether `date` lies in [`from`, `to`).
    ///
    /// Revisions and audit entries are filtered by the same half-open range as the aggregates.
    public func contains(_ date: Date) -> Bool {
        if let from = self.from, date < from {
            return false
        }
        if let to = self.to, date >= to {
            return false
        }
        return true
    }
}

/// The thresholds the verdicts were computed with.
///
/// Part of the report so that a reader can tell why a field counted as noise.
public struct ReportThresholds: Sendable, Equatable, Codable {
    /// `NoiseThresholds.relative`.
    public var relative: Double
    /// `NoiseThresholds.absolute`.
    public var absolute: Double
    /// The fewest compared requests an endpoint needs for a `ready` verdict.
    public var minRequests: Int

    public init(relative: Double, absolute: Double, minRequests: Int) {
        self.relative = relative
        self.absolute = absolute
        self.minRequests = minRequests
    }
}

/// Sums over every endpoint of the report.
///
/// What the headline says and what the charts' totals must add up to.
public struct ReportTotals: Sendable, Equatable, Codable {
    public var compared: Int
    public var identical: Int
    public var differing: Int
    public var differingAfterNoise: Int
    /// Requests the shadow did not answer.
    public var errors: Int
    /// Requests chosen for shadowing, over every endpoint (see `Coverage`).
    public var eligible: Int
    /// Copies dropped, over every endpoint.
    public var dropped: Int
    public var endpoints: Int
    public var ready: Int
    public var regressions: Int
    public var notEnoughTraffic: Int
    /// Endpoints whose only differences are unconfirmed (too few noise samples to tell noise from a regression).
    public var unconfirmed: Int

    public init(
        compared: Int = 0,
        identical: Int = 0,
        differing: Int = 0,
        differingAfterNoise: Int = 0,
        errors: Int = 0,
        eligible: Int = 0,
        dropped: Int = 0,
        endpoints: Int = 0,
        ready: Int = 0,
        regressions: Int = 0,
        notEnoughTraffic: Int = 0,
        unconfirmed: Int = 0
    ) {
        self.unconfirmed = unconfirmed
        self.compared = compared
        self.identical = identical
        self.differing = differing
        self.differingAfterNoise = differingAfterNoise
        self.errors = errors
        self.eligible = eligible
        self.dropped = dropped
        self.endpoints = endpoints
        self.ready = ready
        self.regressions = regressions
        self.notEnoughTraffic = notEnoughTraffic
    }
}

/// Whether an endpoint can be cut over.
///
/// The raw values are the documented JSON strings; scripts compare them.
public enum Verdict: String, Sendable, Equatable, Codable, CaseIterable {
    /// Enough traffic was compared and every difference is noise.
    case ready
    /// At least one field differs more often against the shadow than noise explains, whatever the traffic.
    case regressions
    /// Fewer compared requests than `ReportThresholds.minRequests` and no regression.
    case notEnoughTraffic = "not enough traffic"
    /// No regression, but a field differs that noise samples have not seen while the endpoint has fewer noise
    /// samples than the noise floor: it may be noise, it may be a regression. Gated like `not enough traffic`.
    case unconfirmed
}

/// The answer of `ficus report --fail-on-regression` over the whole report.
///
/// Regressions win over missing traffic: a difference seen is evidence even on a quiet endpoint, while an empty or
/// starved store proves nothing and must never pass a gate.
public enum GateVerdict: String, Sendable, Equatable, Codable, CaseIterable {
    /// No endpoint regresses and at least one reached the traffic threshold.
    case pass
    /// Some endpoint has a field that is not noise (exit 4).
    case regressions
    /// No endpoint reached the traffic threshold, or an endpoint is unconfirmed (exit 5).
    case notEnoughTraffic = "not enough traffic"

    /// The exit status of `ficus report --fail-on-regression`.
    ///
    /// Documented in docs/REPORTS.md; CI pipelines branch on it.
    public var exitStatus: Int32 {
        switch self {
        case .pass: 0
        case .regressions: 4
        case .notEnoughTraffic: 5
        }
    }
}
