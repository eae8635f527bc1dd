import Foundation

/// One endpoint (route + method + path template) of a report: how its shadow answers compared and the verdict.
///
/// The unit an engineer decides on before moving traffic, so it carries the evidence with the verdict.
public struct EndpointReport: Sendable, Equatable, Codable {
    /// Method and path template, e.g. "GET /orders/{id}".
    public var endpoint: String
    public var route: String
    public var method: String
    public var template: String
    /// Requests the shadow answered, so that the answers could be compared.
    public var compared: Int
    public var identical: Int
    /// Compared requests with any difference, noise included.
    public var differing: Int
    /// Compared requests with a difference at a field that is not noise.
    public var differingAfterNoise: Int
    /// Requests the shadow did not answer; not part of `compared`.
    public var errors: Int
    /// Requests also sent a second time to the serving side to measure noise.
    public var noiseSamples: Int
    /// `identical ÷ compared × 100`, 0 when nothing was compared.
    public var identicalPercent: Double
    public var differingPercent: Double
    public var differingAfterNoisePercent: Double
    public var verdict: Verdict
    /// Every field that differed, regressions first, then by count.
    public var fields: [FieldReport]
    /// Serving × shadow status counts, most frequent first.
    public var statuses: [StatusCell]
    public var latency: EndpointLatency
    /// What share of the requests chosen for shadowing the verdict rests on.
    public var coverage: Coverage
    /// Up to a few stored requests per differing field, for the drill-down.
    public var samples: [FieldSamples]

    public init(
        endpoint: String,
        route: String,
        method: String,
        template: String,
        compared: Int,
        identical: Int,
        differing: Int,
        differingAfterNoise: Int,
        errors: Int,
        noiseSamples: Int,
        verdict: Verdict,
        fields: [FieldReport],
        statuses: [StatusCell],
        latency: EndpointLatency,
        coverage: Coverage? = nil,
        samples: [FieldSamples]
    ) {
        self.endpoint = endpoint
        self.route = route
        self.method = method
        self.template = template
        self.compared = compared
        self.identical = identical
        self.differing = differing
        self.differingAfterNoise = differingAfterNoise
        self.errors = errors
        self.noiseSamples = noiseSamples
        self.identicalPercent = Self.percent(identical, of: compared)
        self.differingPercent = Self.percent(differing, of: compared)
        self.differingAfterNoisePercent = Self.percent(differingAfterNoise, of: compared)
        self.verdict = verdict
        self.fields = fields
        self.statuses = statuses
        self.latency = latency
        self.coverage = coverage ?? Coverage(compared: compared, errors: errors, dropped: [])
        self.samples = samples
    }

    /// `part ÷ whole × 100` rounded to two decimals, 0 when `whole` is 0.
    ///
    /// Two decimals keep the JSON stable across platforms' floating-point printing.
    static func percent(_ part: Int, of whole: Int) -> Double {
        guard whole > 0 else {
            return 0
        }
        return (Double(part) * 10_000 / Double(whole)).rounded() / 100
    }
}

/// The requests of an endpoint chosen for shadowing, and what became of them.
///
/// Every one ends compared, as a shadow error (the shadow did not answer), or dropped (never sent: capacity, memory,
/// a body too large to copy, the serving side failing; or sent but not compared: its answer too large to hold, the
/// comparer's queue full, the store failing), so `eligible = compared + errors + dropped`.
public struct Coverage: Sendable, Equatable, Codable {
    /// Requests chosen for shadowing (the route's sample of its shadowed methods).
    public var eligible: Int
    /// Copies that were sent (or tried): compared, errors, and those dropped after they were sent.
    public var shadowed: Int
    public var compared: Int
    public var errors: Int
    /// Copies dropped, all reasons.
    public var dropped: Int
    /// `compared ÷ eligible × 100`, 0 when nothing was eligible: the share of traffic the verdict rests on.
    public var comparedPercent: Double
    /// Dropped copies by reason, most first.
    public var drops: [DropCell]

    public init(compared: Int, errors: Int, dropped: [DropCell]) {
        let total = dropped.reduce(0) { $0 + $1.count }
        self.eligible = compared + errors + total
        self.shadowed = compared + errors + dropped.filter(\.sent).reduce(0) { $0 + $1.count }
        self.compared = compared
        self.errors = errors
        self.dropped = total
        self.comparedPercent = EndpointReport.percent(compared, of: self.eligible)
        self.drops = dropped
    }
}

/// Copies of an endpoint dropped for one reason.
public struct DropCell: Sendable, Equatable, Codable {
    /// As `ficus_shadow_dropped_total`'s reason: `capacity`, `memory`, `request_body_too_large`, `serving_failed`,
    /// `client_gone`, `unknown_upstream`, `unfinished`, `comparer_queue_full`, `store_failed`.
    public var reason: String
    /// Whether the copy had been sent.
    public var sent: Bool
    public var count: Int

