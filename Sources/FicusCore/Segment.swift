/// A named set of constraints on a request, all of which must hold (`beta-testers`, `internal-network`).
///
/// Segments let many rules share one definition of a group of users; changing the segment changes every rule.
public struct Segment: Sendable, Codable, Equatable {
    /// The unique name that conditions refer to.
    ///
    /// Names are the stable identity of a segment.
    public var name: String

    /// The constraints; a request is in the segment when every one holds.
    ///
    /// Conjunction only: a condition's `any` combines segments when a union is wanted. Validation requires at least
    /// one constraint so that an empty segment never silently matches everyone.
    public var constraints: [Predicate]

    /// Creates a segment.
    ///
    /// See `constraints`.
    public init(name: String, constraints: [Predicate]) {
        self.name = name
        self.constraints = constraints
    }
}
