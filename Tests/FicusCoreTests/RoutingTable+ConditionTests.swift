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

    @Test(arguments: [
        // (operator, values, case-insensitive, header value or nil, expected)
        (Predicate.Operator.in, ["acme", "globex"], false, "globex", true),
        (.in, ["acme", "globex"], false, "Globex", false),
        (.in, ["acme", "globex"], true, "GLOBEX", true),
        (.in, ["acme"], false, nil, false),
        (.notIn, ["acme"], false, "globex", true),
        (.notIn, ["acme"], false, "acme", false),
        (.notIn, ["acme"], true, "ACME", false),
        (.notIn, ["acme"], false, nil, true),
        (.equals, ["acme"], false, "acme", true),
        (.equals, ["acme"], false, "acmes", false),
        (.equals, ["acme"], true, "AcMe", true),
        (.prefix, ["ac", "zz"], false, "acme", true),
        (.prefix, ["AC"], false, "acme", false),
        (.prefix, ["AC"], true, "acme", true),
        (.prefix, ["acmeacme"], false, "acme", false),
        (.suffix, ["me"], false, "acme", true),
        (.suffix, ["ME"], true, "acme", true),
        (.suffix, ["ac"], false, "acme", false),
        (.contains, ["cm"], false, "acme", true),
        (.contains, ["CM"], true, "acme", true),
        (.contains, ["x"], false, "acme", false),
        (.contains, ["cm"], false, nil, false),
        (.regex, ["^ac.e$"], false, "acme", true),
        (.regex, ["^AC"], false, "acme", false),
        (.regex, ["^AC"], true, "acme", true),
        (.regex, ["c(m)"], false, "xacmex", true),
        (.regex, ["^b", "^a"], false, "acme", true),
        (.numberEquals, ["42"], false, "42.0", true),
        (.numberEquals, ["42"], false, "41", false),
        (.numberLessThan, ["10"], false, "9.5", true),
        (.numberLessThan, ["10"], false, "10", false),
        (.numberLessThanOrEqual, ["10"], false, "10", true),
        (.numberGreaterThan, ["10"], false, "11", true),
        (.numberGreaterThan, ["10"], false, "abc", false),
        (.numberGreaterThanOrEqual, ["-1"], false, "-1", true),
        (.semverEquals, ["2.0.0"], false, "2", true),
        (.semverEquals, ["2.0.0"], false, "2.0.1", false),
        (.semverLessThan, ["2.0.0"], false, "2.0.0-rc.1", true),
        (.semverLessThan, ["2.0.0"], false, "2.0.0", false),
        (.semverLessThanOrEqual, ["2.1.0"], false, "v2.1", true),
        (.semverGreaterThan, ["1.9.9"], false, "1.10.0", true),
        (.semverGreaterThan, ["1.9.9"], false, "not-a-version", false),
        (.semverGreaterThanOrEqual, ["1.2.3"], false, "1.2.3", true),
        (.semverRange, [">=2.0.0 <3"], false, "2.9.1", true),
        (.semverRange, [">=2.0.0 <3"], false, "3.0.0", false),
        (.exists, [], false, "", true),
        (.exists, [], false, nil, false),
        (.absent, [], false, nil, true),
        (.absent, [], false, "x", false),
    ])
    func headerPredicateOperators(
        op: Predicate.Operator,
        values: [String],
        caseInsensitive: Bool,
        value: String?,
        expected: Bool
    ) throws {
        let condition = Condition.header("x-tenant", op, values, caseInsensitive: caseInsensitive)
        #expect(try Self.matches(condition, Self.header(value)) == expected)
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
