/// What kind of bodies a comparison looked at.
///
/// Reports show JSON differences field by field, text ones as a line summary and binary ones by size, so they need
/// to know which it was.
public enum BodyKind: String, Sendable, Codable, CaseIterable {
    /// Both bodies parsed as JSON and were diffed structurally.
    case json
    /// Both bodies were text and were compared line by line.
    case text
    /// At least one body was neither JSON nor text (or was truncated or undecodable) and bytes were compared.
    case binary
    /// Both bodies were empty, or bodies were not compared.
    case empty
}

/// The result of comparing a serving answer with a shadow answer.
///
/// It is a plain value so that the proxy can hand it to the store sink without the comparer knowing about either.
public struct Comparison: Sendable, Equatable {
    /// Every difference found, in order: status, headers, then body.
    public var differences: [Difference]

    /// What kind of bodies were compared.
    public var bodyKind: BodyKind

    /// For text bodies that differ, a line-diff summary such as `+3 -1 lines`.
    public var textSummary: String?

    /// How many JSON body differences were found beyond `CompareOptions.maxBodyDifferences` and not kept.
    ///
    /// An array that shifted by one element differs at every field of every element; a record needs to say that it
    /// is large, not carry all of it.
    public var omittedDifferences: Int

    /// Whether no difference was found.
    public var identical: Bool {
        self.differences.isEmpty
    }

    /// Creates a comparison result.
    ///
    /// Only the comparer needs this outside tests.
    public init(
        differences: [Difference],
        bodyKind: BodyKind,
        textSummary: String? = nil,
        omittedDifferences: Int = 0
    ) {
        self.differences = differences
        self.bodyKind = bodyKind
        self.textSummary = textSummary
        self.omittedDifferences = omittedDifferences
    }
}
