import FicusDiff
import Foundation

/// How much shadow data a store keeps.
///
/// Shadow records hold real traffic (bodies up to a MiB each), so without bounds a busy route would fill the disk;
/// aggregates are small and kept longer, so reports can still show trends after the records are gone.
public struct ShadowRetention: Sendable, Equatable {
    /// The most shadow records kept; older ones (by insertion) are deleted first.
    public var maxRecords: Int
    /// How long shadow records are kept, by their timestamp.
    public var maxRecordAge: TimeInterval
    /// How long per-minute shadow aggregates are kept.
    public var maxAggregateAge: TimeInterval
    /// How long metric windows are kept, by their start.
    public var maxMetricWindowAge: TimeInterval

    /// Creates bounds; the defaults keep 10,000 records for at most 7 days, aggregates for 30 days and metric windows
    /// for 7 days.
    ///
    /// The defaults fit a report over the last week and a canary of any length on a laptop's disk.
    public init(
        maxRecords: Int = 10_000,
        maxRecordAge: TimeInterval = 7 * 86_400,
        maxAggregateAge: TimeInterval = 30 * 86_400,
        maxMetricWindowAge: TimeInterval = 7 * 86_400
    ) {
        self.maxRecords = maxRecords
        self.maxRecordAge = maxRecordAge
        self.maxAggregateAge = maxAggregateAge
        self.maxMetricWindowAge = maxMetricWindowAge
    }
}

/// How many requests of an endpoint got one combination of serving and shadow status.
///
/// One cell of the report's status matrix.
public struct ShadowStatusCount: Sendable, Equatable, Codable {
    /// The serving side's status.
    public var serving: Int
    /// The shadow's status, or nil when the shadow did not answer.
    public var shadow: Int?
    public var count: Int

    public init(serving: Int, shadow: Int?, count: Int) {
        self.serving = serving
        self.shadow = shadow
        self.count = count
    }
}

/// Latency percentiles of one side of an endpoint, estimated from a fixed histogram.
///
/// Exact percentiles would need every latency; the histogram is interpolated within the bucket (and clamped to the
/// observed minimum and maximum), which is precise enough for a p99 ratio and costs a few rows per minute.
public struct LatencyPercentiles: Sendable, Equatable, Codable {
    /// How many latencies were measured.
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

/// The difference counts of one field of an endpoint over a time range.
///
/// `raw` and `noise` are measured counts of requests, not of differences: a request with the field differing in ten
/// array elements counts once, so that counts compare with the endpoint's request total.
public struct ShadowFieldSummary: Sendable, Equatable, Codable {
    /// The field path with indices generalised (`$.items[*].sku`), or `status`, `header:…`, `$`.
    public var path: String
    public var kind: DifferenceKind
    /// Compared requests whose serving and shadow answers differ at this field.
    public var raw: Int
    /// Noise samples whose two serving answers differ at this field (not scaled; see
    /// `ShadowEndpointSummary.counts(for:)`).
    public var noise: Int

    public init(path: String, kind: DifferenceKind, raw: Int, noise: Int) {
        self.path = path
        self.kind = kind
        self.raw = raw
        self.noise = noise
    }
}

/// Copies of an endpoint that were chosen for shadowing but not compared, for one reason.
///
/// One line of a report's coverage.
public struct ShadowDropSummary: Sendable, Equatable, Codable {
    /// As `ficus_shadow_dropped_total`'s reason (`capacity`, `memory`, `serving_failed`, …).
    public var reason: String
    /// Whether the copies had been sent (their answers could not be held or stored).
    public var sent: Bool
    public var count: Int

    public init(reason: String, sent: Bool, count: Int) {
        self.reason = reason
        self.sent = sent
        self.count = count
    }
}

/// What the store knows about one endpoint (route + method + path template) over a time range.
///
/// Everything a report's endpoint section shows; the verdict is the reader's, with `isRegression(_:thresholds:)`.
public struct ShadowEndpointSummary: Sendable, Equatable, Codable {
    public var route: String
    /// Method and path template, e.g. "GET /orders/{id}".
    public var endpoint: String
    /// Requests the shadow answered, so that the answers could be compared.
    public var compared: Int
    /// Compared requests with no difference.
    public var identical: Int
    /// Compared requests with at least one difference (before noise filtering).
    public var differing: Int
    /// Requests the shadow did not answer (timeout, refused, reset); not part of `compared`.
    public var errors: Int
    /// Requests that were also sent a second time to the serving side to measure noise.
    public var noiseSamples: Int
    /// The status matrix, most frequent first.
    public var statuses: [ShadowStatusCount]
    public var servingLatency: LatencyPercentiles
    /// Nil when the shadow never answered.
    public var shadowLatency: LatencyPercentiles?
    /// Every field that differed against the shadow or in a noise sample, most raw differences first.
    public var fields: [ShadowFieldSummary]
    /// Copies chosen for shadowing but neither compared nor counted as shadow errors, most first.
    public var dropped: [ShadowDropSummary]
    /// Time the copies spent inside Ficus before they left (the shadow loop, a pooled connection); nil when none
    /// was measured. Never part of `shadowLatency`, which starts at the copy's first byte.
    public var shadowWait: LatencyPercentiles?

    /// Requests chosen for shadowing: every one ends compared, as a shadow error, or dropped.
    public var eligible: Int { self.compared + self.errors + self.droppedTotal }

    /// Copies that were sent (or tried): compared, shadow errors, and those dropped after they were sent.
    public var shadowed: Int {
        self.compared + self.errors + self.dropped.filter(\.sent).reduce(0) { $0 + $1.count }
    }

    /// All dropped copies.
    public var droppedTotal: Int { self.dropped.reduce(0) { $0 + $1.count } }

