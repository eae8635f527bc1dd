import Testing

@testable import FicusCore

@Suite("RoutingTable conditions and operators")
struct RoutingTableConditionTests {
    /// Whether a single rule with `condition` sends `request` to `orders-v2`.
    static func matches(
        _ condition: Condition,
        _ request: RequestFacts,
        segments: [Segment] = [],
        flags: [Flag] = []
    ) throws -> Bool {
        let table = try Fixtures.table(
            rules: [Rule(name: "r", condition: condition, upstream: "orders-v2")],
            segments: segments,
            flags: flags
        )
        let decision = table.decide(request)
        #expect(decision.route == "orders")
        return decision.upstream == "orders-v2"
    }

    static func header(_ value: String?) -> RequestFacts {
        Fixtures.request(headers: value.map { [("X-Tenant", $0)] } ?? [])
    }

    struct OperatorCase: Sendable, CustomStringConvertible {
        var op: Predicate.Operator
        var values: [String]
        var caseInsensitive: Bool
        var value: String?
        var expected: Bool

        var description: String {
            "\(self.op.rawValue) \(self.values) ci=\(self.caseInsensitive) on \(self.value ?? "<missing>")"
        }
    }

    static func c(
        _ op: Predicate.Operator,
        _ values: [String],
        _ value: String?,
        _ expected: Bool,
        ci: Bool = false
    ) -> OperatorCase {
        OperatorCase(op: op, values: values, caseInsensitive: ci, value: value, expected: expected)
    }

    static let operatorCases: [OperatorCase] = [
        c(.in, ["acme", "globex"], "globex", true),
        c(.in, ["acme", "globex"], "Globex", false),
        c(.in, ["acme", "globex"], "GLOBEX", true, ci: true),
        c(.in, ["acme"], nil, false),
        c(.notIn, ["acme"], "globex", true),
        c(.notIn, ["acme"], "acme", false),
        c(.notIn, ["acme"], "ACME", false, ci: true),
        c(.notIn, ["acme"], nil, true),
        c(.equals, ["acme"], "acme", true),
        c(.equals, ["acme"], "acmes", false),
        c(.equals, ["acme"], "AcMe", true, ci: true),
        c(.prefix, ["ac", "zz"], "acme", true),
        c(.prefix, ["AC"], "acme", false),
        c(.prefix, ["AC"], "acme", true, ci: true),
        c(.prefix, ["acmeacme"], "acme", false),
        c(.suffix, ["me"], "acme", true),
        c(.suffix, ["ME"], "acme", true, ci: true),
        c(.suffix, ["ac"], "acme", false),
        c(.contains, ["cm"], "acme", true),
        c(.contains, ["CM"], "acme", true, ci: true),
        c(.contains, ["x"], "acme", false),
        c(.contains, ["cm"], nil, false),
        c(.regex, ["^ac.e$"], "acme", true),
        c(.regex, ["^AC"], "acme", false),
        c(.regex, ["^AC"], "acme", true, ci: true),
        c(.regex, ["c(m)"], "xacmex", true),
        c(.regex, ["^b", "^a"], "acme", true),
        c(.numberEquals, ["42"], "42.0", true),
        c(.numberEquals, ["42"], "41", false),
        c(.numberLessThan, ["10"], "9.5", true),
        c(.numberLessThan, ["10"], "10", false),
        c(.numberLessThanOrEqual, ["10"], "10", true),
        c(.numberGreaterThan, ["10"], "11", true),
        c(.numberGreaterThan, ["10"], "abc", false),
        c(.numberGreaterThanOrEqual, ["-1"], "-1", true),
        c(.semverEquals, ["2.0.0"], "2", true),
        c(.semverEquals, ["2.0.0"], "2.0.1", false),
        c(.semverLessThan, ["2.0.0"], "2.0.0-rc.1", true),
        c(.semverLessThan, ["2.0.0"], "2.0.0", false),
        c(.semverLessThanOrEqual, ["2.1.0"], "v2.1", true),
        c(.semverGreaterThan, ["1.9.9"], "1.10.0", true),
        c(.semverGreaterThan, ["1.9.9"], "not-a-version", false),
        c(.semverGreaterThanOrEqual, ["1.2.3"], "1.2.3", true),
        c(.semverRange, [">=2.0.0 <3"], "2.9.1", true),
        c(.semverRange, [">=2.0.0 <3"], "3.0.0", false),
        c(.exists, [String](), "", true),
        c(.exists, [String](), nil, false),
        c(.absent, [String](), nil, true),
        c(.absent, [String](), "x", false),
    ]

