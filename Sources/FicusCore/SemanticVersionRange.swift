/// A set of semantic versions written in npm range syntax (`>=2.0.0 <3`, `^2.1`, `~1.4`, `2.x`, `1 - 2 || 4`).
///
/// Version routes are usually written as "every 2.x" or "at least 2.3"; npm syntax is what most people already
/// know. Pre-releases are compared by plain precedence (npm's rule of hiding them unless named is not applied).
public struct SemanticVersionRange: Sendable, Hashable, CustomStringConvertible {
    /// The text the range was parsed from.
    ///
    /// Kept for messages and explanations, which show the range as the operator wrote it.
    public let description: String

    /// Alternatives (`||`), each a conjunction of primitive comparisons.
    ///
    /// Shorthands (`^`, `~`, partial versions, hyphens) are desugared at parse time, so matching is a few integer
    /// comparisons.
    let alternatives: [[Comparator]]

    struct Comparator: Sendable, Hashable {
        enum Operation: Sendable, Hashable {
            case lessThan
            case lessThanOrEqual
            case greaterThan
            case greaterThanOrEqual
            case equal
        }

        var operation: Operation
        var version: SemanticVersion

        func matches(_ candidate: SemanticVersion) -> Bool {
            switch self.operation {
            case .lessThan:
                return candidate < self.version
            case .lessThanOrEqual:
                return candidate <= self.version
            case .greaterThan:
                return candidate > self.version
            case .greaterThanOrEqual:
                return candidate >= self.version
            case .equal:
                return candidate == self.version
            }
        }
    }

    /// Parses a range; nil when any part is malformed.
    ///
    /// Whitespace-separated comparators must all hold; `||` separates alternatives; `*`, `x` or an empty range
    /// match every version.
    public init?(_ text: String) {
        var alternatives: [[Comparator]] = []
        for alternative in text.split(separator: "||", omittingEmptySubsequences: false) {
            let tokens = alternative.split(whereSeparator: { $0 == " " || $0 == "\t" })
            var comparators: [Comparator] = []
            if tokens.count == 3, tokens[1] == "-" {
                guard let low = Partial(tokens[0]), let high = Partial(tokens[2]) else {
                    return nil
                }
                comparators += low.atLeast()
                comparators += high.atMost()
            } else {
                for token in tokens {
                    guard let parsed = SemanticVersionRange.comparators(token) else {
                        return nil
                    }
                    comparators += parsed
                }
            }
            alternatives.append(comparators)
        }
        self.description = text
        self.alternatives = alternatives
    }

    /// Whether `version` lies in the range.
    ///
    /// True when every comparison of at least one alternative holds. Walks the comparators in place, so that version
    /// routing copies (and retains) no arrays per request.
    public func contains(_ version: SemanticVersion) -> Bool {
        self.alternatives.withUnsafeBufferPointer { alternatives in
            for index in alternatives.indices {
                let matched = alternatives[index].withUnsafeBufferPointer { comparators in
                    for comparator in comparators.indices where !comparators[comparator].matches(version) {
                        return false
                    }
                    return true
                }
                if matched {
                    return true
                }
            }
            return false
        }
    }

    private static func comparators(_ token: Substring) -> [Comparator]? {
        var rest = token
        var prefix = ""
        for candidate in [">=", "<=", ">", "<", "=", "^", "~"] where rest.hasPrefix(candidate) {
            prefix = candidate
            rest = rest.dropFirst(candidate.count)
            break
        }
        guard prefix.isEmpty || !rest.isEmpty, let partial = Partial(rest) else {
            return nil
        }
        switch prefix {
        case ">=":
            return partial.atLeast()
        case ">":
            return partial.above()
        case "<=":
            return partial.atMost()
        case "<":
            return partial.below()
        case "^":
            return partial.caret()
        case "~":
            return partial.tilde()
        default:
            return partial.exactly()
        }
    }

    /// A version with possibly missing or wildcard parts (`2`, `2.1`, `2.x`, `*`).
    ///
    /// Range shorthands mean different bounds depending on how many parts were given.
    private struct Partial {
        var parts: [Int]
        var prerelease: [String]