    public init(
        route: String,
        endpoint: String,
        compared: Int,
        identical: Int,
        differing: Int,
        errors: Int,
        noiseSamples: Int,
        statuses: [ShadowStatusCount],
        servingLatency: LatencyPercentiles,
        shadowLatency: LatencyPercentiles?,
        fields: [ShadowFieldSummary],
        dropped: [ShadowDropSummary] = [],
        shadowWait: LatencyPercentiles? = nil
    ) {
        self.route = route
        self.endpoint = endpoint
        self.compared = compared
        self.identical = identical
        self.differing = differing
        self.errors = errors
        self.noiseSamples = noiseSamples
        self.statuses = statuses
        self.servingLatency = servingLatency
        self.shadowLatency = shadowLatency
        self.fields = fields
        self.dropped = dropped
        self.shadowWait = shadowWait
    }

    /// The field's counts for `NoiseFilter`: raw as measured, noise scaled from the noise samples to the compared
    /// total (noise × compared ÷ noiseSamples, rounded; 0 without noise samples).
    ///
    /// Only a sample of requests (10% by default) gets a second serving call, so a field that differs in every noise
    /// sample has 10 noise differences per 100 raw ones; comparing unscaled counts would call pure noise a regression.
    /// Scaling compares rates instead. Without any noise sample nothing is known about noise, and every field that
    /// passes the thresholds is reported.
    public func counts(for field: ShadowFieldSummary) -> FieldCounts {
        guard self.noiseSamples > 0 else {
            return FieldCounts(raw: field.raw, noise: 0)
        }
        let scaled = (Double(field.noise) * Double(self.compared) / Double(self.noiseSamples)).rounded()
        return FieldCounts(raw: field.raw, noise: Int(scaled))
    }

    /// Whether `field` is a regression rather than noise at this endpoint.
    ///
    /// `NoiseFilter.isRegression` on the scaled counts, with the compared total as the endpoint total.
    public func isRegression(_ field: ShadowFieldSummary, thresholds: NoiseThresholds) -> Bool {
        NoiseFilter.isRegression(self.counts(for: field), endpointTotal: self.compared, thresholds: thresholds)
    }

    /// The fields that are regressions, in the order of `fields`.
    ///
    /// What a report lists as "not noise" and what a gate names when it fails.
    public func regressions(thresholds: NoiseThresholds) -> [ShadowFieldSummary] {
        self.fields.filter { self.isRegression($0, thresholds: thresholds) }
    }
}

/// Shadow traffic in one bucket of a timeline.
///
/// One point of the report's diff-rate chart.
public struct ShadowTimelinePoint: Sendable, Equatable, Codable {
    /// The start of the bucket.
    public var start: Date
    public var compared: Int
    public var differing: Int
    /// Compared requests with a regression field (flags computed over the whole timeline), or nil when no thresholds
    /// were given.
    public var differingAfterNoise: Int?
    /// Requests the shadow did not answer.
    public var errors: Int

    public init(start: Date, compared: Int, differing: Int, differingAfterNoise: Int?, errors: Int) {
        self.start = start
        self.compared = compared
        self.differing = differing
        self.differingAfterNoise = differingAfterNoise
        self.errors = errors
    }
}

/// The noise-filtered diff rate of one endpoint.
///
/// The gate reads the total; reports show it per endpoint, with the fields that made requests count.
public struct ShadowEndpointDiffRate: Sendable, Equatable, Codable {
    public var route: String
    public var endpoint: String
    public var compared: Int
    /// Compared requests with any difference.
    public var differing: Int
    /// Compared requests with at least one difference at a regression field.
    public var differingAfterNoise: Int
    /// The regression fields.
    public var regressions: [ShadowFieldSummary]

    public init(
        route: String,
        endpoint: String,
        compared: Int,
        differing: Int,
        differingAfterNoise: Int,
        regressions: [ShadowFieldSummary]
    ) {
        self.route = route
        self.endpoint = endpoint
        self.compared = compared
        self.differing = differing
        self.differingAfterNoise = differingAfterNoise
        self.regressions = regressions
    }
}

/// The noise-filtered diff rate over a time range: totals and per endpoint.
///
/// A struct rather than a tuple so that a gate can name the endpoints and fields that failed it.
public struct ShadowDiffRate: Sendable, Equatable, Codable {
    public var compared: Int
    public var differing: Int
    public var differingAfterNoise: Int
    /// Per endpoint, sorted by route and endpoint.
    public var endpoints: [ShadowEndpointDiffRate]

    public init(compared: Int, differing: Int, differingAfterNoise: Int, endpoints: [ShadowEndpointDiffRate]) {
        self.compared = compared
        self.differing = differing
        self.differingAfterNoise = differingAfterNoise
        self.endpoints = endpoints
    }

    /// `differingAfterNoise ÷ compared`, or 0 when nothing was compared.
    ///
    /// A gate must check `compared` against its minimum first: 0 compared is no evidence, not a perfect rate.
    public var rate: Double {
        self.compared == 0 ? 0 : Double(self.differingAfterNoise) / Double(self.compared)
    }
}

/// The traffic one upstream of a route received over a time range, summed over every proxy's metric windows.
///
/// Observed shares for reports, and the error-rate and p99 gates of a canary.
public struct UpstreamTraffic: Sendable, Equatable, Codable {
    public var upstream: String
    public var requests: Int
    /// Answers with a 5xx status.
    public var serverErrors: Int
    /// Estimated from the merged latency histograms; 0 without requests.
    public var p99Microseconds: Int

    public init(upstream: String, requests: Int, serverErrors: Int, p99Microseconds: Int) {
        self.upstream = upstream
        self.requests = requests
        self.serverErrors = serverErrors
        self.p99Microseconds = p99Microseconds
    }
}
