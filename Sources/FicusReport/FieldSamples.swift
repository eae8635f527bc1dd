import Foundation

/// The drill-down of one differing field: a few real requests where it differed.
///
/// Counts say that a field differs; the bodies side by side say how, which is what an engineer fixes.
public struct FieldSamples: Sendable, Equatable, Codable {
    public var path: String
    public var kind: String
    public var samples: [ShadowSample]

    public init(path: String, kind: String, samples: [ShadowSample]) {
        self.path = path
        self.kind = kind
        self.samples = samples
    }
}

/// One stored shadow request with both answers, already redacted by the proxy.
///
/// Bodies are shown as text: JSON pretty-printed with the lines of the differing paths marked, other bodies as they
/// are, both cut to a bound so that a report stays readable.
public struct ShadowSample: Sendable, Equatable, Codable {
    public var time: Date
    /// The request target (path and query) as received.
    public var target: String
    public var servingUpstream: String
    public var shadowUpstream: String
    public var servingStatus: Int
    public var shadowStatus: Int?
    public var shadowError: String?
    /// The request's `X-Request-Id`, to find it in the access log; nil for records stored before ids were kept.
    public var requestID: String?
    /// Every difference of this request, concrete paths (`$.items[2].sku`).
    public var differences: [SampleDifference]
    public var serving: BodyExcerpt
    public var shadow: BodyExcerpt

    public init(
        time: Date,
        target: String,
        servingUpstream: String,
        shadowUpstream: String,
        servingStatus: Int,
        shadowStatus: Int?,
        shadowError: String?,
        differences: [SampleDifference],
        serving: BodyExcerpt,
        shadow: BodyExcerpt,
        requestID: String? = nil
    ) {
        self.requestID = requestID
        self.time = time
        self.target = target
        self.servingUpstream = servingUpstream
        self.shadowUpstream = shadowUpstream
        self.servingStatus = servingStatus
        self.shadowStatus = shadowStatus
        self.shadowError = shadowError
        self.differences = differences
        self.serving = serving
        self.shadow = shadow
    }

    private enum CodingKeys: String, CodingKey {
        case time, target, servingUpstream, shadowUpstream, servingStatus, shadowStatus, shadowError, differences
        case serving, shadow, requestId
    }

    /// Encodes every key, nil as null; see `MigrationReport.encode(to:)`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.time, forKey: .time)
        try container.encode(self.target, forKey: .target)
        try container.encode(self.servingUpstream, forKey: .servingUpstream)
        try container.encode(self.shadowUpstream, forKey: .shadowUpstream)
        try container.encode(self.servingStatus, forKey: .servingStatus)
        try container.encode(self.shadowStatus, forKey: .shadowStatus)
        try container.encode(self.shadowError, forKey: .shadowError)
        try container.encode(self.differences, forKey: .differences)
        try container.encode(self.serving, forKey: .serving)
        try container.encode(self.shadow, forKey: .shadow)
        try container.encode(self.requestID, forKey: .requestId)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.time = try container.decode(Date.self, forKey: .time)
        self.target = try container.decode(String.self, forKey: .target)
        self.servingUpstream = try container.decode(String.self, forKey: .servingUpstream)
        self.shadowUpstream = try container.decode(String.self, forKey: .shadowUpstream)
        self.servingStatus = try container.decode(Int.self, forKey: .servingStatus)
        self.shadowStatus = try container.decodeIfPresent(Int.self, forKey: .shadowStatus)
        self.shadowError = try container.decodeIfPresent(String.self, forKey: .shadowError)
        self.requestID = try container.decodeIfPresent(String.self, forKey: .requestId)
        self.differences = try container.decode([SampleDifference].self, forKey: .differences)
        self.serving = try container.decode(BodyExcerpt.self, forKey: .serving)
        self.shadow = try container.decode(BodyExcerpt.self, forKey: .shadow)
    }
}

/// One difference of a sample, with both values as the comparer rendered them.
///
/// Short and redacted already; see `FicusDiff.Difference`.
public struct SampleDifference: Sendable, Equatable, Codable {
    public var path: String
    public var kind: String
    public var serving: String?
    public var shadow: String?

    public init(path: String, kind: String, serving: String?, shadow: String?) {
        self.path = path
        self.kind = kind
        self.serving = serving
        self.shadow = shadow
    }

    private enum CodingKeys: String, CodingKey {
        case path, kind, serving, shadow
    }

    /// Encodes every key, nil as null; see `MigrationReport.encode(to:)`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.path, forKey: .path)
        try container.encode(self.kind, forKey: .kind)
        try container.encode(self.serving, forKey: .serving)
        try container.encode(self.shadow, forKey: .shadow)
    }
}

/// One answer's body as shown in a report, with the lines that hold a differing path.
///
/// Line numbers rather than markup, so that every renderer highlights in its own way.
public struct BodyExcerpt: Sendable, Equatable, Codable {
    /// The body as text: pretty-printed JSON, UTF-8 text, or a note for binary bodies.
    public var text: String
    /// 0-based indices of the lines of `text` that hold a differing path (or part of its value).
    public var highlightedLines: [Int]
    /// Whether the proxy stored only the beginning of the body, or the report cut it.
    public var truncated: Bool

    public init(text: String, highlightedLines: [Int], truncated: Bool) {
        self.text = text
        self.highlightedLines = highlightedLines
        self.truncated = truncated
    }
}
