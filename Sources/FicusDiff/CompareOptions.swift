/// What to compare, what to ignore and what to hide, with the defaults of the design.
///
/// Built once per route from stored configuration and passed to every comparison; plain values so that a snapshot of
/// the routing table can carry them across threads.
public struct CompareOptions: Sendable {
    /// Headers that differ on every call or describe the connection rather than the answer.
    ///
    /// Compared, they would turn every request into a difference.
    public static let defaultIgnoredHeaders: Set<String> = [
        "date", "server", "age", "etag", "last-modified", "set-cookie", "x-request-id", "via",
        "transfer-encoding", "connection", "keep-alive",
    ]

    /// Headers that carry credentials.
    ///
    /// Their values must never reach the store or a report, whatever else is configured.
    public static let defaultSensitiveHeaders: Set<String> = [
        "authorization", "cookie", "set-cookie", "proxy-authorization", "x-api-key", "x-auth-token", "x-access-token",
    ]

    /// Header names (any case) left out of the comparison.
    ///
    /// `content-length` is also left out whenever bodies are compared, since the body comparison already covers it.
    public var ignoredHeaders: Set<String> {
        didSet { self.derive() }
    }

    /// Paths left out of the comparison: JSON paths such as `$.meta.generatedAt` or `$.items[*].updatedAt`
    /// (`[*]` and `.*` match any element or member, `..name` matches at any depth), and also `header:NAME` or
    /// `status`, so that any path shown in a report can be pasted here.
    ///
    /// Unparseable JSON paths are skipped; validate user input with `JSONPathPattern(_:)` first.
    public var ignoredPaths: [String] {
        didSet { self.derive() }
    }

    /// Header names (any case) whose values are replaced by the marker wherever they are rendered or stored.
    public var sensitiveHeaders: Set<String> {
        didSet { self.derive() }
    }

    /// JSON paths whose values are replaced by the marker wherever they are rendered or stored.
    ///
    /// The comparison still sees them, so a changed secret is still reported — as two markers.
    public var sensitivePaths: [String] {
        didSet { self.derive() }
    }

    /// The text that replaces a sensitive value.
    public var redactionMarker: String

    /// Whether bodies are compared at all.
    ///
    /// Off for HEAD requests, whose empty bodies say nothing; `content-length` is then compared as a header.
    public var compareBody: Bool {
        didSet { self.derive() }
    }

    /// The largest body, after gzip or deflate decoding, that is decoded for comparison.
    ///
    /// A small compressed body can expand enormously; beyond this bound the encoded bytes are compared instead.
    public var maxDecodedBodyBytes: Int

    /// Whether the values of the request target's query parameters are replaced by the marker in stored records
    /// (names kept: `?token=[redacted]&page=[redacted]`). On by default: queries carry tokens and personal data as
    /// often as headers do.
    public var redactQuery = true

    /// The most JSON body differences kept per comparison; the rest are counted in `Comparison.omittedDifferences`.
    ///
    /// Every kept difference becomes a stored row, and a reordered array of a thousand objects would otherwise make
    /// thousands of them for one request.
    public var maxBodyDifferences: Int

    /// Creates options; every parameter defaults to the design's defaults.
    ///
    /// Configuration adds to the defaults rather than replacing them, so callers usually pass a union.
    public init(
        ignoredHeaders: Set<String> = CompareOptions.defaultIgnoredHeaders,
        ignoredPaths: [String] = [],
        sensitiveHeaders: Set<String> = CompareOptions.defaultSensitiveHeaders,
        sensitivePaths: [String] = [],
        redactionMarker: String = "[redacted]",
        compareBody: Bool = true,
        maxDecodedBodyBytes: Int = 16 * 1024 * 1024,
        maxBodyDifferences: Int = 100
    ) {
        self.ignoredHeaders = ignoredHeaders
        self.ignoredPaths = ignoredPaths
        self.sensitiveHeaders = sensitiveHeaders
        self.sensitivePaths = sensitivePaths
        self.redactionMarker = redactionMarker
        self.compareBody = compareBody
        self.maxDecodedBodyBytes = maxDecodedBodyBytes
        self.maxBodyDifferences = maxBodyDifferences
        self.derive()
    }

    /// What every comparison needs from the settings above, worked out when they are set rather than per comparison.
    private(set) var derived = Derived()

    struct Derived: Sendable {
        /// Lower-cased ignored header names, including those given as `header:NAME` ignored paths, and
        /// `content-length` when bodies are compared.
        var ignoredHeaders: Set<String> = []
        /// `ignoredHeaders`, to look names up in any case.
        var ignoredHeaderNames = HeaderNameSet([])
        /// Lower-cased sensitive header names.
        var sensitiveHeaders: Set<String> = []
        /// Whether the status code is left out of the comparison.
        var ignoresStatus = false
        /// The ignored JSON paths that parse.
        var ignoredPaths = PathMatcher(patterns: [])
        /// The sensitive JSON paths that parse.
        var sensitivePaths = PathMatcher(patterns: [])
    }

    private mutating func derive() {
        var ignored = Set(self.ignoredHeaders.map { $0.lowercased() })
        for path in self.ignoredPaths where path.hasPrefix("header:") {
            ignored.insert(String(path.dropFirst("header:".count)).trimmingHTTPWhitespace().lowercased())
        }
        if self.compareBody {
            ignored.insert("content-length")
        }
        self.derived = Derived(
            ignoredHeaders: ignored,
            ignoredHeaderNames: HeaderNameSet(ignored),
            sensitiveHeaders: Set(self.sensitiveHeaders.map { $0.lowercased() }),
            ignoresStatus: self.ignoredPaths.contains("status"),
            ignoredPaths: PathMatcher(patterns: self.ignoredPaths.compactMap { JSONPathPattern($0) }),
            sensitivePaths: PathMatcher(patterns: self.sensitivePaths.compactMap { JSONPathPattern($0) })
        )
    }
}

extension CompareOptions {
    /// Lower-cased ignored header names, including those given as `header:NAME` ignored paths.
    var effectiveIgnoredHeaders: Set<String> { self.derived.ignoredHeaders }

    /// Lower-cased sensitive header names.
    var effectiveSensitiveHeaders: Set<String> { self.derived.sensitiveHeaders }

    /// Whether the status code is left out of the comparison.
    var ignoresStatus: Bool { self.derived.ignoresStatus }

    /// The ignored JSON paths that parse.
    var ignoredPathMatcher: PathMatcher { self.derived.ignoredPaths }

    /// The sensitive JSON paths that parse.
    var sensitivePathMatcher: PathMatcher { self.derived.sensitivePaths }
}
