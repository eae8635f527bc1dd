/// One ordered step of a route: when the condition holds, the request goes to the rule's upstream.
///
/// Rules are tried in order and the first match wins; a request that matches none goes to the route's default.
public struct Rule: Sendable, Equatable {
    /// The rule's name, unique within the whole configuration and never reused.
    ///
    /// Percentage buckets hash this name, so reordering or editing other rules never moves a user to the other side,
    /// and reusing a retired name would reshuffle users that the old rule had placed.
    public var name: String

    /// When the rule applies. Defaults to `Condition.always`.
    ///
    /// An always-true rule is a catch-all; validation rejects rules placed after one.
    public var condition: Condition

    /// The upstream that serves requests matching this rule.
    ///
    /// Must name an upstream of the configuration.
    public var upstream: String

    /// What identifies a user for percentage conditions, or nil (the default) for the client address.
    ///
    /// The bucket is Murmur3 x86_32 of `"<rule name>:<value>"`, seed 0, `% 100 + 1`. Fallback, in order: the value of
    /// this attribute; when it is missing or empty (or nil here), the client address in canonical text form (IPv4
    /// for IPv4-mapped IPv6); when there is no client address either, the request has no bucket and every
    /// percentage condition below 100 is false for it, so unidentifiable requests stay on the side they would take
    /// without the rollout. Percentage 100 holds without a bucket.
    public var stickiness: Attribute?

    /// Creates a rule.
    ///
    /// See the properties for the defaults.
    public init(name: String, condition: Condition = .always, upstream: String, stickiness: Attribute? = nil) {
        self.name = name
        self.condition = condition
        self.upstream = upstream
        self.stickiness = stickiness
    }
}

extension Rule: Codable {
    private enum CodingKeys: String, CodingKey {
        case name
        case condition
        case upstream
        case stickiness
    }

    /// Decodes a rule; a missing `condition` means always.
    ///
    /// See the properties.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.name = try container.decode(String.self, forKey: .name)
        self.condition = try container.decodeIfPresent(Condition.self, forKey: .condition) ?? .always
        self.upstream = try container.decode(String.self, forKey: .upstream)
        self.stickiness = try container.decodeIfPresent(Attribute.self, forKey: .stickiness)
    }
}
