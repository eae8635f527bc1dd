/// One compared shadow request as it is stored: where it went, both answers (redacted, bounded) and the
/// classified differences.
///
/// It is the unit that flows from the comparer to the store in batches and back out to reports, so it carries
/// everything a report's drill-down shows and nothing that was not redacted first.
public struct ShadowRecord: Sendable, Codable, Equatable {
    /// A header as stored (tuples are not Codable).
    public struct Field: Sendable, Codable, Equatable {
        public var name: String
        public var value: String

        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    /// Wall-clock time the request arrived, in microseconds since 1970.
    public var timestamp: Int64
    public var route: String
    /// Method and path template, e.g. "GET /orders/{id}".
    public var endpoint: String
    public var method: String
    /// The request target as received (path and query).
    public var target: String
    public var servingUpstream: String
    public var shadowUpstream: String
    public var servingStatus: Int
    /// Nil when the shadow did not answer (see `shadowError`).
    public var shadowStatus: Int?
    public var servingLatencyMicroseconds: Int
    public var shadowLatencyMicroseconds: Int?
    public var shadowError: String?
    /// Serving versus shadow.
    public var differences: [Difference]
    /// Serving versus a second serving answer, when this request was a noise sample; nil otherwise.
    public var noiseDifferences: [Difference]?
    public var requestHeaders: [Field]
    public var requestBody: [UInt8]
    public var servingHeaders: [Field]
    public var servingBody: [UInt8]
    public var servingTruncated: Bool
    public var shadowHeaders: [Field]
    public var shadowBody: [UInt8]
    public var shadowTruncated: Bool
    /// Time the copy spent inside Ficus before its first byte left (waiting for the shadow loop and a pooled
    /// connection), or nil when it never left; never part of `shadowLatencyMicroseconds`. Kept in the aggregates
    /// only, not in stored records.
    public var shadowWaitMicroseconds: Int?
    /// The request's `X-Request-Id`, as in the access log; nil in records stored before ids were kept.
    public var requestID: String?

    /// The endpoint a request is counted under: its method and the template of its path (`GET /orders/{id}`).
    ///
    /// One definition for the records and for the copies counted as dropped, so that both add up per endpoint.
    public static func endpoint(method: String, target: String) -> String {
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first
            .map(String.init) ?? target
        return "\(method) \(EndpointTemplate.template(path: path))"
    }

    /// Whether the record is kept as a sample: the answers differed (also only as noise), or the shadow failed.
    ///
    /// Identical comparisons are only counted in the aggregates: most answers of a healthy migration are identical,
    /// and a report's samples show differences. The comparer leaves their headers and bodies out; the store does not
    /// keep them.
    public var isSample: Bool {
        !self.differences.isEmpty || self.shadowError != nil || !(self.noiseDifferences ?? []).isEmpty
    }

    public init(
        timestamp: Int64,
        route: String,
        endpoint: String,
        method: String,
        target: String,
        servingUpstream: String,
        shadowUpstream: String,
        servingStatus: Int,
        shadowStatus: Int?,
        servingLatencyMicroseconds: Int,
        shadowLatencyMicroseconds: Int?,
        shadowError: String?,
        differences: [Difference],
        noiseDifferences: [Difference]?,
        requestHeaders: [Field],
        requestBody: [UInt8],
        servingHeaders: [Field],
        servingBody: [UInt8],
        servingTruncated: Bool,
        shadowHeaders: [Field],
        shadowBody: [UInt8],
        shadowTruncated: Bool,
        shadowWaitMicroseconds: Int? = nil,
        requestID: String? = nil
    ) {
        self.timestamp = timestamp
        self.route = route
        self.endpoint = endpoint
        self.method = method
        self.target = target
        self.servingUpstream = servingUpstream
        self.shadowUpstream = shadowUpstream
        self.servingStatus = servingStatus
        self.shadowStatus = shadowStatus
        self.servingLatencyMicroseconds = servingLatencyMicroseconds
        self.shadowLatencyMicroseconds = shadowLatencyMicroseconds
        self.shadowError = shadowError
        self.differences = differences
        self.noiseDifferences = noiseDifferences
        self.requestHeaders = requestHeaders
        self.requestBody = requestBody
        self.servingHeaders = servingHeaders
        self.servingBody = servingBody
        self.servingTruncated = servingTruncated
        self.shadowHeaders = shadowHeaders
        self.shadowBody = shadowBody
        self.shadowTruncated = shadowTruncated
        self.shadowWaitMicroseconds = shadowWaitMicroseconds
        self.requestID = requestID
    }