    @Test(arguments: Self.operatorCases)
    func headerPredicateOperators(_ example: OperatorCase) throws {
        let condition = Condition.header(
            "x-tenant",
            example.op,
            example.values,
            caseInsensitive: example.caseInsensitive
        )
        #expect(try Self.matches(condition, Self.header(example.value)) == example.expected)
    }

    @Test func largeInListsUseTheSameSemantics() throws {
        let ids = (0..<5000).map { "user-\($0)" }
        let condition = Condition.header("X-User", .in, ids)
        #expect(try Self.matches(condition, Fixtures.request(headers: [("x-user", "user-4999")])))
        #expect(try !Self.matches(condition, Fixtures.request(headers: [("x-user", "user-5000")])))
    }

    @Test func headerNamesAreCaseInsensitiveAndFirstValueCounts() throws {
        let condition = Condition.header("X-Tenant", .equals, ["acme"])
        #expect(try Self.matches(condition, Fixtures.request(headers: [("x-TENANT", "acme"), ("X-Tenant", "b")])))
        #expect(try !Self.matches(condition, Fixtures.request(headers: [("X-Tenant", "b"), ("X-Tenant", "acme")])))
    }

    @Test func cookiePredicates() throws {
        let condition = Condition.cookie("beta", .equals, ["1"])
        #expect(try Self.matches(condition, Fixtures.request(headers: [("Cookie", "a=b; beta=1")])))
        #expect(try Self.matches(condition, Fixtures.request(headers: [("Cookie", "a=b"), ("Cookie", "beta=\"1\"")])))
        #expect(try !Self.matches(condition, Fixtures.request(headers: [("Cookie", "Beta=1")])))
        #expect(try !Self.matches(condition, Fixtures.request()))
    }

    @Test func queryPredicatesDecodeNamesAndValues() throws {
        let condition = Condition.query("team name", .equals, ["a&b c"])
        #expect(try Self.matches(condition, Fixtures.request(target: "/orders?x=1&team+name=a%26b%20c")))
        #expect(try Self.matches(condition, Fixtures.request(target: "/orders?team%20name=a%26b+c&team+name=z")))
        #expect(try !Self.matches(condition, Fixtures.request(target: "/orders?team+name=z&team+name=a%26b+c")))
        #expect(try !Self.matches(condition, Fixtures.request(target: "/orders")))
        let flag = Condition.query("beta", .exists)
        #expect(try Self.matches(flag, Fixtures.request(target: "/orders?beta")))
        #expect(try Self.matches(flag, Fixtures.request(target: "/orders?a=1&beta=")))
        #expect(try !Self.matches(flag, Fixtures.request(target: "/orders?betamax=1")))
        let percent = Condition.query("p", .equals, ["100%"])
        #expect(try Self.matches(percent, Fixtures.request(target: "/orders?p=100%")))
    }

    @Test func clientAddressPredicates() throws {
        let office = Condition.match(Predicate(.clientIP, .in, ["10.0.0.0/8", "2001:db8::/32"]))
        #expect(try Self.matches(office, Fixtures.request(client: "10.20.30.40")))
        #expect(try Self.matches(office, Fixtures.request(client: "::ffff:10.1.1.1")))
        #expect(try Self.matches(office, Fixtures.request(client: "2001:db8::7")))
        #expect(try !Self.matches(office, Fixtures.request(client: "192.168.1.1")))
        #expect(try !Self.matches(office, Fixtures.request(client: nil)))
        let outside = Condition.match(Predicate(.clientIP, .notIn, ["10.0.0.0/8"]))
        #expect(try Self.matches(outside, Fixtures.request(client: "192.168.1.1")))
        #expect(try !Self.matches(outside, Fixtures.request(client: "10.0.0.1")))
        #expect(try Self.matches(outside, Fixtures.request(client: nil)))
        #expect(try Self.matches(.match(Predicate(.clientIP, .absent)), Fixtures.request(client: nil)))
    }

