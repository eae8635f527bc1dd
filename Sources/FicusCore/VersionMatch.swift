/// A version-routing test: where the request names its API version, and which versions match.
///
/// Clients name versions in a header (`X-API-Version: 2`, `Accept-Version: 2.1`) or as a media-type parameter
/// (`Accept: application/vnd.acme+json; version=2`); the new service often takes over one major version first.
public struct VersionMatch: Sendable, Codable, Equatable {
    /// The header that carries the version, or the media type with the parameter (`Accept`).
    ///
    /// Matched without regard to case, as every header name.
    public var header: String

    /// The media-type parameter that carries the version (`version`), or nil (the default) for the whole value.
    ///
    /// With a parameter, the header is read as a comma-separated list of media types and the first one carrying the
    /// parameter counts; its value may be quoted.
    public var parameter: String?

    /// The exact version text that matches (`2`), compared byte for byte; set this or `range`.
    ///
    /// Exact text is for services that version with labels rather than semantic versions.
    public var equals: String?

    /// An npm-style range of semantic versions that match (`>=2.0.0 <3`); set this or `equals`.
    ///
    /// The request's version is read leniently, so `2` is `2.0.0` and `v2.1` is `2.1.0`.
    public var range: String?

    /// Creates a version match.
    ///
    /// Validation requires exactly one of `equals` and `range`.
    public init(header: String, parameter: String? = nil, equals: String? = nil, range: String? = nil) {
        self.header = header
        self.parameter = parameter
        self.equals = equals
        self.range = range
    }
}

extension VersionMatch: CustomStringConvertible {
    /// The match as one line (`header Accept parameter version in >=2 <3`).
    ///
    /// Used in validation messages and explanations.
    public var description: String {
        var text = "header \(self.header)"
        if let parameter = self.parameter {
            text += " parameter \(parameter)"
        }
        if let equals = self.equals {
            text += " = \(equals)"
        }
        if let range = self.range {
            text += " in \(range)"
        }
        return text
    }
}
