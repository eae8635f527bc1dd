/// A route ready for decisions: upstream names, rewrites and rules resolved and precomputed.
///
/// Everything a decision returns is stored here already, so a decision copies references and allocates nothing.
struct CompiledRoute: Sendable {
    let name: String
    /// `host …, path …, methods …` for explanations.
    let summary: String
    /// Upper-cased; empty for every method.
    let methods: [String]
    let legacy: String
    let defaultUpstream: String
    let legacyRewrite: RequestRewrite?
    let defaultRewrite: RequestRewrite?
    let rules: [CompiledRule]
    let timeouts: RouteTimeouts

    @inline(__always)
    func accepts(method: String) -> Bool {
        self.methods.isEmpty || self.methods.contains(method)
    }
}

/// A rule ready for evaluation.
///
/// The bucket hasher has already consumed `"<rule name>:"`, so bucketing hashes only the stickiness value.
struct CompiledRule: Sendable {
    let name: String
    /// 1-based position within the route.
    let position: Int
    let condition: CompiledCondition
    let upstream: String
    let rewrite: RequestRewrite?
    let stickiness: CompiledAttribute?
    let bucketHasher: Murmur3.Hasher
    /// The first flag the rule names that is off; the rule is skipped while it is set.
    let disabledBy: String?
}

/// A condition with names resolved to indices and values pre-parsed.
///
/// Flags are settled at compile time: a rule naming an off flag is disabled, so a flag left in a live rule is true.
indirect enum CompiledCondition: Sendable {
    case all([CompiledCondition])
    case any([CompiledCondition])
    case not(CompiledCondition)
    case flag(String)
    case segment(Int)
    case version(CompiledVersion)
    case percentage(Int)
    case method([String])
    case predicate(CompiledPredicate)
}

/// A segment ready for evaluation.
///
/// Its constraints are compiled once and shared by every rule that names the segment.
struct CompiledSegment: Sendable {
    let name: String
    let constraints: [CompiledPredicate]
}

/// A request attribute with its name pre-processed.
///
/// Header names are lower-cased (`RoutableRequest.header` receives lower case); query names are kept as bytes.
enum CompiledAttribute: Sendable {
    case header(String)
    case cookie(String)
    case query([UInt8])
    case clientIP

    init(_ attribute: Attribute) {
        switch attribute {
        case .header(let name):
            self = .header(name.lowercased())
        case .cookie(let name):
            self = .cookie(name)
        case .query(let name):
            self = .query(Array(name.utf8))
        case .clientIP:
            self = .clientIP
        }
    }
}

/// A version match with its range parsed.
///
/// Parsed once so that a decision only parses the request's version.
struct CompiledVersion: Sendable {
    enum Requirement: Sendable {
        case exact([UInt8])
        case range(SemanticVersionRange)
    }

    let source: VersionMatch
    /// Lower-cased header name.
    let header: String
    /// Lower-cased parameter name, or nil for the whole header value.
    let parameter: [UInt8]?
    let requirement: Requirement
}

/// A predicate with its values pre-processed for the operator.
///
/// Sets become hash tables, texts become (lower-cased) bytes, numbers, versions, ranges and regexes are parsed.
struct CompiledPredicate: Sendable {
    enum Test: Sendable {
        case exists
        case absent
        case oneOf(ByteKeyedTable<Bool>, negated: Bool)
        case prefix([[UInt8]], foldsCase: Bool)
        case suffix([[UInt8]], foldsCase: Bool)
        case contains([[UInt8]], foldsCase: Bool)
        case regex([CompiledRegex])
        case number(Predicate.Operator, Double)
        case semver(Predicate.Operator, SemanticVersion)
        case semverRange(SemanticVersionRange)
        case cidr([CIDR], negated: Bool)
    }

    let source: Predicate
    let attribute: CompiledAttribute
    let test: Test
}

/// A compiled regular expression that may be shared across threads.
///
/// `Regex` is not declared `Sendable`, but it is an immutable value; its lazily lowered program is forced here, at
/// compile time, before the table is published to other threads, so concurrent matching only reads.
final class CompiledRegex: @unchecked Sendable {
    let pattern: String
    private let regex: Regex<AnyRegexOutput>

    init(pattern: String, caseInsensitive: Bool) throws {
        let regex = try Regex(pattern)
        self.regex = caseInsensitive ? regex.ignoresCase() : regex
        self.pattern = pattern
        _ = "".firstMatch(of: self.regex)
    }

    func matches(_ text: String) -> Bool {
        text.firstMatch(of: self.regex) != nil
    }
}