    /// Whether the shadow answered exactly like the serving side (status, compared headers, body).
    public var identical: Bool { self.shadowError == nil && self.differences.isEmpty }
}

/// Requests, 5xx answers and latencies of one route × upstream over one interval, from one proxy.
///
/// Windows from several proxies on one store add up; the cutover controller and the reports read them.
public struct MetricWindow: Sendable, Codable, Equatable {
    /// Start of the interval, in microseconds since 1970.
    public var start: Int64
    /// Length of the interval in milliseconds.
    public var durationMilliseconds: Int
    public var proxy: String
    public var route: String
    public var upstream: String
    public var requests: Int
    public var serverErrors: Int
    /// Upper bounds in microseconds of the latency buckets, and the count in each (the last bound is +inf).
    public var latencyBucketBounds: [Int]
    public var latencyBucketCounts: [Int]
    /// Distinct sticky hashes of the window's requests (`Decision.stickyHash`), at most `identitySampleLimit`; nil
    /// from a proxy that did not count them.
    ///
    /// A set kept whole below the limit, so the union of many windows' sets answers "fewer than 20 distinct users?"
    /// exactly: a window with more than the limit has enough on its own, and below it every window's set is complete.
    public var identityHashes: [UInt32]?

    /// The most distinct sticky hashes a window keeps.
    ///
    /// Above the canary's 20-user bar, so that the bar is judged exactly from any number of windows and proxies.
    public static let identitySampleLimit = 32

    public init(
        start: Int64,
        durationMilliseconds: Int,
        proxy: String,
        route: String,
        upstream: String,
        requests: Int,
        serverErrors: Int,
        latencyBucketBounds: [Int],
        latencyBucketCounts: [Int],
        identityHashes: [UInt32]? = nil
    ) {
        self.start = start
        self.durationMilliseconds = durationMilliseconds
        self.proxy = proxy
        self.route = route
        self.upstream = upstream
        self.requests = requests
        self.serverErrors = serverErrors
        self.latencyBucketBounds = latencyBucketBounds
        self.latencyBucketCounts = latencyBucketCounts
        self.identityHashes = identityHashes
    }
}

/// Shadow copies of one endpoint that were not compared, for one reason, in one minute.
///
/// What a report's coverage rests on: every request chosen for shadowing ends compared, as a shadow error, or here.
/// Proxies add up their counts per minute, so several proxies' drops sum like their comparisons.
public struct ShadowDropCount: Sendable, Codable, Equatable, Hashable {
    /// The start of the minute, in whole seconds since 1970 (a multiple of 60).
    public var minute: Int64
    public var route: String
    /// As `ShadowRecord.endpoint`.
    public var endpoint: String
    /// As `ficus_shadow_dropped_total`'s reason: `capacity`, `memory`, `request_body_too_large`, `serving_failed`, ….
    public var reason: String
    /// Whether the copy had been sent when it was dropped (its answer could not be held or stored).
    public var sent: Bool
    public var count: Int

    public init(minute: Int64, route: String, endpoint: String, reason: String, sent: Bool, count: Int) {
        self.minute = minute
        self.route = route
        self.endpoint = endpoint
        self.reason = reason
        self.sent = sent
        self.count = count
    }
}
