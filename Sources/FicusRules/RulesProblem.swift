/// One problem in a rules file, with where it is when known.
///
/// Printed as `file:line:column: message`, the form editors and terminals turn into links.
public struct RulesProblem: Sendable, Equatable, CustomStringConvertible {
    public var file: String?
    public var line: Int?
    public var column: Int?
    public var message: String

    /// A problem at `file:line:column`, or at as much of that place as is known.
    ///
    /// Every part of the place is optional because some problems (a missing file, a store-wide validation error)
    /// have none.
    public init(file: String? = nil, line: Int? = nil, column: Int? = nil, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String {
        var location = ""
        if let file = self.file {
            location = file
            if let line = self.line {
                location += ":\(line)"
                if let column = self.column {
                    location += ":\(column)"
                }
            }
            location += ": "
        }
        return location + self.message
    }
}

/// Rules files that could not be read, parsed or decoded, or that describe an invalid configuration.
///
/// Carries every problem found, not only the first, so that one run of `ficus validate` lists everything to fix.
public struct RulesFilesError: Error, Sendable, Equatable, CustomStringConvertible {
    public var problems: [RulesProblem]

    public init(_ problems: [RulesProblem]) {
        self.problems = problems
    }

    public var description: String {
        self.problems.map(\.description).joined(separator: "\n")
    }
}
