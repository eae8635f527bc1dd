/// A test of one request attribute against configured values (`header:X-Tenant in [acme, globex]`).
///
/// The one building block of segment constraints and of header, cookie and query conditions, so both speak the same
/// operators with the same meaning.
public struct Predicate: Sendable, Codable, Equatable {
    /// The comparison a predicate makes.
    ///
    /// Every operator except `absent` and `not_in` is false when the attribute is missing: a rule about a header
    /// never selects requests that lack it. `not_in` is true for a missing attribute, `absent` only for one.
    public enum Operator: String, Sendable, Codable, Equatable, CaseIterable {
        /// The value equals one of `values`; for `client_ip`, the address lies in one of the CIDR ranges.
        case `in`
        /// The value equals none of `values` (or is missing); for `client_ip`, lies in none of the ranges.
        case notIn = "not_in"
        /// The value equals the single value.
        case equals
        /// The value starts with one of `values`.
        case prefix
        /// The value ends with one of `values`.
        case suffix
        /// The value contains one of `values`.
        case contains
        /// One of the regular expressions in `values` matches somewhere in the value (anchor with `^`/`$`).
        case regex
        /// The value, read as a decimal number, equals the single value.
        case numberEquals = "num_eq"
        /// The value, read as a number, is less than the single value.
        case numberLessThan = "num_lt"
        /// The value, read as a number, is at most the single value.
        case numberLessThanOrEqual = "num_lte"
        /// The value, read as a number, is greater than the single value.
        case numberGreaterThan = "num_gt"
        /// The value, read as a number, is at least the single value.
        case numberGreaterThanOrEqual = "num_gte"
        /// The value, read as a semantic version, equals the single value.
        case semverEquals = "semver_eq"
        /// The value, read as a semantic version, is lower than the single value.
        case semverLessThan = "semver_lt"
        /// The value, read as a semantic version, is at most the single value.
        case semverLessThanOrEqual = "semver_lte"
        /// The value, read as a semantic version, is greater than the single value.
        case semverGreaterThan = "semver_gt"
        /// The value, read as a semantic version, is at least the single value.
        case semverGreaterThanOrEqual = "semver_gte"
        /// The value, read as a semantic version, lies in the npm-style range given as the single value.
        case semverRange = "semver_range"
        /// The attribute is present (any value, even empty); `values` must be empty.
        case exists
        /// The attribute is missing; `values` must be empty.
        case absent

        /// Whether the operator compares against exactly one value.
        ///
        /// Validation uses it to reject lists where a single bound is meant.
        var takesSingleValue: Bool {
            switch self {
            case .equals, .numberEquals, .numberLessThan, .numberLessThanOrEqual, .numberGreaterThan,
                .numberGreaterThanOrEqual, .semverEquals, .semverLessThan, .semverLessThanOrEqual, .semverGreaterThan,
                .semverGreaterThanOrEqual, .semverRange:
                return true
            case .in, .notIn, .prefix, .suffix, .contains, .regex, .exists, .absent:
                return false
            }
        }

        /// Whether the operator takes no values at all.
        ///
        /// See `takesSingleValue`.
        var takesNoValue: Bool {
            self == .exists || self == .absent
        }
    }

    /// The request attribute tested.
    ///
    /// See `Attribute` for how each kind is read from the request.
    public var attribute: Attribute

    /// The comparison.
    ///
    /// Encoded under the key `op` to keep one-line YAML constraints short.
    public var op: Operator

    /// The values compared against; one for single-value operators, none for `exists`/`absent`. Defaults to empty.
    ///
    /// Strings even for numbers and versions so that the configuration shows exactly what was written.
    public var values: [String]

    /// Whether text comparisons ignore the case of ASCII letters (and regexes ignore case). Defaults to `false`.
    ///
    /// ASCII-only folding keeps comparisons allocation-free; header values that matter for routing are ASCII.
    public var caseInsensitive: Bool

    /// Creates a predicate.
    ///
    /// See the properties for the defaults.
    public init(_ attribute: Attribute, _ op: Operator, _ values: [String] = [], caseInsensitive: Bool = false) {
        self.attribute = attribute
        self.op = op
        self.values = values
        self.caseInsensitive = caseInsensitive
    }

    private enum CodingKeys: String, CodingKey {
        case attribute
        case op
        case values
        case caseInsensitive = "case_insensitive"
    }

    /// Decodes a predicate; `values` defaults to empty and `case_insensitive` (formerly `caseInsensitive`, still read)
    /// to false.
    ///
    /// See the properties.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.attribute = try container.decode(Attribute.self, forKey: .attribute)
        self.op = try container.decode(Operator.self, forKey: .op)
        self.values = try container.decodeIfPresent([String].self, forKey: .values) ?? []
        self.caseInsensitive =
            try container.decodeIfPresent(
                Bool.self, forKey: .caseInsensitive, formerly: "caseInsensitive", in: decoder) ?? false
    }
}

extension Predicate: CustomStringConvertible {
    /// The predicate as one line (`header:X-Tenant in [acme, globex]`).
    ///
    /// Used in validation messages and explanations.
    public var description: String {
        var text = "\(self.attribute) \(self.op.rawValue)"
        if !self.values.isEmpty {
            text += self.op.takesSingleValue ? " \(self.values[0])" : " [\(self.values.joined(separator: ", "))]"
        }
        return self.caseInsensitive ? text + " (case-insensitive)" : text
    }
}
