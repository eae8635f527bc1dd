/// A route ready for decisions: upstream names, rewrites and rules resolved and precomputed.
///
/// Everything a decision returns is stored here already, so a decision copies references and allocates nothing. A
/// class so that reading a route from the table costs one reference count, not one per field.
final class CompiledRoute: Sendable {
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

    init(
        name: String,
        summary: String,
        methods: [String],
        legacy: String,
        defaultUpstream: String,
        legacyRewrite: RequestRewrite?,
        defaultRewrite: RequestRewrite?,
        rules: [CompiledRule],
        timeouts: RouteTimeouts
    ) {
        self.name = name
        self.summary = summary
        self.methods = methods
        self.legacy = legacy
        self.defaultUpstream = defaultUpstream
        self.legacyRewrite = legacyRewrite
        self.defaultRewrite = defaultRewrite
        self.rules = rules
        self.timeouts = timeouts
    }

    @inline(__always)
    func accepts(method: String) -> Bool {
        self.methods.isEmpty || self.methods.contains(method)
    }
}

/// A rule ready for evaluation.
///
/// The bucket hasher has already consumed `"<rule name>:"`, so bucketing hashes only the stickiness value. A class
/// for the same reason as `CompiledRoute`.
final class CompiledRule: Sendable {
    let name: String
    /// 1-based position within the route.
    let position: Int
    let condition: CompiledCondition
    let upstream: String
    let rewrite: RequestRewrite?
    let stickiness: CompiledAttribute?
    /// The stickiness attribute as configured, for explanations.
    let stickinessLabel: String
    let bucketHasher: Murmur3.Hasher
    /// The first flag the rule names that is off; the rule is skipped while it is set.
    let disabledBy: String?

    init(
        name: String,
        position: Int,
        condition: CompiledCondition,
        upstream: String,
        rewrite: RequestRewrite?,
        stickiness: Attribute?,
        disabledBy: String?
    ) {
        var hasher = Murmur3.Hasher()
        hasher.combine(name)
        hasher.combine(UInt8(ascii: ":"))
        self.name = name
        self.position = position
        self.condition = condition
        self.upstream = upstream
        self.rewrite = rewrite
        self.stickiness = stickiness.map(CompiledAttribute.init)
        self.stickinessLabel = stickiness?.description ?? "client_ip"
        self.bucketHasher = hasher
        self.disabledBy = disabledBy
    }
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
final class CompiledVersion: Sendable {
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

    init(source: VersionMatch, header: String, parameter: [UInt8]?, requirement: Requirement) {
        self.source = source
        self.header = header
        self.parameter = parameter
        self.requirement = requirement
    }
}

/// A predicate with its values pre-processed for the operator.
///
/// Sets become hash tables, texts become (lower-cased) bytes, numbers, versions, ranges and regexes are parsed.
final class CompiledPredicate: Sendable {
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

    init(source: Predicate, attribute: CompiledAttribute, test: Test) {
        self.source = source
        self.attribute = attribute
        self.test = test
    }
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