        init?(_ token: Substring) {
            var text = token
            if text.first == "v" || text.first == "V" {
                text = text.dropFirst()
            }
            if text == "*" || text == "x" || text == "X" || text.isEmpty {
                self.parts = []
                self.prerelease = []
                return
            }
            var core = text
            var prerelease: [String] = []
            if let dash = text.firstIndex(where: { $0 == "-" || $0 == "+" }) {
                guard let full = SemanticVersion(text), full.prerelease.isEmpty || text[dash] == "-" else {
                    return nil
                }
                prerelease = full.prerelease
                core = text[..<dash]
            }
            var parts: [Int] = []
            var sawWildcard = false
            let pieces = core.split(separator: ".", omittingEmptySubsequences: false)
            guard pieces.count <= 3 else {
                return nil
            }
            for piece in pieces {
                if piece == "x" || piece == "X" || piece == "*" {
                    sawWildcard = true
                    continue
                }
                guard !sawWildcard, let number = SemanticVersion.number(piece) else {
                    return nil
                }
                parts.append(number)
            }
            guard prerelease.isEmpty || parts.count == 3 else {
                return nil
            }
            self.parts = parts
            self.prerelease = prerelease
        }

        private var floor: SemanticVersion {
            SemanticVersion(
                major: self.parts.count > 0 ? self.parts[0] : 0,
                minor: self.parts.count > 1 ? self.parts[1] : 0,
                patch: self.parts.count > 2 ? self.parts[2] : 0,
                prerelease: self.prerelease
            )
        }

        /// The first version after every version this partial names (`2.1` → `2.2.0`); nil for `*`.
        private var ceiling: SemanticVersion? {
            switch self.parts.count {
            case 0:
                return nil
            case 1:
                return SemanticVersion(major: self.parts[0] + 1)
            case 2:
                return SemanticVersion(major: self.parts[0], minor: self.parts[1] + 1)
            default:
                return nil
            }
        }

        func exactly() -> [Comparator] {
            if self.parts.count == 3 {
                return [Comparator(operation: .equal, version: self.floor)]
            }
            return self.atLeast() + self.belowCeiling()
        }

        func atLeast() -> [Comparator] {
            self.parts.isEmpty ? [] : [Comparator(operation: .greaterThanOrEqual, version: self.floor)]
        }

        func above() -> [Comparator] {
            if self.parts.count == 3 {
                return [Comparator(operation: .greaterThan, version: self.floor)]
            }
            guard let ceiling = self.ceiling else {
                return [Comparator(operation: .lessThan, version: SemanticVersion(major: 0))]
            }
            return [Comparator(operation: .greaterThanOrEqual, version: ceiling)]
        }

        func atMost() -> [Comparator] {
            if self.parts.count == 3 {
                return [Comparator(operation: .lessThanOrEqual, version: self.floor)]
            }
            return self.belowCeiling()
        }

        func below() -> [Comparator] {
            if self.parts.isEmpty {
                return [Comparator(operation: .lessThan, version: SemanticVersion(major: 0))]
            }
            return [Comparator(operation: .lessThan, version: self.floor)]
        }

        func caret() -> [Comparator] {
            let upper: SemanticVersion
            switch (self.parts.count, self.parts.first ?? 0) {
            case (0, _):
                return []
            case (1, _):
                upper = SemanticVersion(major: self.parts[0] + 1)
            case (_, let major) where major > 0:
                upper = SemanticVersion(major: major + 1)
            case (2, _):
                upper = SemanticVersion(major: 0, minor: self.parts[1] + 1)
            default:
                upper =
                    self.parts[1] > 0
                    ? SemanticVersion(major: 0, minor: self.parts[1] + 1)
                    : SemanticVersion(major: 0, minor: 0, patch: self.parts[2] + 1)
            }
            return self.atLeast() + [Comparator(operation: .lessThan, version: upper)]
        }

        func tilde() -> [Comparator] {
            switch self.parts.count {
            case 0:
                return []
            case 1:
                return self.atLeast() + [
                    Comparator(operation: .lessThan, version: SemanticVersion(major: self.parts[0] + 1))
                ]
            default:
                return self.atLeast() + [
                    Comparator(
                        operation: .lessThan,
                        version: SemanticVersion(major: self.parts[0], minor: self.parts[1] + 1)
                    )
                ]
            }
        }

        private func belowCeiling() -> [Comparator] {
            guard let ceiling = self.ceiling else {
                return []
            }
            return [Comparator(operation: .lessThan, version: ceiling)]
        }
    }
}
