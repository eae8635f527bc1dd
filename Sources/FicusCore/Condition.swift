/// When a rule applies: flags, segments, versions, percentages, methods and attribute predicates, combined with
/// `all`, `any` and `not`.
///
/// Encoded as an object with exactly one key naming the case (`{"segment": "beta"}`, `{"all": [...]}`), which reads
/// naturally in YAML rule files.
public indirect enum Condition: Sendable, Equatable {
    /// Every condition holds; `all([])` always holds and is the default condition of a rule.
    case all([Condition])

    /// At least one condition holds; `any([])` never holds.
    case any([Condition])

    /// The condition does not hold. A flag under `not` is rejected by validation, since an off flag kills the rule.
    case not(Condition)

    /// The named flag is on. When it is off, the whole rule never matches wherever the flag appears (kill switch).
    case flag(String)

    /// The request is in the named segment.
    case segment(String)

    /// The request's API version matches.
    case version(VersionMatch)

    /// The request's sticky bucket (1...100) is at most this percentage (0...100); see `Rule.stickiness`.
    case percentage(Int)

    /// The request method is one of these (compared exactly, configured in upper case).
    case method([String])

    /// A header, cookie, query parameter or client-address predicate holds.
    case match(Predicate)

    /// The condition that always holds.
    ///
    /// A rule with this condition is a catch-all: rules after it are unreachable.
    public static let always = Condition.all([])

    /// A predicate on a request header.
    ///
    /// Shorthand for `.match(Predicate(.header(name), op, values))`.
    public static func header(
        _ name: String,
        _ op: Predicate.Operator,
        _ values: [String] = [],
        caseInsensitive: Bool = false
    ) -> Condition {
        .match(Predicate(.header(name), op, values, caseInsensitive: caseInsensitive))
    }

    /// A predicate on a cookie.
    ///
    /// Shorthand for `.match(Predicate(.cookie(name), op, values))`.
    public static func cookie(
        _ name: String,
        _ op: Predicate.Operator,
        _ values: [String] = [],
        caseInsensitive: Bool = false
    ) -> Condition {
        .match(Predicate(.cookie(name), op, values, caseInsensitive: caseInsensitive))
    }

    /// A predicate on a query parameter.
    ///
    /// Shorthand for `.match(Predicate(.query(name), op, values))`.
    public static func query(
        _ name: String,
        _ op: Predicate.Operator,
        _ values: [String] = [],
        caseInsensitive: Bool = false
    ) -> Condition {
        .match(Predicate(.query(name), op, values, caseInsensitive: caseInsensitive))
    }

    /// Whether the condition holds for every request whatever the flags, segments and request say.
    ///
    /// Validation uses it to find rules made unreachable by an earlier catch-all. Flags do not count: a catch-all
    /// behind a flag stops being one when the flag is turned off.
    public var isAlwaysTrue: Bool {
        switch self {
        case .all(let conditions):
            return conditions.allSatisfy(\.isAlwaysTrue)
        case .any(let conditions):
            return conditions.contains(where: \.isAlwaysTrue)
        case .not(let condition):
            return condition.isAlwaysFalse
        case .percentage(let percentage):
            return percentage == 100
        case .flag, .segment, .version, .method, .match:
            return false
        }
    }

    /// Whether the condition holds for no request at all.
    ///
    /// The counterpart of `isAlwaysTrue`, needed for `not`.
    public var isAlwaysFalse: Bool {
        switch self {
        case .all(let conditions):
            return conditions.contains(where: \.isAlwaysFalse)
        case .any(let conditions):
            return conditions.allSatisfy(\.isAlwaysFalse)
        case .not(let condition):
            return condition.isAlwaysTrue
        case .percentage(let percentage):
            return percentage == 0
        case .flag, .segment, .version, .method, .match:
            return false
        }
    }

    /// The names of every flag the condition mentions, in order of appearance.
    ///
    /// The routing table kills a rule when any of them is off.
    public var flagNames: [String] {
        switch self {
        case .all(let conditions), .any(let conditions):
            return conditions.flatMap(\.flagNames)
        case .not(let condition):
            return condition.flagNames
        case .flag(let name):
            return [name]
        case .segment, .version, .percentage, .method, .match:
            return []
        }
    }
}

extension Condition: CustomStringConvertible {
    /// The condition as one line (`all(segment 'beta', percentage 10)`).
    ///
    /// Used in validation messages and explanations.
    public var description: String {
        switch self {
        case .all(let conditions):
            return conditions.isEmpty ? "always" : "all(\(conditions.map(\.description).joined(separator: ", ")))"
        case .any(let conditions):
            return conditions.isEmpty ? "never" : "any(\(conditions.map(\.description).joined(separator: ", ")))"
        case .not(let condition):
            return "not(\(condition))"
        case .flag(let name):
            return "flag '\(name)'"
        case .segment(let name):
            return "segment '\(name)'"
        case .version(let match):
            return "version \(match)"
        case .percentage(let percentage):
            return "percentage \(percentage)"
        case .method(let methods):
            return "method [\(methods.joined(separator: ", "))]"
        case .match(let predicate):
            return predicate.description
        }
    }
}

extension Condition: Codable {
    private enum CodingKeys: String, CodingKey, CaseIterable {
        case all
        case any
        case not
        case flag
        case segment
        case version
        case percentage
        case method
        case match
    }

    /// Decodes an object with exactly one key naming the case.
    ///
    /// More than one key is an error rather than an implicit `all`, so that a typo never widens a rule.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let keys = container.allKeys
        guard keys.count == 1, let key = keys.first else {
            let names = CodingKeys.allCases.map(\.stringValue).joined(separator: ", ")
            throw DecodingError.dataCorrupted(
                DecodingError.Context(
                    codingPath: decoder.codingPath,
                    debugDescription: "a condition needs exactly one of \(names)"
                )
            )
        }
        switch key {
        case .all:
            self = .all(try container.decode([Condition].self, forKey: .all))
        case .any:
            self = .any(try container.decode([Condition].self, forKey: .any))
        case .not:
            self = .not(try container.decode(Condition.self, forKey: .not))
        case .flag:
            self = .flag(try container.decode(String.self, forKey: .flag))
        case .segment:
            self = .segment(try container.decode(String.self, forKey: .segment))
        case .version:
            self = .version(try container.decode(VersionMatch.self, forKey: .version))
        case .percentage:
            self = .percentage(try container.decode(Int.self, forKey: .percentage))
        case .method:
            // A list first: what the store writes, so reading a stored revision never throws and catches here (a
            // thousand routes' worth of thrown errors was a tenth of a cold read). Rules files may give one method.
            if let methods = try? container.decode([String].self, forKey: .method) {
                self = .method(methods)
            } else {
                self = .method([try container.decode(String.self, forKey: .method)])
            }
        case .match:
            self = .match(try container.decode(Predicate.self, forKey: .match))
        }
    }

    /// Encodes an object with one key naming the case.
    ///
    /// See `init(from:)`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .all(let conditions):
            try container.encode(conditions, forKey: .all)
        case .any(let conditions):
            try container.encode(conditions, forKey: .any)
        case .not(let condition):
            try container.encode(condition, forKey: .not)
        case .flag(let name):
            try container.encode(name, forKey: .flag)
        case .segment(let name):
            try container.encode(name, forKey: .segment)
        case .version(let match):
            try container.encode(match, forKey: .version)
        case .percentage(let percentage):
            try container.encode(percentage, forKey: .percentage)
        case .method(let methods):
            try container.encode(methods, forKey: .method)
        case .match(let predicate):
            try container.encode(predicate, forKey: .match)
        }
    }
}