    public init(reason: String, sent: Bool, count: Int) {
        self.reason = reason
        self.sent = sent
        self.count = count
    }
}

/// One field of an endpoint that differed.
///
/// `count` is what the migration changed; `noiseCount` is how often the old side disagrees with itself there.
public struct FieldReport: Sendable, Equatable, Codable {
    /// The field path with indices generalised (`$.items[*].sku`), or `status`, `header:…`, `$`.
    public var path: String
    /// A `DifferenceKind` raw value (`type_changed`, `missing`, ...).
    public var kind: String
    /// Compared requests whose answers differ at this field.
    public var count: Int
    /// Noise differences scaled to the compared total (see `ShadowEndpointSummary.counts(for:)`).
    public var noiseCount: Int
    /// Whether the field is noise (not a regression) under the report's thresholds.
    public var noise: Bool
    /// Whether the field would be a regression but cannot be told from noise yet: it was never seen in noise and
    /// the endpoint has fewer noise samples than the noise floor. Never a regression, never ready.
    public var unconfirmed: Bool

    public init(path: String, kind: String, count: Int, noiseCount: Int, noise: Bool, unconfirmed: Bool = false) {
        self.path = path
        self.kind = kind
        self.count = count
        self.noiseCount = noiseCount
        self.noise = noise
        self.unconfirmed = unconfirmed
    }
}

/// How many requests got one combination of serving and shadow status.
///
/// One cell of the status matrix.
public struct StatusCell: Sendable, Equatable, Codable {
    public var serving: Int
    /// Nil when the shadow did not answer.
    public var shadow: Int?
    public var count: Int

    public init(serving: Int, shadow: Int?, count: Int) {
        self.serving = serving
        self.shadow = shadow
        self.count = count
    }

    private enum CodingKeys: String, CodingKey {
        case serving, shadow, count
    }

    /// Encodes every key, nil as null; see `MigrationReport.encode(to:)`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.serving, forKey: .serving)
        try container.encode(self.shadow, forKey: .shadow)
        try container.encode(self.count, forKey: .count)
    }
}

/// Latency percentiles of one side, in microseconds.
///
/// Estimated from the store's histograms; precise to the bucket, which suffices to compare the sides.
public struct SideLatency: Sendable, Equatable, Codable {
    public var count: Int
    public var meanMicroseconds: Int
    public var p50Microseconds: Int
    public var p95Microseconds: Int
    public var p99Microseconds: Int

    public init(count: Int, meanMicroseconds: Int, p50Microseconds: Int, p95Microseconds: Int, p99Microseconds: Int) {
        self.count = count
        self.meanMicroseconds = meanMicroseconds
        self.p50Microseconds = p50Microseconds
        self.p95Microseconds = p95Microseconds
        self.p99Microseconds = p99Microseconds
    }
}

/// The latency of both sides of an endpoint.
///
/// The shadow is nil when it never answered.
public struct EndpointLatency: Sendable, Equatable, Codable {
    /// From the request's first byte written to its upstream to the answer's last byte read.
    public var serving: SideLatency
    /// Measured like `serving`, from the copy's first byte written.
    public var shadow: SideLatency?
    /// Time copies spent inside Ficus before their first byte left (waiting for the shadow loop and a pooled
    /// connection): Ficus's own queueing, kept out of `shadow`. Nil when none was measured.
    public var shadowWait: SideLatency?

    public init(serving: SideLatency, shadow: SideLatency?, shadowWait: SideLatency? = nil) {
        self.serving = serving
        self.shadow = shadow
        self.shadowWait = shadowWait
    }

    private enum CodingKeys: String, CodingKey {
        case serving, shadow, shadowWait
    }

    /// Encodes every key, nil as null; see `MigrationReport.encode(to:)`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.serving, forKey: .serving)
        try container.encode(self.shadow, forKey: .shadow)
        try container.encode(self.shadowWait, forKey: .shadowWait)
    }
}

/// Shadow traffic in one bucket of the timeline.
///
/// One point of the diff-rate chart.
public struct TimelinePoint: Sendable, Equatable, Codable {
    public var start: Date
    public var compared: Int
    public var differing: Int
    public var differingAfterNoise: Int
    public var errors: Int

    public init(start: Date, compared: Int, differing: Int, differingAfterNoise: Int, errors: Int) {
        self.start = start
        self.compared = compared
        self.differing = differing
        self.differingAfterNoise = differingAfterNoise
        self.errors = errors
    }

    /// `differing ÷ compared`, 0 for an empty bucket.
    ///
    /// A bucket without traffic is drawn at zero, not left out, so the chart keeps one point per bucket.
    public var rate: Double {
        self.compared == 0 ? 0 : Double(self.differing) / Double(self.compared)
    }

    /// `differingAfterNoise ÷ compared`, 0 for an empty bucket.
    public var rateAfterNoise: Double {
        self.compared == 0 ? 0 : Double(self.differingAfterNoise) / Double(self.compared)
    }
}
