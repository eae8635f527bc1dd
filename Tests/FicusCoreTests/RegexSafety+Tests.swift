import Testing

@testable import FicusCore

@Suite("Regex conditions: catastrophic backtracking refused, long values bounded")
struct RegexSafetyTests {
    @Test(arguments: [
        "(a+)+$", "(a*)*", "(?:x+y?)*", "(a{2,})+", "^(\\d+)*$", "((ab)*)+", "(a|b+){2,}", "((a+){1})+", "([a-z]+)*@",
        "(.*)*", "(a{1,3}){2,5}",
    ])
    func nestedQuantifiersAreRefused(pattern: String) {
        #expect(RegexSafety.nestedQuantifier(in: pattern) != nil, "\(pattern)")
    }

    @Test(arguments: [
        "^/orders/\\d+$", "(a|b)+", "(ab){3}", "(a{2})+", "[(a+)]+", "\\(a+\\)+", "(a+)?", "^v(\\d+)\\.(\\d+)$",
        "x{2}y{1,}", "a{", "(a+)", "beta|canary", "(a){1}",
    ])
    func safePatternsAreAccepted(pattern: String) {
        #expect(RegexSafety.nestedQuantifier(in: pattern) == nil, "\(pattern)")
    }

    /// The refusal happens at validation, naming the route, the rule and the pattern.
    @Test func validationRefusesANestedQuantifier() {
        let configuration = Configuration(
            upstreams: [Upstream(name: "legacy", addresses: [Endpoint(host: "127.0.0.1", port: 1)])],
            routes: [
                Route(
                    name: "orders",
                    legacy: "legacy",
                    rules: [
                        Rule(name: "evil", condition: .match(Predicate(.header("X-A"), .regex, ["(a+)+$"])), upstream: "legacy")
                    ]
                )
            ]
        )
        let messages = configuration.validate().map(\.description)
        #expect(messages.contains { $0.contains("regex '(a+)+$'") && $0.contains("nested quantifiers") }, "\(messages)")
    }

    /// A value is matched on its first 1 KiB only: a match beyond it does not count, and a long value costs what
    /// 1 KiB costs.
    @Test func longValuesAreMatchedOnTheirFirstKilobyte() throws {
        let regex = try CompiledRegex(pattern: "needle", caseInsensitive: false)
        #expect(regex.matches(String(repeating: "x", count: 1000) + "needle"))
        #expect(!regex.matches(String(repeating: "x", count: 1024) + "needle"))
        // A multi-byte character across the cut is not split.
        let accented = String(repeating: "é", count: 600) + "needle"
        #expect(!regex.matches(accented))
        #expect(try CompiledRegex(pattern: "^é+$", caseInsensitive: false).matches(String(repeating: "é", count: 600)))
    }
}
