/// Changes the proxy makes to a request before sending it to one upstream: a path prefix rewrite and header edits.
///
/// The new service rarely has the monolith's paths (`/api/v1/orders` becomes `/orders`) and may need a marker header;
/// the rewrite belongs to the target upstream, so it follows the traffic when a flip moves the route's default.
public struct RequestRewrite: Sendable, Codable, Equatable, Hashable {
    /// Replaces a leading path prefix, or nil (the default) to keep the path.
    ///
    /// See `PathRewrite` for the exact rules.
    public var path: PathRewrite?

    /// Headers to set, replacing any value the request had. Defaults to none.
    ///
    /// Ordered so that the forwarded head is the same on every request.
    public var setHeaders: [HeaderField]

    /// Names of headers to remove, matched without regard to case. Defaults to none.
    ///
    /// Applied before `setHeaders`, so a header both removed and set ends up with the set value.
    public var removeHeaders: [String]

    /// Creates a rewrite.
    ///
    /// See the properties for the defaults.
    public init(path: PathRewrite? = nil, setHeaders: [HeaderField] = [], removeHeaders: [String] = []) {
        self.path = path
        self.setHeaders = setHeaders
        self.removeHeaders = removeHeaders
    }

    /// Whether the rewrite changes nothing.
    ///
    /// The routing table drops empty rewrites so the proxy can skip the work.
    public var isEmpty: Bool {
        self.path == nil && self.setHeaders.isEmpty && self.removeHeaders.isEmpty
    }

    /// The path to forward for `path` (no query string).
    ///
    /// Unchanged when there is no path rewrite or its prefix does not match.
    public func rewritePath(_ path: String) -> String {
        self.path?.apply(to: path) ?? path
    }

    private enum CodingKeys: String, CodingKey {
        case path
        case setHeaders = "set_headers"
        case removeHeaders = "remove_headers"
    }

    /// Decodes a rewrite; missing lists are empty. The former names `setHeaders` and `removeHeaders` are still read.
    ///
    /// See the properties.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.path = try container.decodeIfPresent(PathRewrite.self, forKey: .path)
        self.setHeaders =
            try container.decodeIfPresent(
                [HeaderField].self, forKey: .setHeaders, formerly: "setHeaders", in: decoder) ?? []
        self.removeHeaders =
            try container.decodeIfPresent(
                [String].self, forKey: .removeHeaders, formerly: "removeHeaders", in: decoder) ?? []
    }
}

/// One header name and value.
///
/// A struct rather than a dictionary entry so that order is kept and the same name may appear twice.
public struct HeaderField: Sendable, Codable, Equatable, Hashable {
    /// The header name, as it will be sent.
    ///
    /// Validation requires an HTTP token.
    public var name: String

    /// The header value.
    ///
    /// Validation rejects CR, LF and NUL, which would let a value inject headers.
    public var value: String

    /// Creates a header field.
    ///
    /// No checks; see the properties.
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// Replaces a leading path prefix on a segment boundary: `/api` matches `/api` and `/api/x`, never `/apix`.
///
/// A `replacement` of `""` (the default) strips the prefix; `/orders` replaces it. A prefix of `/` matches every
/// path, so `replacement` is then prepended. The result always starts with `/`, and the query string is untouched.
public struct PathRewrite: Sendable, Codable, Equatable, Hashable {
    /// The prefix to replace; starts with `/`. A trailing `/` is ignored.
    ///
    /// Matched byte for byte: paths are case-sensitive and not percent-decoded.
    public var prefix: String

    /// What replaces the prefix; empty or starting with `/`. Defaults to `""` (strip).
    ///
    /// A trailing `/` is ignored, so `/v2` and `/v2/` mean the same.
    public var replacement: String

    /// Creates a prefix rewrite.
    ///
    /// See the properties.
    public init(prefix: String, replacement: String = "") {
        self.prefix = prefix
        self.replacement = replacement
    }

    /// A rewrite that strips `prefix`.
    ///
    /// Reads better at call sites than an empty replacement.
    public static func strip(_ prefix: String) -> PathRewrite {
        PathRewrite(prefix: prefix)
    }

    /// The rewritten path, or `path` unchanged when the prefix does not match.
    ///
    /// See the type's documentation.
    public func apply(to path: String) -> String {
        let prefix = PathRewrite.trimmingTrailingSlashes(self.prefix)
        guard path.utf8.starts(with: prefix.utf8) else {
            return path
        }
        let remainder = path.utf8.dropFirst(prefix.utf8.count)
        if let first = remainder.first, first != UInt8(ascii: "/"), !prefix.isEmpty {
            return path
        }
        var result = PathRewrite.trimmingTrailingSlashes(self.replacement)
        if !result.isEmpty, !result.hasPrefix("/") {
            result = "/" + result
        }
        result += Substring(remainder)
        if !result.hasPrefix("/") {
            result = "/" + result
        }
        return result
    }

    private static func trimmingTrailingSlashes(_ text: String) -> String {
        var text = Substring(text)
        while text.hasSuffix("/") {
            text = text.dropLast()
        }
        return String(text)
    }

    private enum CodingKeys: String, CodingKey {
        case prefix
        case replacement
    }

    /// Decodes a path rewrite; a missing `replacement` strips.
    ///
    /// See the properties.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.prefix = try container.decode(String.self, forKey: .prefix)
        self.replacement = try container.decodeIfPresent(String.self, forKey: .replacement) ?? ""
    }
}
