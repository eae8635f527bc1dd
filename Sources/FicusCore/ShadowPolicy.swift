/// How a route's traffic is mirrored to the side that does not answer, and how the answers are compared.
///
/// Shadowing is how a team learns that a new service answers like the monolith before any user depends on it;
/// the comparison settings live here, beside the sampling, so that one revision says both what is mirrored and how
/// it is judged.
public struct ShadowPolicy: Sendable, Equatable, Hashable {
    /// The shadow upstream; nil: the route's other side (the new service while legacy serves, the legacy upstream
    /// once the route is flipped). A request is never shadowed to the upstream that serves it.
    public var to: String?
    /// Share of eligible requests shadowed, 0–100, sampled with the sticky hash under its own salt (so that the
    /// shadowed users are not the same users as a canary's).
    public var percent: Double
    /// Methods that are shadowed; empty means the safe ones (GET, HEAD, OPTIONS). Anything else must be opted in.
    public var methods: [String]
    /// Share of shadowed safe requests sent a second time to the serving side (or `secondary`) to learn noise.
    public var noisePercent: Double
    /// Another instance of the old code that answers the noise samples, so that production does not carry them.
    public var secondary: String?
    /// What the sampling hash reads; nil: the client IP.
    public var stickiness: Attribute?
    /// JSON paths (and `header:NAME`, `status`) whose differences are never reported.
    public var ignorePaths: [String]
    /// Headers replaced by a marker before anything is stored or shown (Authorization, Cookie, Set-Cookie and
    /// Proxy-Authorization always are).
    public var sensitiveHeaders: [String]
    /// JSON paths replaced by a marker before anything is stored or shown.
    public var sensitivePaths: [String]

    public init(
        to: String? = nil,
        percent: Double = 100,
        methods: [String] = [],
        noisePercent: Double = 10,
        secondary: String? = nil,
        stickiness: Attribute? = nil,
        ignorePaths: [String] = [],
        sensitiveHeaders: [String] = [],
        sensitivePaths: [String] = []
    ) {
        self.to = to
        self.percent = percent
        self.methods = methods
        self.noisePercent = noisePercent
        self.secondary = secondary
        self.stickiness = stickiness
        self.ignorePaths = ignorePaths
        self.sensitiveHeaders = sensitiveHeaders
        self.sensitivePaths = sensitivePaths
    }

    /// The methods shadowed when none are configured.
    public static let safeMethods = ["GET", "HEAD", "OPTIONS"]

    /// The methods this policy shadows.
    public var effectiveMethods: [String] { self.methods.isEmpty ? Self.safeMethods : self.methods }

    /// The upstream a request served by `serving` is shadowed to, or nil.
    public func target(serving: String, route: Route) -> String? {
        let target: String?
        if let to = self.to {
            target = to
        } else if serving == route.legacy {
            target = route.newSide
        } else {
            target = route.legacy
        }
        return target == serving ? nil : target
    }
}

extension Route {
    /// The route's new service: its default once flipped, else the first rule target that is not legacy.
    public var newSide: String? {
        if self.defaultUpstream != self.legacy { return self.defaultUpstream }
        return self.rules.first { $0.upstream != self.legacy }?.upstream
    }
}

extension ShadowPolicy: Codable {
    private enum CodingKeys: String, CodingKey {
        case to
        case percent
        case methods
        case noisePercent = "noise_percent"
        case secondary
        case stickiness
        case ignorePaths = "ignore"
        case sensitiveHeaders = "sensitive_headers"
        case sensitivePaths = "sensitive_paths"
    }

    /// Decodes a policy with the documented defaults.
    ///
    /// See the properties.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            to: try container.decodeIfPresent(String.self, forKey: .to),
            percent: try container.decodeIfPresent(Double.self, forKey: .percent) ?? 100,
            methods: try container.decodeIfPresent([String].self, forKey: .methods) ?? [],
            noisePercent: try container.decodeIfPresent(Double.self, forKey: .noisePercent) ?? 10,
            secondary: try container.decodeIfPresent(String.self, forKey: .secondary),
            stickiness: try container.decodeIfPresent(Attribute.self, forKey: .stickiness),
            ignorePaths: try container.decodeIfPresent([String].self, forKey: .ignorePaths) ?? [],
            sensitiveHeaders: try container.decodeIfPresent([String].self, forKey: .sensitiveHeaders) ?? [],
            sensitivePaths: try container.decodeIfPresent([String].self, forKey: .sensitivePaths) ?? []
        )
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(self.to, forKey: .to)
        try container.encode(self.percent, forKey: .percent)
        if !self.methods.isEmpty { try container.encode(self.methods, forKey: .methods) }
        try container.encode(self.noisePercent, forKey: .noisePercent)
        try container.encodeIfPresent(self.secondary, forKey: .secondary)
        try container.encodeIfPresent(self.stickiness, forKey: .stickiness)
        if !self.ignorePaths.isEmpty { try container.encode(self.ignorePaths, forKey: .ignorePaths) }
        if !self.sensitiveHeaders.isEmpty { try container.encode(self.sensitiveHeaders, forKey: .sensitiveHeaders) }
        if !self.sensitivePaths.isEmpty { try container.encode(self.sensitivePaths, forKey: .sensitivePaths) }
    }
}
