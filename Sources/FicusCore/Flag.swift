/// A named on/off switch that rules can name.
///
/// A flag that is off is a kill switch: every rule that names it, anywhere in its condition, never matches, so one
/// command sends all of that traffic back to where it would go without those rules.
public struct Flag: Sendable, Codable, Equatable {
    /// The unique name that conditions refer to.
    ///
    /// Names are the stable identity of a flag.
    public var name: String

    /// Whether the flag is on. Defaults to `false`.
    ///
    /// Off by default so that a rule naming a new flag stays inactive until someone turns it on deliberately.
    public var enabled: Bool

    /// Creates a flag.
    ///
    /// See `enabled` for why the default is off.
    public init(name: String, enabled: Bool = false) {
        self.name = name
        self.enabled = enabled
    }

    private enum CodingKeys: String, CodingKey {
        case name
        case enabled
    }

    /// Decodes a flag; a missing `enabled` means off.
    ///
    /// See `enabled`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.name = try container.decode(String.self, forKey: .name)
        self.enabled = try container.decodeIfPresent(Bool.self, forKey: .enabled) ?? false
    }
}
