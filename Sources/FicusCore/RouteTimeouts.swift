/// Per-route overrides of the proxy's upstream timeouts, in milliseconds.
///
/// A report endpoint may legitimately take a minute where everything else should fail fast; nil (the default) keeps
/// the proxy-wide setting.
public struct RouteTimeouts: Sendable, Codable, Equatable, Hashable {
    /// The time allowed to open a connection to the upstream, or nil for the proxy default.
    ///
    /// Milliseconds as an integer so that the stored JSON needs no unit parsing.
    public var connectMilliseconds: Int?

    /// The time allowed from sending the request until the response head arrives, or nil for the proxy default.
    ///
    /// Body streaming is not covered: large downloads must not be cut off by a header deadline.
    public var responseHeaderMilliseconds: Int?

    /// The longest timeout a route may set: 24 hours. Validation refuses more, and the proxy clamps what a store
    /// that skipped validation holds, so no value is ever multiplied into nanoseconds past `Int64.max`.
    public static let maxMilliseconds = 86_400_000

    /// Creates overrides; nil keeps the proxy default.
    ///
    /// Both are optional so that a route overrides only what it needs.
    public init(connectMilliseconds: Int? = nil, responseHeaderMilliseconds: Int? = nil) {
        self.connectMilliseconds = connectMilliseconds
        self.responseHeaderMilliseconds = responseHeaderMilliseconds
    }

    /// Whether neither timeout is overridden.
    ///
    /// Lets encoders and explanations leave out an empty block.
    public var isEmpty: Bool {
        self.connectMilliseconds == nil && self.responseHeaderMilliseconds == nil
    }

    private enum CodingKeys: String, CodingKey {
        case connectMilliseconds = "connect_milliseconds"
        case responseHeaderMilliseconds = "response_header_milliseconds"
    }

    /// Decodes the overrides; the former names `connectMilliseconds` and `responseHeaderMilliseconds` are still read.
    ///
    /// See the properties.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.connectMilliseconds = try container.decodeIfPresent(
            Int.self, forKey: .connectMilliseconds, formerly: "connectMilliseconds", in: decoder)
        self.responseHeaderMilliseconds = try container.decodeIfPresent(
            Int.self, forKey: .responseHeaderMilliseconds, formerly: "responseHeaderMilliseconds", in: decoder)
    }
}
