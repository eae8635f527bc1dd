/// A route ready for decisions: upstream names, rewrites and rules resolved and precomputed.
///
/// Everything a decision returns is stored here already, so a decision copies references and allocates nothing. A
/// class so that reading a route from the table costs one reference count, not one per field; the rules' conditions
/// live in the table's `RuleProgram`.
final class CompiledRoute: Sendable {
    let name: String
    /// `host …, path …, methods …` for explanations.
    let summary: String
    let legacy: String
    let defaultUpstream: String
    let legacyRewrite: RequestRewrite?
    let defaultRewrite: RequestRewrite?
    /// Parallel to the route's range of `RuleProgram.Code.rules`.
    let rules: [CompiledRule]
    let timeouts: RouteTimeouts
    /// Where a failed request of this route goes instead (its legacy upstream), or nil with `fallback: off`.
    let fallback: String?
    /// The chosen upstream's answer statuses that send a request to `fallback`.
    let fallbackStatuses: [Int]
    /// The route's retry policy compiled, or nil without one.
    let retry: RetryPlan?
    /// How long a stale answer may stand in for a failure, in milliseconds, or nil: never.
    let staleIfErrorMilliseconds: Int?
    /// The route's rate limit, or nil.
    let rateLimit: RateLimitPolicy?

    init(
        name: String,
        summary: String,
        legacy: String,
        defaultUpstream: String,
        legacyRewrite: RequestRewrite?,
        defaultRewrite: RequestRewrite?,
        rules: [CompiledRule],
        timeouts: RouteTimeouts,
        fallback: String? = nil,
        fallbackStatuses: [Int] = [],
        retry: RetryPlan? = nil,
        staleIfErrorMilliseconds: Int? = nil,
        rateLimit: RateLimitPolicy? = nil
    ) {
        self.name = name
        self.summary = summary
        self.legacy = legacy
        self.defaultUpstream = defaultUpstream
        self.legacyRewrite = legacyRewrite
        self.defaultRewrite = defaultRewrite
        self.rules = rules
        self.timeouts = timeouts
        self.fallback = fallback
        self.fallbackStatuses = fallbackStatuses
        self.retry = retry
        self.staleIfErrorMilliseconds = staleIfErrorMilliseconds
        self.rateLimit = rateLimit
    }
}

/// What a decision reports about a rule: its name, position, upstream and rewrite.
///
/// Read only for the rule that wins and when explaining; what evaluation needs is in `RuleCode`. A class for the
/// same reason as `CompiledRoute`.
final class CompiledRule: Sendable {
    let name: String
    /// 1-based position within the route.
    let position: Int
    let upstream: String
    let rewrite: RequestRewrite?
    /// The first flag the rule names that is off; the rule is skipped while it is set.
    let disabledBy: String?

    init(name: String, position: Int, upstream: String, rewrite: RequestRewrite?, disabledBy: String?) {
        self.name = name
        self.position = position
        self.upstream = upstream
        self.rewrite = rewrite
        self.disabledBy = disabledBy
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

    /// Values are matched on at most their first this many bytes (cut back to a whole character).
    static let maxInput = 1024

    func matches(_ text: String) -> Bool {
        guard text.utf8.count > Self.maxInput else { return text.firstMatch(of: self.regex) != nil }
        var cut = text.utf8.index(text.utf8.startIndex, offsetBy: Self.maxInput)
        // Back off continuation bytes so the prefix ends on a whole scalar.
        while cut > text.utf8.startIndex, text.utf8[cut] & 0xC0 == 0x80 { cut = text.utf8.index(before: cut) }
        let prefix = String(decoding: text.utf8[..<cut], as: UTF8.self)
        return prefix.firstMatch(of: self.regex) != nil
    }
}
