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
    public var serving: SideLatency
    public var shadow: SideLatency?

    public init(serving: SideLatency, shadow: SideLatency?) {
        self.serving = serving
        self.shadow = shadow
    }

    private enum CodingKeys: String, CodingKey {
        case serving, shadow
    }

    /// Encodes every key, nil as null; see `MigrationReport.encode(to:)`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.serving, forKey: .serving)
        try container.encode(self.shadow, forKey: .shadow)
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