    @Test func methodCondition() throws {
        let condition = Condition.method(["post", "PUT"])
        #expect(try Self.matches(condition, Fixtures.request(method: "POST")))
        #expect(try Self.matches(condition, Fixtures.request(method: "PUT")))
        #expect(try !Self.matches(condition, Fixtures.request(method: "GET")))
    }

    @Test func methodsCompareAsStrings() throws {
        // U+212A KELVIN SIGN is canonically equivalent to "K", so the two spellings are equal Strings.
        let condition = Condition.method(["LOCK"])
        #expect(try Self.matches(condition, Fixtures.request(method: "LOC\u{212A}")))
        #expect(try !Self.matches(condition, Fixtures.request(method: "LOCKS")))
        #expect(try !Self.matches(condition, Fixtures.request(method: "lock")))
    }

    @Test func setsOfDifferentPredicatesStaySeparate() throws {
        let table = try Fixtures.table(rules: [
            Rule(name: "acme", condition: .header("X-Tenant", .in, ["acme", "initech"]), upstream: "orders-v2"),
            Rule(
                name: "globex",
                condition: .header("X-Tenant", .in, ["globex", "initech"], caseInsensitive: true),
                upstream: "orders-v3"
            ),
            Rule(name: "other", condition: .header("X-Other", .notIn, ["acme"]), upstream: "orders-v2"),
        ])
        func rule(_ tenant: String, other: String = "acme") -> String? {
            table.decide(Fixtures.request(headers: [("X-Tenant", tenant), ("X-Other", other)])).rule
        }
        #expect(rule("acme") == "acme")
        #expect(rule("initech") == "acme")
        #expect(rule("GLOBEX") == "globex")
        #expect(rule("INITECH") == "globex")
        #expect(rule("ACME") == nil)
        #expect(rule("ACME", other: "globex") == "other")
    }

    @Test func segmentsRequireEveryConstraint() throws {
        let segment = Segment(
            name: "beta",
            constraints: [
                Predicate(.header("X-Tenant"), .in, ["acme"]),
                Predicate(.clientIP, .in, ["10.0.0.0/8"]),
            ]
        )
        let condition = Condition.segment("beta")
        let acme = [("X-Tenant", "acme")]
        #expect(try Self.matches(condition, Fixtures.request(headers: acme), segments: [segment]))
        #expect(try !Self.matches(condition, Fixtures.request(headers: acme, client: "8.8.8.8"), segments: [segment]))
        #expect(try !Self.matches(condition, Fixtures.request(), segments: [segment]))
    }

    @Test func combinators() throws {
        let acme = Condition.header("X-Tenant", .equals, ["acme"])
        let post = Condition.method(["POST"])
        let acmePost = Fixtures.request(method: "POST", headers: [("X-Tenant", "acme")])
        let acmeGet = Fixtures.request(method: "GET", headers: [("X-Tenant", "acme")])
        let otherGet = Fixtures.request(method: "GET", headers: [("X-Tenant", "other")])
        #expect(try Self.matches(.all([acme, post]), acmePost))
        #expect(try !Self.matches(.all([acme, post]), acmeGet))
        #expect(try Self.matches(.any([acme, post]), acmeGet))
        #expect(try !Self.matches(.any([acme, post]), otherGet))
        #expect(try Self.matches(.not(acme), otherGet))
        #expect(try !Self.matches(.not(acme), acmeGet))
        #expect(try Self.matches(.always, otherGet))
        #expect(try !Self.matches(.any([]), otherGet))
        #expect(try Self.matches(.all([.any([acme, post]), .not(.method(["DELETE"]))]), acmeGet))
    }

    @Test func flagConditions() throws {
        let acme = Condition.header("X-Tenant", .equals, ["acme"])
        let request = Fixtures.request(headers: [("X-Tenant", "acme")])
        #expect(try Self.matches(.flag("new"), request, flags: [Flag(name: "new", enabled: true)]))
        #expect(try !Self.matches(.flag("new"), request, flags: [Flag(name: "new", enabled: false)]))
        // An off flag disables the whole rule, even where a plain boolean `any` would still hold.
        #expect(try !Self.matches(.any([acme, .flag("new")]), request, flags: [Flag(name: "new")]))
        #expect(try Self.matches(.any([acme, .flag("new")]), request, flags: [Flag(name: "new", enabled: true)]))
    }
}
